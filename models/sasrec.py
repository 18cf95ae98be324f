"""SASRec (Kang & McAuley, 2018): causal self-attention over a user's item sequence.

`forward` returns hidden states, not scores: the loss owns the output projection onto the
(shared) item embeddings, so a fused loss can score items without materialising logits.
Given a `Packed` layout, `forward` runs several users' sequences laid end to end with no
padding (`models.packing`), each attending only to itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from cce_tune.models.packing import Packed, packed_attention
from cce_tune.models.sasrec_config import SASRecConfig, bias_columns

# Not cuDNN's attention: it builds an execution plan per shape and thread, which on an H100
# took 1.5 s forward and 1.8 s backward at each tuning trial's first step (for 0.6 ms of GPU
# work). The memory-efficient kernel takes the same additive bias with no plan.
ATTENTION_BACKENDS = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)

    def forward(self, x: torch.Tensor, layout: torch.Tensor | Packed) -> torch.Tensor:
        """x: (batch, length, hidden) with `layout` the additive bias (`attention_bias`), or
        (tokens, hidden) of packed sequences with their `Packed` layout."""
        if isinstance(layout, Packed):
            return self._packed(x, layout)
        bias = layout
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).split(hidden, dim=2)
        shape = (batch, length, self.num_heads, hidden // self.num_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        with sdpa_kernel(ATTENTION_BACKENDS):
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
            )
        return self.out(y.transpose(1, 2).reshape(batch, length, hidden))

    def _packed(self, x: torch.Tensor, layout: Packed) -> torch.Tensor:
        tokens, hidden = x.shape
        q, k, v = self.qkv(x).view(tokens, 3, self.num_heads, -1).unbind(1)
        return self.out(packed_attention(q, k, v, layout).reshape(tokens, hidden))


class Block(nn.Module):
    """Pre-norm transformer block: attention then a two-layer feed-forward, both residual."""

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.hidden)
        self.attn = CausalSelfAttention(config)
        self.norm_ffn = nn.LayerNorm(config.hidden)
        self.ffn = nn.Sequential(
            nn.Linear(config.hidden, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, layout: torch.Tensor | Packed) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm_attn(x), layout))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class SASRec(nn.Module):
    causal = True  # position i attends to positions j <= i
    extra_rows = 0  # item-table rows after the items (BERT4Rec's mask token)

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.num_items + 1 + self.extra_rows, config.hidden,
                                     padding_idx=0, sparse=config.sparse_embedding)
        self.pos_emb = nn.Embedding(config.max_len, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(config.hidden)
        nn.init.normal_(self.item_emb.weight, std=config.hidden**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    @property
    def output_embedding(self) -> torch.Tensor:
        """Rows score items: row 0 is padding and is never a class."""
        return self.item_emb.weight

    def forward(self, items: torch.Tensor, positions: torch.Tensor | None = None,
                layout: Packed | None = None) -> torch.Tensor:
        """(batch, length) item ids, left-padded with 0 -> (batch, length, hidden).

        Positions count from the right: the last column is position max_len - 1 whatever
        `length` is, so a batch cut to its longest sequence (`tuner.sequences.batching`)
        gives the same outputs as its full windows.

        Packed: (tokens,) item ids of sequences laid end to end as `layout` says, each
        token's `positions` as a full window numbers its columns -> (tokens, hidden), each
        sequence's rows those its padded window gives (causal models only).
        """
        if layout is not None:
            return self._packed(items, positions, layout)
        length, max_len = items.shape[1], self.config.max_len
        if length > max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {max_len}")
        positions = torch.arange(max_len - length, max_len, device=items.device)
        bias = attention_bias(items != 0, _compute_dtype(self.item_emb.weight), self.causal)
        # The embeddings go straight to the blocks: a name held here would keep them alive
        # through every block of a no-grad forward (evaluation's peak, by a float32 (B, L, d)).
        return self._encode(self._embed(items, positions), bias)

    def _packed(self, items: torch.Tensor, positions: torch.Tensor,
                layout: Packed) -> torch.Tensor:
        if not self.causal:
            raise ValueError("packed sequences are for causal models only")
        return self._encode(self._embed(items, positions), layout)

    def _embed(self, items: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Item and position embeddings, padding (item 0) zeroed."""
        x = self.item_emb(items) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        return self.drop(x) * (items != 0).unsqueeze(-1)

    def _encode(self, x: torch.Tensor, layout: torch.Tensor | Packed) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, layout)
        return self.norm(x)


def attention_bias(real: torch.Tensor, dtype: torch.dtype, causal: bool = True) -> torch.Tensor:
    """(batch, 1, L, L) additive mask, built once for all blocks in the dtype attention runs
    in (a boolean mask is converted to one per block, and a mismatched dtype cast per block).

    Position i attends to real positions j <= i (every real position, without `causal`); a
    padding row attends to itself only, so no row is empty (an empty softmax is NaN).
    Padding rows are ignored by the loss.
    """
    batch, length = real.shape
    seen = real[:, None, :]
    if causal:
        seen = seen & torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
    diagonal = torch.eye(length, dtype=torch.bool, device=real.device)
    blocked = ~(seen | diagonal)
    bias = torch.zeros(batch, 1, length, bias_columns(length), dtype=dtype, device=real.device)
    bias = bias[..., :length]
    return bias.masked_fill_(blocked.unsqueeze(1), -torch.inf)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """What the attention's inputs are cast to: the autocast dtype when autocast is on, else
    that of `x` (the embeddings', whose dtype the item table's weight gives)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype
