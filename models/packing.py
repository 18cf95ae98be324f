"""Sequences packed end to end: several users' items in one row of tokens with no padding
between them, each sequence attending only to itself.

A batch of random users at max_len 512 is mostly padding (MovieLens users have a median of
about 68 ratings), and grouping users by length to avoid it changes which users share a
step, which cost validation NDCG@10 (benchmarks/results/step-h200.md). Packed, a batch keeps
its random users and computes only their real items: every layer runs on the tokens, and
attention runs per sequence on FlashAttention's variable-length kernel
(`torch.nn.attention.varlen`, torch >= 2.10, CUDA, half precision). Where that kernel does
not apply (the CPU, float32), the tokens are laid out padded for that one call, which gives
the same outputs at a padded batch's cost.

The variable-length kernel takes no attention dropout, so packed sequences train without it
(the blocks' other dropouts stay); both paths here do the same, so they agree.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # a torch without it: the padded path only
    varlen_attn = None


@dataclass(frozen=True)
class Packed:
    """Where each sequence of a packed row of tokens starts and ends."""

    cu_seqlens: torch.Tensor  # (sequences + 1,) int32: the first token of each, then the end
    segment: torch.Tensor  # (tokens,) int64: the sequence each token belongs to
    offset: torch.Tensor  # (tokens,) int64: its index within that sequence
    max_len: int  # no sequence but the last, the padding, is longer
    padding: int  # nor is the padding

    @classmethod
    def of(cls, lengths: torch.Tensor, tokens: int, max_len: int, padding: int) -> Packed:
        """Sequences of `lengths` (int64, on the device) end to end in `tokens` tokens, more
        than they hold: the rest, at most `padding`, is one more sequence. Built on the
        device from host-known sizes alone, so a CUDA graph can capture it; nothing there
        checks those sizes (`tuner.sequences.token_bound.packed_tokens` makes them)."""
        ends = lengths.cumsum(0)
        token = torch.arange(tokens, device=lengths.device)
        segment = torch.searchsorted(ends, token, right=True)
        starts = torch.cat([ends - lengths, ends[-1:]])
        bounds = torch.cat([ends.new_zeros(1), ends, ends.new_full((1,), tokens)])
        return cls(bounds.int(), segment, token - starts[segment], max_len, padding)


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     layout: Packed) -> torch.Tensor:
    """Causal attention within each sequence of `layout`: (tokens, heads, head dim) ->
    the same shape."""
    if varlen_attn is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        longest = max(layout.max_len, layout.padding)
        return varlen_attn(q, k, v, layout.cu_seqlens, layout.cu_seqlens, longest, longest,
                           **_CAUSAL)
    return _padded_attention(q, k, v, layout)


def _padded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      layout: Packed) -> torch.Tensor:
    """The same on a padded (sequences, max_len) layout, each sequence from column 0: a
    causal mask keeps every real query on its own sequence's keys. The padding's tokens
    past max_len share its last column: what they give is never read, and the loss gives
    them no gradient."""
    tokens, heads, dim = q.shape
    sequences = layout.cu_seqlens.numel() - 1
    slot = layout.segment * layout.max_len + layout.offset.clamp(max=layout.max_len - 1)

    def padded(t: torch.Tensor) -> torch.Tensor:
        grid = t.new_zeros(sequences * layout.max_len, heads, dim).index_copy(0, slot, t)
        return grid.view(sequences, layout.max_len, heads, dim).transpose(1, 2)

    y = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), is_causal=True)
    return y.transpose(1, 2).reshape(-1, heads, dim).index_select(0, slot)


def _causal_argument() -> dict:
    """How this torch's varlen_attn is told to be causal: a window reaching no key to the
    right (torch 2.10 and later), or `is_causal` (its first signature)."""
    if varlen_attn is None:
        return {}
    if "window_size" in inspect.signature(varlen_attn).parameters:
        return {"window_size": (-1, 0)}
    return {"is_causal": True}


_CAUSAL = _causal_argument()
