"""Packed sequences: each attends only to itself, and SASRec gives every user's real items
the outputs its padded window gives them, whichever attention path runs."""

import pytest
import torch
import torch.nn.functional as F

from cce_tune.models import SASRec, SASRecConfig
from cce_tune.models.packing import Packed, _padded_attention, packed_attention

LENGTHS = [3, 12, 1, 7]  # and a padding sequence of 5 after them
TOKENS = sum(LENGTHS) + 5


def layout(max_len: int = 12, device: str = "cpu") -> Packed:
    return Packed.of(torch.tensor(LENGTHS, device=device), TOKENS, max_len, padding=5)


def per_sequence(q, k, v, bounds):
    """Causal attention run on each sequence alone."""
    outs = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        part = [t[start:end].transpose(0, 1) for t in (q, k, v)]
        outs.append(F.scaled_dot_product_attention(*part, is_causal=True).transpose(0, 1))
    return torch.cat(outs)


def test_the_layout_numbers_sequences_and_offsets():
    packed = layout()
    assert packed.cu_seqlens.tolist() == [0, 3, 15, 16, 23, 28]
    assert packed.cu_seqlens.dtype == torch.int32
    assert packed.segment.tolist() == [0] * 3 + [1] * 12 + [2] + [3] * 7 + [4] * 5
    assert packed.offset.tolist() == [*range(3), *range(12), 0, *range(7), *range(5)]


def test_padded_attention_is_attention_within_each_sequence():
    torch.manual_seed(0)
    q, k, v = (torch.randn(TOKENS, 2, 8, dtype=torch.float64) for _ in range(3))
    got = _padded_attention(q, k, v, layout())
    torch.testing.assert_close(got, per_sequence(q, k, v, layout().cu_seqlens.tolist()))


def test_padding_longer_than_the_sequences_leaves_them_alone():
    torch.manual_seed(2)
    real = sum(LENGTHS)
    long_padding = Packed.of(torch.tensor(LENGTHS), real + 20, max_len=12, padding=20)
    q, k, v = (torch.randn(real + 20, 2, 8, dtype=torch.float64) for _ in range(3))
    got = _padded_attention(q, k, v, long_padding)
    bounds = long_padding.cu_seqlens.tolist()[:-1]
    torch.testing.assert_close(got[:real], per_sequence(q[:real], k[:real], v[:real], bounds))
    assert torch.isfinite(got).all()


def test_gradients_stay_within_each_sequence():
    torch.manual_seed(1)
    q, k, v = (torch.randn(TOKENS, 1, 4, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    packed_attention(q, k, v, layout())[3:15].sum().backward()  # the second sequence only
    for t in (q, k, v):
        outside = torch.cat([t.grad[:3], t.grad[15:]])
        assert torch.count_nonzero(outside) == 0
        assert torch.count_nonzero(t.grad[3:15]) > 0


def packed_inputs(windows: torch.Tensor):
    """Each user's real items from its left-padded window, end to end, then 5 padding
    tokens, with each token's position (its window column)."""
    items, positions = [], []
    max_len = windows.shape[1]
    for row, length in zip(windows, LENGTHS, strict=True):
        items.append(row[max_len - length:])
        positions.append(torch.arange(max_len - length, max_len))
    items.append(torch.zeros(5, dtype=torch.long))
    positions.append(torch.zeros(5, dtype=torch.long))
    return torch.cat(items), torch.cat(positions)


def test_sasrec_gives_packed_users_their_padded_outputs():
    torch.manual_seed(0)
    net = SASRec(SASRecConfig(num_items=30, max_len=12, hidden=16, num_heads=2)).eval()
    windows = torch.randint(1, 31, (len(LENGTHS), 12))
    for row, length in zip(windows, LENGTHS, strict=True):
        row[:12 - length] = 0
    padded = net(windows)
    items, positions = packed_inputs(windows)
    packed = net(items, positions, layout())
    start = 0
    for row, length in enumerate(LENGTHS):
        torch.testing.assert_close(packed[start:start + length], padded[row, 12 - length:])
        start += length


def test_bidirectional_models_refuse_packed_sequences():
    from cce_tune.models import BERT4Rec, BERT4RecConfig

    net = BERT4Rec(BERT4RecConfig(num_items=30, max_len=12, hidden=16))
    items = torch.ones(TOKENS, dtype=torch.long)
    with pytest.raises(ValueError, match="causal models only"):
        net(items, torch.zeros_like(items), layout())


@pytest.mark.gpu
def test_the_variable_length_kernel_agrees_with_the_padded_path():
    """On a GPU in bf16 the packed attention runs on FlashAttention's variable-length kernel;
    it must give what the padded path gives, forward and backward."""
    from cce_tune.models.packing import varlen_attn

    if varlen_attn is None:
        pytest.skip("torch < 2.10 has no variable-length attention")
    torch.manual_seed(0)
    packed = layout(device="cuda")
    inputs = [torch.randn(TOKENS, 2, 64, device="cuda", dtype=torch.bfloat16,
                          requires_grad=True) for _ in range(3)]
    grad = torch.randn(TOKENS, 2, 64, device="cuda", dtype=torch.bfloat16)
    results = []
    for attend in (packed_attention, _padded_attention):
        out = attend(*inputs, packed)
        grads = torch.autograd.grad(out, inputs, grad)
        results.append((out, *grads))
    for fast, padded in zip(*results, strict=True):
        torch.testing.assert_close(fast.float(), padded.float(), atol=2e-2, rtol=2e-2)
