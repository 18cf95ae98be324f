"""The fused kernels against float64 references, run by Triton's interpreter on the CPU
(compiled on a GPU when one is present). Fresh random inputs per case; outputs poisoned."""

import pytest
import torch

import cce_tune.kernels.cce_buckets as buckets_module
import cce_tune.kernels.config as kernel_config
import cce_tune.kernels.fused as fused_module
from cce_tune.kernels import (
    CCE,
    CCEMinus,
    InKernelNegatives,
    cce,
    cce_minus,
    in_kernel_ids,
    reference,
)
from cce_tune.kernels.cce_scores import draw_negatives_kernel
from cce_tune.kernels.compact import UNTOUCHED
from tests.kernels.problems import grads, make_problem

MODES = ["shared", "per_position", "tile"]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Every buffer the kernels must write in full starts as NaN: a gap fails the test."""
    def poisoned(shape, dtype, device):
        fill = float("nan") if dtype.is_floating_point else -1
        return torch.full(shape, fill, dtype=dtype, device=device)
    monkeypatch.setattr(fused_module, "_output", poisoned)


def relative_errors(ours, expected):
    return [((got.double() - want).norm() / want.norm()).item()
            for got, want in zip(ours, expected, strict=True)]


def check(fused, ref, problem, tolerance=1e-5, **kwargs):
    """Fused on fp32 inputs against the reference on float64 copies: loss, d(hidden), d(items)."""
    wide = make_problem_like(problem, torch.float64)
    errors = relative_errors(grads(fused, problem, **kwargs), grads(ref, wide, **kwargs))
    assert all(error < tolerance for error in errors), errors  # NaN fails too


def make_problem_like(problem, dtype):
    from dataclasses import replace
    return replace(problem, hidden=problem.hidden.to(dtype), emb=problem.emb.to(dtype))


def drawn_and_materialised(negatives, problem):
    """The fused loss drawing `negatives` in the kernels, and the reference over the same ids
    materialised (`in_kernel_ids`): a pair for `check` (the problem's own ids unused)."""
    ids = in_kernel_ids(negatives, len(problem.targets), problem.num_items, DEVICE)
    tile = {"tile_size": negatives.tile_size} if negatives.mode == "tile" else {}
    return (lambda h, e, t, n, **kwargs: cce_minus(h, e, t, negatives, **kwargs),
            lambda h, e, t, n, **kwargs: reference.ce_minus(h, e, t, ids.to(h.device), **tile,
                                                            **kwargs))


def fp32_problem(mode, **kwargs):
    kwargs = {"tokens": 37, "dim": 24, "num_negatives": 21, "tile_size": 16, **kwargs}
    return make_problem(mode, dtype=torch.float32, device=DEVICE, **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_explicit_negatives(mode, reduction):
    problem = fp32_problem(mode)
    check(cce_minus, reference.ce_minus, problem, tile_size=problem.tile_size,
          reduction=reduction)


@pytest.mark.parametrize("num_items", [20, 2000])  # dense and compact accumulators
@pytest.mark.parametrize("fold", [True, False])
def test_shared_negatives_with_and_without_the_item_pass(fold, num_items, monkeypatch):
    """Small batches add the shared negatives' gradient in the hidden pass; large ones in
    their own pass."""
    monkeypatch.setattr(fused_module, "SHARED_FOLD_ATOMICS", 2**40 if fold else 0)
    launched = []
    items_kernel = fused_module.cce_minus_backward_items_kernel
    monkeypatch.setattr(fused_module, "cce_minus_backward_items_kernel",
                        SpyKernel(items_kernel, launched))
    problem = fp32_problem("shared", num_items=num_items)
    log_q = torch.log_softmax(torch.randn(num_items + 1, device=DEVICE), 0)
    check(cce_minus, reference.ce_minus, problem, log_q=log_q, sampled_softmax=True)
    assert bool(launched) != fold


class SpyKernel:
    """A Triton kernel that notes each launch's keyword arguments (its constexprs) in
    `launched`."""

    def __init__(self, kernel, launched: list) -> None:
        self.kernel, self.launched = kernel, launched

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launched.append(kwargs)
            return self.kernel[grid](*args, **kwargs)
        return launch


@pytest.mark.parametrize("mode", MODES)
def test_temperature_log_q_and_sampled_softmax(mode):
    problem = fp32_problem(mode)
    log_q = torch.log_softmax(torch.randn(problem.num_items + 1, device=DEVICE), 0)
    check(cce_minus, reference.ce_minus, problem, tile_size=problem.tile_size,
          temperature=0.6, log_q=log_q, sampled_softmax=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [8, 17, 64])
def test_odd_shapes(mode, dim):
    problem = fp32_problem(mode, tokens=71, dim=dim, num_negatives=67, num_items=90)
    check(cce_minus, reference.ce_minus, problem, tile_size=problem.tile_size)


@pytest.mark.parametrize("mode", MODES)
def test_in_kernel_negatives_match_their_materialised_ids(mode):
    problem = fp32_problem(mode)
    negatives = InKernelNegatives(21, mode=mode, tile_size=16,
                                  seed=int(torch.randint(0, 2**30, ())))
    check(*drawn_and_materialised(negatives, problem), problem)


# The others by the backward's counting pass.
FORWARD_COUNTED = ("read", "drawn", "drawn on the tensor cores")


@pytest.mark.parametrize("num_items, ids", [
    *((items, ids) for items in (8, 5000, "5000 skewed")
      for ids in ("read", "read on the tensor cores")),
    *((items, ids) for items in (8, 5000)
      for ids in ("drawn", "drawn on the tensor cores", "drawn, past the forward's table"))])
@pytest.mark.parametrize("max_slots", [None, 500])  # one chunk of tokens; chunks of 22
def test_per_position_item_gradient_bucketed_by_item(num_items, ids, max_slots, monkeypatch):
    """kernels.cce_buckets over about 3,100 pairs (200 tokens, 21 negatives, padding and
    accidental hits left out): 8 items make runs of ~390 pairs, across programs of 64-pair
    blocks (added in registers, flushed per run); 5,000 make blocks that straddle items
    (added row by row, into the compact accumulator); skewed, long runs into the compact
    accumulator too. The pairs counted by the forward (a table of chunks x items: ids drawn,
    on either cores, or read on the CUDA cores; programs straddle the chunks of 22 tokens)
    or by the backward's own pass (ids read on the tensor cores, forced here in float32, or
    drawn past MAX_FORWARD_COUNTS)."""
    if max_slots is not None:
        monkeypatch.setattr(kernel_config, "MAX_SLOTS", max_slots)
    if ids == "drawn, past the forward's table":
        monkeypatch.setattr(kernel_config, "MAX_FORWARD_COUNTS", 0)
    if ids.endswith("on the tensor cores"):
        monkeypatch.setattr(fused_module, "gathers_on_tensor_cores", lambda *args: True)
    launched = []
    monkeypatch.setattr(buckets_module, "count_kernel",
                        SpyKernel(buckets_module.count_kernel, launched))
    skewed = num_items == "5000 skewed"
    num_items = 5000 if skewed else num_items
    problem = fp32_problem("per_position", tokens=200, num_items=num_items)
    if skewed:
        problem.negatives[:, :15] = 7
    ours, ref = ((cce_minus, reference.ce_minus) if ids.startswith("read")
                 else drawn_and_materialised(InKernelNegatives(21, mode="per_position", seed=13),
                                             problem))
    log_q = torch.log_softmax(torch.randn(num_items + 1, device=DEVICE), 0)
    check(ours, ref, problem, log_q=log_q, sampled_softmax=True, temperature=0.7)
    assert bool(launched) == (ids not in FORWARD_COUNTED)


def test_per_position_item_gradient_alone(monkeypatch):
    """With hidden frozen the forward writes no d(hidden) directions; the item gradient is
    the same."""
    problem = fp32_problem("per_position")
    emb = problem.emb.detach().clone().requires_grad_()
    made = []
    output = fused_module._output  # the poisoned one
    monkeypatch.setattr(fused_module, "_output",
                        lambda shape, *args: made.append(tuple(shape)) or output(shape, *args))
    cce_minus(problem.hidden, emb, problem.targets, problem.negatives).backward()
    assert tuple(problem.hidden.shape) not in made  # neither directions nor d(hidden)
    wide_emb = problem.emb.double().requires_grad_()
    reference.ce_minus(problem.hidden.double(), wide_emb, problem.targets,
                       problem.negatives).backward()
    assert relative_errors([emb.grad], [wide_emb.grad])[0] < 1e-5


@pytest.mark.parametrize("cores", ["tensor", "CUDA"])
@pytest.mark.parametrize("ids", ["explicit", "in-kernel", "in-kernel, several rounds"])
@pytest.mark.parametrize("dim", [17, 64])
def test_per_position_forward(cores, ids, dim, monkeypatch):
    """The per-position forward on the tensor cores (a block's gathered rows scored against
    all of its tokens; half precision at d 129-256), forced here in float32 at small d,
    where its products are exact in the interpreter, and on the CUDA cores (row by row):
    each token keeps its own scores, hits and padding ids masked, tokens past the end
    (71 = 4 x 16 + 7) and negatives past N (67) too. Drawn ids go through the scratch a
    round of steps at a time: at 2 steps a round 67 negatives take 3 rounds on the tensor
    cores (16 or 32 a step), 5 on the CUDA cores (8 a step), the last one short."""
    tensor = cores == "tensor"
    if tensor:
        monkeypatch.setattr(fused_module, "gathers_on_tensor_cores", lambda *args: True)
    if ids == "in-kernel, several rounds":
        monkeypatch.setattr(kernel_config, "DRAWN_STEPS", 2)
    launches = []
    monkeypatch.setattr(fused_module, "cce_minus_forward_kernel",
                        SpyKernel(fused_module.cce_minus_forward_kernel, launches))
    problem = fp32_problem("per_position", tokens=71, dim=dim, num_negatives=67, num_items=90)
    problem.negatives[1::5, :3] = 0  # padding ids among the negatives (of real tokens)
    log_q = torch.log_softmax(torch.randn(problem.num_items + 1, device=DEVICE), 0)
    ours, ref = ((cce_minus, reference.ce_minus) if ids == "explicit"
                 else drawn_and_materialised(InKernelNegatives(67, mode="per_position", seed=5),
                                             problem))
    check(ours, ref, problem, log_q=log_q, sampled_softmax=True, temperature=0.7)
    assert launches and all(launch["TENSOR_GATHER"] == tensor
                            and (launch["BLOCK_T"] == 16) == tensor for launch in launches)


def test_half_precision_at_d_256_takes_the_tensor_core_forward():
    hidden = torch.zeros(4, 256, dtype=torch.float16)
    plan = fused_module._plan(hidden, hidden, id_source=0, gather=True, tiled=False,
                              tile_size=1, num_negatives=9, temperature=1.0, has_log_q=False,
                              sampled_softmax=False)
    assert plan.tensor_gather and plan.blocks["forward"] == fused_module.Blocks(16, 8, 4, 2)
    # Shorter and longer rows than measured; float32's IEEE products; a float32 table.
    wide = torch.zeros(4, 512, dtype=torch.float16)
    for other, table in ((hidden[:, :64], hidden[:, :64]), (wide, wide),
                         (hidden.float(), hidden.float()), (hidden, hidden.float())):
        assert not fused_module._plan(other, table, id_source=0, gather=True, tiled=False,
                                      tile_size=1, num_negatives=9, temperature=1.0,
                                      has_log_q=False, sampled_softmax=False).tensor_gather


def test_long_float32_rows_in_small_tiles_take_cuda_core_products_in_the_backward(
        monkeypatch):
    """fp32 at d 256 in tiles of 16 (under kernels.config.CUBLAS_MIN_TILE, where cuBLAS
    takes the products: tests/kernels/test_cublas_chunks.py): the backward's products are
    IEEE fp32 on the CUDA cores (tf32x3's tiles do not fit there), the forward's tf32x3.
    Compiled on an H200 the gradients are 1.0e-5 off float64 (tf32x3 drops lo x lo, about
    2^-22 of each product, and scores of 256 terms reach about 16; PyTorch's fp32 is 4e-7
    off), so the bound is 3e-5 here, 1e-5 at d 24."""
    plans = []
    plan = fused_module._plan
    monkeypatch.setattr(fused_module, "_plan", lambda *a, **k: plans.append(plan(*a, **k))
                        or plans[-1])
    problem = fp32_problem("tile", tokens=20, dim=256, num_negatives=9)
    check(cce_minus, reference.ce_minus, problem, tolerance=3e-5, tile_size=problem.tile_size)
    assert plans[0].precisions == {"forward": "tf32x3", "hidden": "ieee", "items": "ieee"}
    assert not plans[0].cublas and plans[0].items_in_hidden
    assert plans[0].blocks["hidden"] == fused_module.Blocks(16, 32, 4, 2)
    half = fused_module._plan(problem.hidden.half(), problem.emb, id_source=0, gather=False,
                              tiled=False, tile_size=1, num_negatives=9, temperature=1.0,
                              has_log_q=False, sampled_softmax=False)
    assert set(half.precisions.values()) == {"tf32"}  # a float32 table beside half hidden


@pytest.mark.parametrize("mode", [*MODES, "shared unfolded", "full"])
def test_a_frozen_item_table_gets_no_gradient_computed(mode, monkeypatch):
    """A frozen table: d(hidden) as before, and no item-gradient work at all (neither its
    accumulator, nor the per-position item pass, nor the dense modes' item pass)."""
    def refused(*args, **kwargs):
        raise AssertionError("item-gradient work for a frozen table")
    monkeypatch.setattr(fused_module, "compact_accumulator", refused)
    monkeypatch.setattr(fused_module, "add_item_gradient", refused)
    launched, forwards = [], []
    monkeypatch.setattr(fused_module, "cce_minus_backward_items_kernel",
                        SpyKernel(fused_module.cce_minus_backward_items_kernel, launched))
    monkeypatch.setattr(fused_module, "cce_minus_forward_kernel",
                        SpyKernel(fused_module.cce_minus_forward_kernel, forwards))
    if mode == "shared unfolded":  # the item pass would run: large batches
        monkeypatch.setattr(fused_module, "SHARED_FOLD_ATOMICS", 0)
        mode = "shared"
    problem = fp32_problem("shared" if mode == "full" else mode)
    hidden = problem.hidden.detach().clone().requires_grad_()
    wide_hidden = problem.hidden.double().requires_grad_()
    if mode == "full":
        cce(hidden, problem.emb, problem.targets).backward()
        reference.ce(wide_hidden, problem.emb.double(), problem.targets).backward()
    else:
        tile = {"tile_size": problem.tile_size} if mode == "tile" else {}
        cce_minus(hidden, problem.emb, problem.targets, problem.negatives, **tile).backward()
        reference.ce_minus(wide_hidden, problem.emb.double(), problem.targets,
                           problem.negatives, **tile).backward()
    assert relative_errors([hidden.grad], [wide_hidden.grad])[0] < 1e-5
    assert not launched
    assert not any(forward["COUNTED"] for forward in forwards)  # per position: no counts


@pytest.mark.parametrize("ids", ["read", "drawn"])
def test_no_grad_prepares_nothing_for_a_backward(ids, monkeypatch):
    """Under torch.no_grad() (evaluation with trainable inputs) the per-position forward
    writes neither d(hidden)'s directions nor the counting sort's counts; the loss is the
    same."""
    forwards = []
    monkeypatch.setattr(fused_module, "cce_minus_forward_kernel",
                        SpyKernel(fused_module.cce_minus_forward_kernel, forwards))
    problem = fp32_problem("per_position")
    negatives = (problem.negatives if ids == "read"
                 else InKernelNegatives(21, mode="per_position", seed=4))
    hidden = problem.hidden.detach().clone().requires_grad_()
    emb = problem.emb.detach().clone().requires_grad_()
    trained = cce_minus(hidden, emb, problem.targets, negatives)
    with torch.no_grad():
        evaluated = cce_minus(hidden, emb, problem.targets, negatives)
    assert torch.equal(evaluated, trained.detach())
    assert [(f["DIRECTIONS"], f["COUNTED"]) for f in forwards] == [(True, True), (False, False)]


@pytest.mark.parametrize("cores", ["tensor", "CUDA"])
def test_per_position_without_negatives(cores, monkeypatch):
    """Ids of no column (N = 0): every token's loss is 0 and so are the gradients, as in the
    reference, whichever pass counts the targets' pairs."""
    if cores == "tensor":
        monkeypatch.setattr(fused_module, "gathers_on_tensor_cores", lambda *args: True)
    problem = fp32_problem("per_position")
    hidden = problem.hidden.detach().clone().requires_grad_()
    emb = problem.emb.detach().clone().requires_grad_()
    loss = cce_minus(hidden, emb, problem.targets, problem.negatives[:, :0])
    loss.backward()
    assert loss.item() == 0.0
    assert not hidden.grad.any() and not emb.grad.any()


@pytest.mark.skipif(DEVICE == "cuda", reason="CPU tensors")
@pytest.mark.parametrize("when", ["never", "after the import"])
def test_cpu_tensors_without_the_interpreter_get_a_clear_refusal(when, monkeypatch):
    """CPU tensors need Triton's interpreter, switched on before the kernels are imported:
    set later, the launch failed deep inside Triton ("0 active drivers")."""
    if when == "never":
        monkeypatch.delenv("TRITON_INTERPRET")
        expected = "run on CUDA tensors .or under TRITON_INTERPRET=1.; use"
    else:
        monkeypatch.setattr(fused_module, "_INTERPRETED_AT_IMPORT", False)
        expected = "TRITON_INTERPRET=1 was set after cce_tune.kernels was imported"
    problem = fp32_problem("shared")
    with pytest.raises(ValueError, match=expected):
        cce_minus(problem.hidden, problem.emb, problem.targets, problem.negatives)


@pytest.mark.skipif(DEVICE == "cuda", reason="the interpreter's limit, not the GPU's")
def test_the_interpreter_refuses_bfloat16_which_it_computes_wrongly():
    problem = make_problem_like(fp32_problem("shared"), torch.bfloat16)
    with pytest.raises(ValueError, match="interpreter computes bfloat16 wrongly"):
        cce_minus(problem.hidden, problem.emb.float(), problem.targets, problem.negatives)


@pytest.mark.parametrize("mode", MODES)
def test_half_hidden_states_score_a_float32_table(mode):
    """What a sparse item gradient trains with (kernels.losses then passes the float32 table
    as it is): rows converted as the kernels load them; the table's gradient in float32."""
    problem = fp32_problem(mode)
    half = make_problem_like(problem, torch.float16)
    half.emb = problem.emb  # float32
    loss, d_hidden, d_items = grads(cce_minus, half, tile_size=problem.tile_size)
    assert d_hidden.dtype == torch.float16 and d_items.dtype == torch.float32
    # Against float64 on the same fp16-rounded hidden states: the products' own rounding.
    wide = make_problem_like(half, torch.float64)
    errors = relative_errors((loss, d_hidden, d_items),
                             grads(reference.ce_minus, wide, tile_size=problem.tile_size))
    assert all(error < 1e-2 for error in errors), errors
    with pytest.raises(ValueError, match="float32 item_emb with half-precision hidden"):
        cce_minus(problem.hidden.double(), problem.emb, problem.targets, problem.negatives)


def test_in_kernel_ids_are_uniform_over_the_catalog_and_follow_the_seed():
    first = in_kernel_ids(InKernelNegatives(4000, "per_position", seed=1), 5, 10, DEVICE)
    again = in_kernel_ids(InKernelNegatives(4000, "per_position", seed=1), 5, 10, DEVICE)
    other = in_kernel_ids(InKernelNegatives(4000, "per_position", seed=2), 5, 10, DEVICE)
    assert torch.equal(first, again) and not torch.equal(first, other)
    counts = torch.bincount(first.flatten().cpu(), minlength=11)
    assert counts[0] == 0 and (counts[1:] > 1600).all() and (counts[1:] < 2400).all()
    assert len(torch.unique(first, dim=0)) == 5  # rows differ


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_items", [20, 2000])
def test_sparse_item_gradients_hold_the_dense_ones(mode, num_items):
    """The table's gradient as a sparse tensor: an entry per position (targets, then ids)
    where they are fewer than the rows, else per row, summing to the dense gradient; the
    reference gathers as nn.Embedding(sparse=True)."""
    problem = fp32_problem(mode, num_items=num_items)
    wide = make_problem_like(problem, torch.float64)
    dense = grads(reference.ce_minus, wide, tile_size=problem.tile_size)
    loss, d_hidden, d_items = grads(cce_minus, problem, tile_size=problem.tile_size,
                                    sparse_item_grad=True)
    assert d_items.is_sparse
    positions = len(problem.targets) + problem.negatives.numel()
    assert d_items._nnz() == (positions if positions < len(problem.emb) else len(problem.emb))
    errors = relative_errors((loss, d_hidden, d_items.to_dense()), dense)
    assert all(error < 1e-5 for error in errors), errors
    reference_sparse = grads(reference.ce_minus, wide, tile_size=problem.tile_size,
                             sparse_item_grad=True)[2]
    assert reference_sparse.is_sparse
    assert torch.allclose(reference_sparse.to_dense(), dense[2])


def test_sparse_item_gradients_of_ids_drawn_in_the_kernels():
    problem = fp32_problem("tile")
    negatives = InKernelNegatives(21, mode="tile", tile_size=16, seed=11)
    ids = in_kernel_ids(negatives, 37, problem.num_items, DEVICE)
    d_items = grads(lambda h, e, t, n: cce_minus(h, e, t, negatives, sparse_item_grad=True),
                    problem)[2]
    expected = grads(lambda h, e, t, n: reference.ce_minus(h, e, t, ids.to(h.device),
                                                           tile_size=16),
                     make_problem_like(problem, torch.float64))[2]
    assert relative_errors([d_items.to_dense()], [expected])[0] < 1e-5
    per_position = InKernelNegatives(21, mode="per_position")
    with pytest.raises(ValueError, match="sparse_item_grad needs the negatives' ids"):
        cce_minus(problem.hidden, problem.emb, problem.targets, per_position,
                  sparse_item_grad=True)


def test_the_seed_is_read_from_device_memory():
    """What a step replayed from a CUDA graph relies on: the same launch, a new seed written
    in place, new ids."""
    seed = torch.full((1,), 3, dtype=torch.int32, device=DEVICE)
    ids = torch.empty((4, 64), dtype=torch.int64, device=DEVICE)
    draw_negatives_kernel[(4, 1)](ids, 64, 1000, seed, BLOCK_N=64)
    first = ids.clone()
    seed.fill_(4)
    draw_negatives_kernel[(4, 1)](ids, 64, 1000, seed, BLOCK_N=64)
    assert torch.equal(first, in_kernel_ids(InKernelNegatives(64, "per_position", seed=3), 4,
                                            1000, DEVICE))
    assert not torch.equal(first, ids)


def test_unseeded_negatives_follow_torchs_generator():
    problem = fp32_problem("per_position")
    negatives = InKernelNegatives(21, mode="per_position")

    def loss(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return cce_minus(problem.hidden, problem.emb, problem.targets, negatives)

    assert torch.equal(loss(0), loss(0)) and not torch.equal(loss(0), loss(1))


# 100 items: one block of columns, one part; 150: a whole block and a masked one, in two
# parts; 1,000: eight parts (kernels.fused._catalog_parts, two multiprocessors on the CPU).
# float16: d(hidden) from the forward's directions; float32: from the hidden pass.
@pytest.mark.parametrize("num_items", [100, 150, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_full_catalog_cce(reduction, num_items, dtype, monkeypatch):
    forwards, hidden_passes = spy_full_catalog(monkeypatch)
    check_full_catalog(fp32_problem("shared", num_items=num_items), dtype,
                       temperature=0.8, reduction=reduction)
    directions = dtype == torch.float16
    assert [forward["DIRECTIONS"] for forward in forwards] == [directions]
    assert len(hidden_passes) == int(not directions)


def spy_full_catalog(monkeypatch) -> tuple[list, list]:
    """The launches of the forward and of the hidden pass, noted."""
    forwards, hidden_passes = [], []
    monkeypatch.setattr(fused_module, "cce_minus_forward_kernel",
                        SpyKernel(fused_module.cce_minus_forward_kernel, forwards))
    monkeypatch.setattr(fused_module, "cce_minus_backward_hidden_kernel",
                        SpyKernel(fused_module.cce_minus_backward_hidden_kernel, hidden_passes))
    return forwards, hidden_passes


# Against float64 on the same rounded inputs: float16's are the products' own rounding.
FULL_CATALOG_TOLERANCE = {torch.float16: 2e-3, torch.float32: 1e-5}


def check_full_catalog(problem, dtype, **kwargs) -> None:
    """`cce` on `problem`'s inputs in `dtype` against `reference.ce` in float64."""
    rounded = make_problem_like(problem, dtype)
    errors = relative_errors(
        grads(lambda h, e, t, n: cce(h, e, t, **kwargs), rounded),
        grads(lambda h, e, t, n: reference.ce(h, e, t, **kwargs),
              make_problem_like(rounded, torch.float64)))
    assert all(error < FULL_CATALOG_TOLERANCE[dtype] for error in errors), errors


# 37 tokens are one block on the CPU, so 2,610 items are 21 column blocks over eight parts
# of three: the last part has none.
@pytest.mark.parametrize("rows_bytes, parts, num_items", [
    (2**30, 8, 1000), (2 * 37 * 24 * 4, 2, 1000), (0, 1, 1000), (2**30, 8, 2610)])
def test_full_catalog_parts_held_to_their_rows_limit(rows_bytes, parts, num_items,
                                                    monkeypatch):
    """With directions, the catalog's parts are as many as CATALOG_PART_ROWS_BYTES of their
    weighted rows hold (kernels.config.catalog_part_limit), a part with no columns among
    them; the gradients the same."""
    monkeypatch.setattr(kernel_config, "CATALOG_PART_ROWS_BYTES", rows_bytes)
    forwards = spy_full_catalog(monkeypatch)[0]
    check_full_catalog(fp32_problem("shared", num_items=num_items), torch.float16)
    assert forwards[0]["SPLIT"] == (parts > 1) and forwards[0]["DIRECTIONS"]
    assert fused_module._catalog_parts(
        fused_module._plan(torch.empty(37, 24, dtype=torch.float16),
                           torch.empty(num_items + 1, 24, dtype=torch.float16), id_source=1,
                           gather=False, tiled=False, tile_size=1, num_negatives=num_items,
                           temperature=1.0, has_log_q=False, sampled_softmax=False),
        37, 24, True, torch.device("cpu")) == parts


def test_full_catalog_long_rows_combine_directions_in_chunks(monkeypatch):
    """Half-precision rows of 200 (a 256-wide block): the forward writes directions in its
    own blocks (8 warps), and the parts' weighted rows are combined 32 columns at a time;
    under torch.no_grad() the forward takes the plain forward's blocks (4 warps)."""
    forwards = spy_full_catalog(monkeypatch)[0]
    combined = []
    monkeypatch.setattr(fused_module, "catalog_lse_kernel",
                        SpyKernel(fused_module.catalog_lse_kernel, combined))
    problem = fp32_problem("shared", num_items=1000, dim=200)
    check_full_catalog(problem, torch.float16)
    with torch.no_grad():
        cce(problem.hidden.half(), problem.emb.half(), problem.targets)
    trained, evaluated = forwards
    assert trained["DIRECTIONS"] and trained["SPLIT"] and not evaluated["DIRECTIONS"]
    assert (trained["BLOCK_T"], trained["BLOCK_N"], trained["num_warps"]) == (128, 64, 8)
    assert evaluated["num_warps"] == 4
    assert combined[0]["CHUNK_D"] == 32


@pytest.mark.parametrize("frozen", ["hidden", "table"])
def test_full_catalog_with_one_input_frozen(frozen, monkeypatch):
    """Over the full catalog a frozen hidden state gets neither directions nor a hidden pass
    (the targets' item rows come from directions_backward_kernel); a frozen table,
    directions and no item pass."""
    forwards, hidden_passes = spy_full_catalog(monkeypatch)
    item_passes = []
    monkeypatch.setattr(fused_module, "cce_minus_backward_items_kernel",
                        SpyKernel(fused_module.cce_minus_backward_items_kernel, item_passes))
    problem = make_problem_like(fp32_problem("shared", num_items=1000), torch.float16)
    trained = problem.emb if frozen == "hidden" else problem.hidden
    ours = trained.detach().clone().requires_grad_()
    wide = trained.double().requires_grad_()
    if frozen == "hidden":
        cce(problem.hidden, ours, problem.targets, temperature=0.8).backward()
        reference.ce(problem.hidden.double(), wide, problem.targets, temperature=0.8).backward()
    else:
        cce(ours, problem.emb, problem.targets, temperature=0.8).backward()
        reference.ce(wide, problem.emb.double(), problem.targets, temperature=0.8).backward()
    assert relative_errors([ours.grad], [wide.grad])[0] < 2e-3
    assert [forward["DIRECTIONS"] for forward in forwards] == [frozen == "table"]
    assert (len(hidden_passes), len(item_passes)) == ((0, 1) if frozen == "hidden" else (0, 0))


def test_full_catalog_under_no_grad_writes_no_directions(monkeypatch):
    """Evaluation with trainable inputs: the forward writes no directions (and takes the
    forward's own blocks); the loss is the same."""
    forwards = spy_full_catalog(monkeypatch)[0]
    problem = make_problem_like(fp32_problem("shared", num_items=1000), torch.float16)
    hidden = problem.hidden.detach().clone().requires_grad_()
    trained = cce(hidden, problem.emb, problem.targets)
    with torch.no_grad():
        evaluated = cce(hidden, problem.emb, problem.targets)
    torch.testing.assert_close(evaluated, trained.detach())
    assert [forward["DIRECTIONS"] for forward in forwards] == [True, False]


@pytest.mark.parametrize("fn", [cce_minus, lambda h, e, t, n: cce(h, e, t)])
def test_a_batch_of_padding_has_zero_mean_loss_and_gradients(fn):
    problem = fp32_problem("shared")
    problem.targets.zero_()
    loss, d_hidden, d_emb = grads(fn, problem)
    assert loss.item() == 0 and not d_hidden.any() and not d_emb.any()


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_inputs(mode):
    problem = fp32_problem(mode, num_items=2000)  # the compact accumulator reads ids too
    wide_rows = torch.randn(37, 40, device=DEVICE)[:, 3:27]  # row stride 40, not 24
    wide_rows.copy_(problem.hidden)
    transposed = problem.emb.t().contiguous().t()  # column stride != 1
    every_other = torch.zeros(74, dtype=problem.targets.dtype, device=DEVICE)[::2]
    every_other.copy_(problem.targets)
    ids = problem.negatives
    wide_ids = torch.zeros(*ids.shape[:-1], ids.shape[-1] + 5, dtype=ids.dtype, device=DEVICE)
    wide_ids = wide_ids[..., 2:-3]  # rows N long, N + 5 apart (shared: a stride-1 slice)
    wide_ids.copy_(ids)
    if ids.dim() == 1:  # a shared (N,) tensor with stride 2
        wide_ids = torch.zeros(2 * len(ids), dtype=ids.dtype, device=DEVICE)[::2]
        wide_ids.copy_(ids)
    problem.hidden, problem.emb, problem.targets = wide_rows, transposed, every_other
    problem.negatives = wide_ids
    for tensor in (problem.hidden, problem.emb, problem.targets, problem.negatives):
        assert not tensor.is_contiguous()
    check(cce_minus, reference.ce_minus, problem, tile_size=problem.tile_size)


@pytest.mark.parametrize("fn", [cce_minus, lambda h, e, t, n, **kw: cce(h, e, t, **kw)])
def test_per_token_losses_summed_give_the_sum_reduction(fn):
    """The upstream gradient of `none` then `.sum()` is one value broadcast (stride 0)."""
    problem = fp32_problem("shared")
    by_token = grads(lambda *a: fn(*a, reduction="none").sum(), problem)
    summed = grads(lambda *a: fn(*a, reduction="sum"), problem)
    for got, want in zip(by_token, summed, strict=True):
        torch.testing.assert_close(got, want)


def test_modules_match_functions():
    problem = fp32_problem("shared")
    args = (problem.hidden, problem.emb, problem.targets)
    torch.testing.assert_close(CCEMinus(temperature=0.5)(*args, problem.negatives),
                               cce_minus(*args, problem.negatives, temperature=0.5))
    torch.testing.assert_close(CCE()(*args), cce(*args))


def test_bad_arguments_are_named():
    problem = fp32_problem("per_position")
    args = (problem.hidden, problem.emb, problem.targets)
    with pytest.raises(ValueError, match="per_position negatives need 37 rows, got 36"):
        cce_minus(*args, problem.negatives[:36])
    with pytest.raises(ValueError, match="tile_size must be a power of two >= 16, got 24"):
        cce_minus(*args, problem.negatives[:2], tile_size=24)
    with pytest.raises(ValueError, match="must share d"):
        cce_minus(problem.hidden[:, :5], problem.emb, problem.targets, problem.negatives)
    with pytest.raises(ValueError, match="negatives must be integer ids"):
        cce_minus(*args, problem.negatives.float())
    with pytest.raises(ValueError, match="unknown reduction 'avg'; choose one of"):
        cce_minus(*args, problem.negatives, reduction="avg")
    with pytest.raises(ValueError, match="log_q needs one value per row"):
        cce_minus(*args, problem.negatives, log_q=torch.zeros(3, device=DEVICE))


@pytest.mark.parametrize("mode", MODES)
def test_large_catalog_accumulates_touched_rows_only(mode, monkeypatch):
    """Few touched rows in a large table: the accumulator is compact, the result the same."""
    compact_calls = []
    compact = fused_module.compact_accumulator
    monkeypatch.setattr(fused_module, "compact_accumulator",
                        lambda *a: compact_calls.append(compact(*a)) or compact_calls[-1])
    problem = fp32_problem(mode, num_items=2000)
    check(cce_minus, reference.ce_minus, problem, tile_size=problem.tile_size)
    owners, accumulator = compact_calls[-1]
    assert len(owners) == 2001 and len(accumulator) < 1000
    _, _, d_emb = grads(cce_minus, problem, tile_size=problem.tile_size)
    untouched = owners == UNTOUCHED
    touched_ids = torch.cat([problem.targets, problem.negatives.flatten()])
    assert untouched.sum() == 2001 - len(torch.unique(touched_ids))
    assert (d_emb[untouched] == 0).all()
