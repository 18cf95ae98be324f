"""The cuBLAS products' path (kernels.cublas_chunks) against float64 references, on the
interpreter's small shapes: its thresholds lowered so that short rows take it, its chunks
small so that a step has several (and in the tile mode a ragged last tile of its own)."""

import pytest
import torch

import cce_tune.kernels.config as kernel_config
import cce_tune.kernels.cublas_chunks as cublas_module
import cce_tune.kernels.fused as fused_module
from cce_tune.kernels import InKernelNegatives, cce_minus, reference
from tests.kernels.problems import grads
from tests.kernels.test_fused import (
    DEVICE,
    SpyKernel,
    check,
    drawn_and_materialised,
    fp32_problem,
    make_problem_like,
    poisoned_outputs,  # noqa: F401 (the fixture, used by every test here)
    relative_errors,
)

MODES = ["shared", "tile"]


@pytest.fixture(autouse=True)
def cublas_for_short_rows(monkeypatch):
    """Every float32 shared or tile loss takes the path, in chunks of 32 tokens at N 21 and
    d 24: 2 tiles of 16 (their rows 4,032 bytes) or 32 shared tokens (2,688 bytes of
    products), so that 37 tokens make a chunk of 32 and one of 5 (a ragged tile); the
    forward and backward kernels' launches recorded."""
    monkeypatch.setattr(kernel_config, "CUBLAS_MIN_ROW_BYTES", 0)
    monkeypatch.setattr(kernel_config, "CUBLAS_MIN_TILE", 16)
    monkeypatch.setattr(kernel_config, "CUBLAS_CHUNK_BYTES", 5000)
    launches = []
    for name in ("cce_minus_forward_kernel", "cce_minus_backward_hidden_kernel"):
        monkeypatch.setattr(cublas_module, name, SpyKernel(getattr(cublas_module, name),
                                                           launches))
    return launches


def tile(problem):
    return {"tile_size": problem.tile_size} if problem.tile_size else {}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_chunks_match_the_reference(mode, reduction, cublas_for_short_rows):
    problem = fp32_problem(mode)
    check(cce_minus, reference.ce_minus, problem, reduction=reduction, **tile(problem))
    assert [launch["SCORES_GIVEN"] for launch in cublas_for_short_rows] == [True] * 4


@pytest.mark.parametrize("mode", MODES)
def test_temperature_log_q_and_sampled_softmax(mode):
    problem = fp32_problem(mode)
    log_q = torch.log_softmax(torch.randn(problem.num_items + 1, device=DEVICE), 0)
    check(cce_minus, reference.ce_minus, problem, temperature=0.6, log_q=log_q,
          sampled_softmax=True, **tile(problem))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_items", [20, 2000])  # dense and compact accumulators
def test_in_kernel_negatives_and_accumulators(mode, num_items):
    problem = fp32_problem(mode, num_items=num_items)
    negatives = InKernelNegatives(21, mode=mode, tile_size=16,
                                  seed=int(torch.randint(0, 2**30, ())))
    check(*drawn_and_materialised(negatives, problem), problem)
    check(cce_minus, reference.ce_minus, problem, **tile(problem))  # explicit, with id 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_items", [20, 2000])
def test_sparse_item_gradients(mode, num_items):
    problem = fp32_problem(mode, num_items=num_items)
    dense = grads(reference.ce_minus, make_problem_like(problem, torch.float64),
                  **tile(problem))
    loss, d_hidden, d_items = grads(cce_minus, problem, sparse_item_grad=True,
                                    **tile(problem))
    assert d_items.is_sparse
    errors = relative_errors((loss, d_hidden, d_items.to_dense()), dense)
    assert all(error < 1e-5 for error in errors), errors


@pytest.mark.parametrize("mode", MODES)
def test_a_frozen_table_and_strided_hidden_states(mode, monkeypatch):
    """No item-gradient product for a frozen table; hidden rows 40 apart (a slice) read in
    place."""
    monkeypatch.setattr(fused_module, "compact_accumulator", None)  # never called
    problem = fp32_problem(mode)
    strided = torch.zeros(37, 40, device=DEVICE)[:, 3:27]
    strided.copy_(problem.hidden)
    hidden = strided.requires_grad_()
    wide = problem.hidden.double().requires_grad_()
    cce_minus(hidden, problem.emb, problem.targets, problem.negatives,
              **tile(problem)).backward()
    reference.ce_minus(wide, problem.emb.double(), problem.targets, problem.negatives,
                       **tile(problem)).backward()
    assert relative_errors([hidden.grad], [wide.grad])[0] < 1e-5


def test_chunks_hold_whole_tiles_within_their_bytes(monkeypatch):
    """Chunks of 32 MiB at 131,072 x N 2,048 x d 256: 16 tiles of 128 (their rows 2 MiB
    each), 4,096 shared tokens (8 KiB of products each); a ragged tile alone; fewer tokens,
    one chunk."""
    monkeypatch.setattr(kernel_config, "CUBLAS_CHUNK_BYTES", 32 * 2**20)
    groups = kernel_config.cublas_groups("tile", 131072 + 5, 2048, 256, 128)
    assert groups[:2] == [(0, 16, 128), (2048, 16, 128)] and len(groups) == 65
    assert groups[-1] == (131072, 1, 5)
    shared = kernel_config.cublas_groups("shared", 131072, 2048, 256, 1)
    assert shared[1] == (4096, 1, 4096) and len(shared) == 32
    assert kernel_config.cublas_groups("shared", 100, 2048, 256, 1) == [(0, 1, 100)]
    assert kernel_config.cublas_groups("tile", 100, 2048, 256, 64) == [(0, 1, 64), (64, 1, 36)]
    assert kernel_config.products_in_cublas("tile", 4, 256, 64)
    assert not kernel_config.products_in_cublas("tile", 2, 256, 64)  # half precision


@pytest.mark.parametrize("mode", MODES)
def test_frozen_hidden_states_no_tokens_and_create_graph(mode):
    """The table's gradient alone (hidden frozen); a batch of no tokens; and a backward
    asked for a graph (create_graph=True), which cuBLAS's writes into buffers must not
    refuse: the gradient comes back as the kernels' path gives it, without a graph."""
    problem = fp32_problem(mode)
    emb = problem.emb.detach().clone().requires_grad_()
    wide = problem.emb.double().requires_grad_()
    cce_minus(problem.hidden, emb, problem.targets, problem.negatives,
              **tile(problem)).backward()
    reference.ce_minus(problem.hidden.double(), wide, problem.targets, problem.negatives,
                       **tile(problem)).backward()
    assert relative_errors([emb.grad], [wide.grad])[0] < 1e-5
    none = problem.hidden[:0].detach().requires_grad_()
    ids = problem.negatives[:0] if mode == "tile" else problem.negatives
    loss = cce_minus(none, problem.emb, problem.targets[:0], ids, reduction="sum",
                     **tile(problem))
    loss.backward()
    assert loss.item() == 0 and none.grad.shape == (0, 24)
    hidden = problem.hidden.detach().clone().requires_grad_()
    loss = cce_minus(hidden, problem.emb, problem.targets, problem.negatives, **tile(problem))
    (graphed,) = torch.autograd.grad(loss, hidden, create_graph=True)
    (plain,) = torch.autograd.grad(
        cce_minus(hidden, problem.emb, problem.targets, problem.negatives, **tile(problem)),
        hidden)
    torch.testing.assert_close(graphed, plain)
