"""DLRM (Naumov et al., 2019): embedding tables for categorical features, MLPs for dense ones,
and their pairwise interaction, for click-through prediction.

    >>> model = DLRM(DLRMConfig(table_sizes=(1000, 50), bottom=(13, 64, 16), top=(32, 1),
    ...                         embedding_dim=16))
    >>> logits = model(dense, indices, offsets)   # (batch,)

Categorical lookups are multi-hot, in the CSR form `nn.EmbeddingBag` takes: per table, a flat
tensor of row ids and one offset per sample where its ids start; bags are summed.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from cce_tune.models.dlrm_config import DLRMConfig


def mlp(sizes: tuple[int, ...], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def dot_interaction(vectors: torch.Tensor) -> torch.Tensor:
    """(batch, n, d) -> (batch, n (n - 1) / 2): each pair's dot product once, no diagonal."""
    n = vectors.shape[1]
    products = torch.bmm(vectors, vectors.transpose(1, 2))
    rows, cols = torch.triu_indices(n, n, offset=1, device=vectors.device)
    return products[:, rows, cols]


def interact(x: torch.Tensor, pooled: torch.Tensor, interaction: str) -> torch.Tensor:
    """The top MLP's input: the bottom MLP's output (batch, d) beside, with "dot", every
    pair's dot product among it and the pooled vectors (batch, tables, d), or with "cat",
    the pooled vectors themselves."""
    if interaction == "dot":
        return torch.cat([x, dot_interaction(torch.cat([x.unsqueeze(1), pooled], dim=1))], 1)
    return torch.cat([x, pooled.reshape(x.shape[0], -1)], dim=1)


def bag_of_each_id(starts: torch.Tensor, num_ids: int) -> torch.Tensor:
    """(num_ids,) the bag (sample) each id belongs to, from the bags' CSR start offsets."""
    sizes = torch.diff(starts, append=starts.new_full((1,), num_ids))  # no copy from the host
    return torch.repeat_interleave(torch.arange(len(starts), device=starts.device), sizes,
                                   output_size=num_ids)


class _BagsWithSGD(torch.autograd.Function):
    """Sum-pooled lookups whose backward applies SGD to the looked-up rows in place, so the
    tables' gradient never exists, sparse or dense (FBGEMM's fused-optimizer tables do the
    same)."""

    @staticmethod
    def forward(ctx, weight, ids, starts, lr):
        ctx.save_for_backward(ids, starts)
        ctx.weight, ctx.lr = weight, lr
        return F.embedding_bag(ids, weight, starts, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        ids, starts = ctx.saved_tensors
        with torch.no_grad():
            ctx.weight.index_add_(0, ids, grad[bag_of_each_id(starts, len(ids))],
                                  alpha=-ctx.lr)
        return None, None, None, None


def pool(tables: nn.EmbeddingBag, first_rows: tuple[int, ...], indices: list[torch.Tensor],
         offsets: list[torch.Tensor], table_lr: float | None = None) -> torch.Tensor:
    """Sum-pooled lookups of several tables held as row ranges of one EmbeddingBag (table i
    starts at row `first_rows[i]`) -> (batch, tables, d). With `table_lr`, the backward
    updates the looked-up rows by SGD in place (`_BagsWithSGD`).

    Offsets into the fused table are added as Python numbers: a tensor made from host
    values would be a copy that waits for the GPU, every step.
    """
    batch, count = len(offsets[0]), len(indices)
    id_starts = itertools.accumulate((len(ids) for ids in indices[:-1]), initial=0)
    ids = torch.cat([ids + first for ids, first in zip(indices, first_rows, strict=True)])
    starts = torch.cat([bags + start for bags, start in zip(offsets, id_starts, strict=True)])
    if table_lr is not None and torch.is_grad_enabled():
        flat = _BagsWithSGD.apply(tables.weight, ids, starts, table_lr)
    else:
        flat = tables(ids, starts)
    return flat.view(count, batch, -1).transpose(0, 1)


class DLRM(nn.Module):
    def __init__(self, config: DLRMConfig) -> None:
        super().__init__()
        self.config = config
        self.bottom = mlp(config.bottom, last_activation=True)
        # All tables as row ranges of one EmbeddingBag: one lookup, one backward and one
        # sparse update per step instead of one per table (TorchRec fuses them the same way).
        self.tables = nn.EmbeddingBag(sum(config.table_sizes), config.embedding_dim,
                                      mode="sum", sparse=config.sparse)
        self.first_rows = tuple(itertools.accumulate(config.table_sizes[:-1], initial=0))
        self.top = mlp((config.interaction_dim, *config.top), last_activation=False)
        bound = 1.0 / config.embedding_dim**0.5  # the reference code's uniform table init
        nn.init.uniform_(self.tables.weight, -bound, bound)
        self.table_lr: float | None = None

    def fuse_table_sgd(self, lr: float) -> None:
        """Update the tables by SGD inside the backward (no table gradient, no optimizer
        for them); without it the tables get sparse gradients for an optimizer to apply."""
        self.table_lr = lr

    def forward(self, dense: torch.Tensor, indices: list[torch.Tensor],
                offsets: list[torch.Tensor]) -> torch.Tensor:
        """dense (batch, dense features); per table, ids and offsets -> logits (batch,)."""
        pooled = pool(self.tables, self.first_rows, indices, offsets,
                      self.table_lr if self.training else None)
        return self.top(interact(self.bottom(dense), pooled, self.config.interaction)
                        ).squeeze(1)

    def table(self, index: int) -> torch.Tensor:
        """Table `index`'s rows (a view of the fused weight)."""
        first = self.first_rows[index]
        return self.tables.weight[first:first + self.config.table_sizes[index]]

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.tables.weight]

    def dense_parameters(self) -> list[nn.Parameter]:
        return [*self.bottom.parameters(), *self.top.parameters()]
