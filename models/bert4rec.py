"""BERT4Rec (Sun et al., 2019): a bidirectional encoder over a user's item sequence, trained by
the cloze task.

Some items of the input are replaced by a mask token and the model predicts them from both
sides; to recommend, the mask token is appended after the history and the item at that
position is predicted. The blocks are SASRec's (`models.sasrec.Block`); only the attention
mask differs: every position sees every real position.

The mask token has a row of its own in the tied item table, row `num_items + 1` (row 0 is
padding); `output_embedding` leaves it out, so it is never scored as an item. Like SASRec,
`forward` returns hidden states, and the loss owns the output projection.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cce_tune.models.bert4rec_config import BERT4RecConfig
from cce_tune.models.sasrec import Block, _compute_dtype
from cce_tune.models.sasrec_config import bias_columns


class BERT4Rec(nn.Module):
    def __init__(self, config: BERT4RecConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.num_items + 2, config.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        # SASRec's block reads hidden, num_heads and dropout, which this config shares.
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(config.hidden)
        nn.init.normal_(self.item_emb.weight, std=config.hidden**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    @property
    def output_embedding(self) -> torch.Tensor:
        """Rows that score items: 0 (padding, never a class) to num_items; the mask token's
        row is not among them."""
        return self.item_emb.weight[: self.config.num_items + 1]

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(batch, length) item ids, left-padded with 0, masked positions holding
        `config.mask_token` -> (batch, length, hidden)."""
        length = items.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.config.max_len}")
        real = items != 0
        positions = torch.arange(length, device=items.device)
        x = self.item_emb(items) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        x = self.drop(x) * real.unsqueeze(-1)
        bias = bidirectional_bias(real, _compute_dtype(x))
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)


def bidirectional_bias(real: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, L, L) additive mask in the attention's dtype, shared by all blocks (as
    `models.sasrec.attention_bias`, without the causal part).

    Every position attends to every real position; a padding row also attends to itself, so
    no row is empty (a padding-only sequence would give NaN). Padding rows are never read.
    """
    batch, length = real.shape
    diagonal = torch.eye(length, dtype=torch.bool, device=real.device)
    blocked = ~(real[:, None, :] | diagonal)
    bias = torch.zeros(batch, 1, length, bias_columns(length), dtype=dtype, device=real.device)
    bias = bias[..., :length]
    return bias.masked_fill_(blocked.unsqueeze(1), -torch.inf)
