"""Batches of click-through samples in the CSR form DLRM takes, and the two generators.

`random` draws features and labels independently, for speed and memory benchmarks (the DLRM
reference code's `--data-generation=random`). `synthetic` draws the same features but labels
them with a planted logistic model over them, so a trained DLRM must beat a constant
predictor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from cce_tune.models.dlrm import bag_of_each_id

DISTRIBUTIONS = ("uniform", "gaussian")


@dataclass
class ClickBatch:
    dense: torch.Tensor  # (batch, dense features) float32
    indices: list[torch.Tensor]  # per table: the bags' row ids, concatenated (int64)
    offsets: list[torch.Tensor]  # per table: (batch,) where each sample's bag starts
    labels: torch.Tensor  # (batch,) float32 in {0, 1}

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ClickSpec:
    """Shape of generated click data."""

    table_sizes: tuple[int, ...]
    dense_features: int = 13
    lookups: int = 1  # ids per bag: exactly this many, or 1..this many when not fixed
    fixed_lookups: bool = True
    distribution: str = "uniform"  # of ids over a table's rows
    samples: int = 100_000

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution {self.distribution!r}: choose one of "
                             f"{', '.join(DISTRIBUTIONS)}")
        if self.lookups < 1:
            raise ValueError(f"lookups per bag must be at least 1, got {self.lookups}")


class ClickGenerator:
    """Draws batches on `device`; with `planted`, labels follow a hidden logistic model."""

    def __init__(self, spec: ClickSpec, planted: bool, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.spec, self.planted, self.device = spec, planted, torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        if planted:
            truth = torch.Generator("cpu").manual_seed(seed + 1)
            self.dense_weights = torch.randn(spec.dense_features, generator=truth).to(device)
            self.dense_weights /= spec.dense_features**0.5
            self.row_weights = [torch.randn(rows, generator=truth).to(device)
                                for rows in spec.table_sizes]

    def batches(self, batch_size: int, samples: int | None = None) -> Iterator[ClickBatch]:
        remaining = self.spec.samples if samples is None else samples
        while remaining > 0:
            size = min(batch_size, remaining)
            remaining -= size
            yield self.batch(size)

    def batch(self, size: int) -> ClickBatch:
        spec, g, device = self.spec, self.generator, self.device
        dense = torch.randn(size, spec.dense_features, generator=g, device=device)
        indices, offsets = [], []
        for rows in spec.table_sizes:
            if spec.fixed_lookups:
                counts = torch.full((size,), spec.lookups, device=device)
            else:
                counts = torch.randint(1, spec.lookups + 1, (size,), generator=g, device=device)
            starts = torch.cumsum(counts, 0) - counts
            total = int(counts.sum())
            if spec.distribution == "uniform":
                ids = torch.randint(0, rows, (total,), generator=g, device=device)
            else:  # centred on the table, a sixth of it either side per standard deviation
                ids = torch.randn(total, generator=g, device=device) * (rows / 6) + rows / 2
                ids = ids.round().clamp(0, rows - 1).long()
            indices.append(ids)
            offsets.append(starts)
        if self.planted:
            logit = dense @ self.dense_weights
            for table, ids, starts in zip(self.row_weights, indices, offsets, strict=True):
                logit = logit.index_add(0, bag_of_each_id(starts, len(ids)),
                                        table[ids] / spec.lookups**0.5)
            labels = torch.bernoulli(torch.sigmoid(logit), generator=g)
        else:
            labels = torch.randint(0, 2, (size,), generator=g, device=device).float()
        return ClickBatch(dense, indices, offsets, labels)
