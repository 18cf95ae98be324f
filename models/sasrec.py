"""SASRec (Kang & McAuley, 2018): causal self-attention over a user's item sequence.

`forward` returns hidden states, not scores: the loss owns the output projection onto the
(shared) item embeddings, so a fused loss can score items without materialising logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SASRecConfig:
    num_items: int  # item ids 1..num_items; 0 is padding
    max_len: int = 50
    hidden: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.hidden % self.num_heads:
            raise ValueError(
                f"hidden size {self.hidden} is not divisible by {self.num_heads} heads"
            )


class CausalSelfAttention(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).split(hidden, dim=2)
        shape = (batch, length, self.num_heads, hidden // self.num_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(batch, length, hidden))


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

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm_attn(x), allowed))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class SASRec(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.num_items + 1, config.hidden, padding_idx=0)
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

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(batch, length) item ids, left-padded with 0 -> (batch, length, hidden)."""
        length = items.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.config.max_len}")
        real = items != 0
        positions = torch.arange(length, device=items.device)
        x = self.item_emb(items) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        x = self.drop(x) * real.unsqueeze(-1)
        # Position i attends to real positions j <= i; a padding row attends to itself only, so
        # no row is empty (an empty softmax is NaN). Padding rows are ignored by the loss.
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        diagonal = torch.eye(length, dtype=torch.bool, device=items.device)
        allowed = (causal & real[:, None, :]) | diagonal
        allowed = allowed.unsqueeze(1)  # broadcast over heads
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)
