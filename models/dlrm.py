"""DLRM (Naumov et al., 2019): embedding tables for categorical features, MLPs for dense ones,
and their pairwise interaction, for click-through prediction.

    >>> model = DLRM(DLRMConfig(table_sizes=(1000, 50), bottom=(13, 64, 16), top=(32, 1),
    ...                         embedding_dim=16))
    >>> logits = model(dense, indices, offsets)   # (batch,)

Categorical lookups are multi-hot, in the CSR form `nn.EmbeddingBag` takes: per table, a flat
tensor of row ids and one offset per sample where its ids start; bags are summed.
"""

from __future__ import annotations

import torch
from torch import nn

from models.dlrm_config import DLRMConfig


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


class DLRM(nn.Module):
    def __init__(self, config: DLRMConfig) -> None:
        super().__init__()
        self.config = config
        self.bottom = mlp(config.bottom, last_activation=True)
        self.tables = nn.ModuleList(
            nn.EmbeddingBag(rows, config.embedding_dim, mode="sum", sparse=config.sparse)
            for rows in config.table_sizes)
        self.top = mlp((config.interaction_dim, *config.top), last_activation=False)
        bound = 1.0 / config.embedding_dim**0.5  # the reference code's uniform table init
        for table in self.tables:
            nn.init.uniform_(table.weight, -bound, bound)

    def forward(self, dense: torch.Tensor, indices: list[torch.Tensor],
                offsets: list[torch.Tensor]) -> torch.Tensor:
        """dense (batch, dense features); per table, ids and offsets -> logits (batch,)."""
        x = self.bottom(dense)
        pooled = [table(ids, starts) for table, ids, starts in
                  zip(self.tables, indices, offsets, strict=True)]
        if self.config.interaction == "dot":
            features = torch.cat([x, dot_interaction(torch.stack([x, *pooled], dim=1))], dim=1)
        else:
            features = torch.cat([x, *pooled], dim=1)
        return self.top(features).squeeze(1)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [table.weight for table in self.tables]

    def dense_parameters(self) -> list[nn.Parameter]:
        return [*self.bottom.parameters(), *self.top.parameters()]
