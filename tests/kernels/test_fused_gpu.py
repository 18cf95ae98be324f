"""The fused kernels at real sizes on a GPU, in bf16 and fp32, and by finite differences."""

import pytest
import torch

import cce_tune.kernels.config as kernel_config
from cce_tune.kernels import InKernelNegatives, cce, cce_minus, in_kernel_ids, reference

pytestmark = pytest.mark.gpu
CATALOG = 26_744


def inputs(tokens, dim, dtype, num_items=CATALOG, seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    hidden = torch.randn(tokens, dim, device="cuda", generator=generator) / dim**0.25
    emb = torch.randn(num_items + 1, dim, device="cuda", generator=generator) / dim**0.25
    targets = torch.randint(1, num_items + 1, (tokens,), device="cuda", generator=generator)
    targets[::7] = 0
    return hidden.to(dtype), emb.to(dtype), targets


def loss_and_grads(fn, hidden, emb, targets, dtype):
    hidden = hidden.detach().to(dtype).requires_grad_()
    emb = emb.detach().to(dtype).requires_grad_()
    loss = fn(hidden, emb, targets)
    return (loss.detach(), *torch.autograd.grad(loss, (hidden, emb)))


def assert_close(fn, ref, hidden, emb, targets, dtype, tolerance):
    ours = loss_and_grads(fn, hidden, emb, targets, dtype)
    expected = loss_and_grads(ref, hidden, emb, targets, torch.float64)
    errors = [((a.double() - b).norm() / b.norm()).item()
              for a, b in zip(ours, expected, strict=True)]
    assert all(error < tolerance for error in errors), errors


TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 1e-2, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("mode,tokens,num_negatives", [
    ("shared", 16_384, 1_024), ("tile", 16_384, 1_024), ("per_position", 2_048, 256)])
def test_real_sizes(dtype, mode, tokens, num_negatives):
    hidden, emb, targets = inputs(tokens, 256, dtype)
    negatives = InKernelNegatives(num_negatives, mode=mode, tile_size=128, seed=7)
    ids = in_kernel_ids(negatives, tokens, CATALOG, "cuda")
    tile_size = 128 if mode == "tile" else None
    assert_close(lambda h, e, t: cce_minus(h, e, t, negatives, sampled_softmax=True),
                 lambda h, e, t: reference.ce_minus(h, e, t, ids, tile_size=tile_size,
                                                    sampled_softmax=True),
                 hidden, emb, targets, dtype, TOLERANCE[dtype])


@pytest.mark.parametrize("dim", [256, 64])  # the tensor cores' forward, the CUDA cores'
@pytest.mark.parametrize("ids", ["read", "drawn", "drawn, past the forward's table"])
def test_per_position_over_chunks(ids, dim, monkeypatch):
    """Compiled, per position over three chunks of the counting sort (4,096 tokens of 601
    pairs at 2^20 slots a chunk), its pairs counted by the forward (drawn ids, and ids read
    on the CUDA cores at d 64: an atomic add from each id's one lane, however the layout
    spreads the id across lanes) or by the backward's pass (ids read at d 256, on the
    tensor cores; ids drawn past MAX_FORWARD_COUNTS)."""
    monkeypatch.setattr(kernel_config, "MAX_SLOTS", 2**20)
    if ids == "drawn, past the forward's table":
        monkeypatch.setattr(kernel_config, "MAX_FORWARD_COUNTS", 0)
    hidden, emb, targets = inputs(4_096, dim, torch.bfloat16)
    drawn = InKernelNegatives(600, mode="per_position", seed=9)
    read = in_kernel_ids(drawn, 4_096, CATALOG, "cuda")
    negatives = read if ids == "read" else drawn
    assert_close(lambda h, e, t: cce_minus(h, e, t, negatives),
                 lambda h, e, t: reference.ce_minus(h, e, t, read),
                 hidden, emb, targets, torch.bfloat16, TOLERANCE[torch.bfloat16])


@pytest.mark.parametrize("dim", [256, 64])  # the tensor cores' forward, the CUDA cores'
@pytest.mark.parametrize("tokens,num_negatives", [(1_003, 67), (1_003, 1_000)])
def test_ids_drawn_ahead_match_the_same_ids_read(tokens, num_negatives, dim):
    """The per-position forward draws in-kernel ids a round of steps ahead into each
    program's scratch: per-token losses equal those from the same ids read from memory (up
    to the compiler's own rounding: a wrong or raced id moves a loss by far more), at sizes
    that end mid-program, mid-step and mid-round, several times over (programs run side by
    side here, unlike in the interpreter)."""
    hidden, emb, targets = inputs(tokens, dim, torch.bfloat16)
    negatives = InKernelNegatives(num_negatives, mode="per_position", seed=3)
    ids = in_kernel_ids(negatives, tokens, CATALOG, "cuda")
    read = cce_minus(hidden, emb, targets, ids, reduction="none")
    for _ in range(3):
        drawn = cce_minus(hidden, emb, targets, negatives, reduction="none")
        torch.testing.assert_close(drawn, read, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_full_catalog_real_size(dtype):
    hidden, emb, targets = inputs(4_096, 64, dtype)
    assert_close(cce, reference.ce, hidden, emb, targets, dtype, TOLERANCE[dtype])


@pytest.mark.parametrize("mode", ["shared", "per_position", "tile"])
def test_finite_differences(mode):
    """Directional derivatives of the fp32 kernel loss against its own backward."""
    hidden, emb, targets = inputs(40, 16, torch.float32, num_items=50, seed=3)
    negatives = InKernelNegatives(24, mode=mode, tile_size=16, seed=11)
    hidden.requires_grad_()
    emb.requires_grad_()
    loss = cce_minus(hidden, emb, targets, negatives, reduction="sum")
    d_hidden, d_emb = torch.autograd.grad(loss, (hidden, emb))
    for param, grad in ((hidden, d_hidden), (emb, d_emb)):
        direction = torch.randn_like(param)
        step = 1e-2
        with torch.no_grad():
            param += step * direction
            up = cce_minus(hidden, emb, targets, negatives, reduction="sum")
            param -= 2 * step * direction
            down = cce_minus(hidden, emb, targets, negatives, reduction="sum")
            param += step * direction
        numeric = (up - down).item() / (2 * step)
        analytic = (grad * direction).sum().item()
        assert abs(numeric - analytic) <= 5e-3 * max(1.0, abs(analytic)), (numeric, analytic)
