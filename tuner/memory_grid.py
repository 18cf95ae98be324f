"""The grids of configurations that `verify-memory` measures, importable without torch."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from kernels.config import LossConfig
from tuner.memory import DatasetShape
from tuner.train_config import TrainConfig


@dataclass(frozen=True)
class GridPoint:
    loss: str
    batch_size: int
    negatives: int
    max_len: int
    hidden: int
    num_items: int
    bf16: bool

    def config(self) -> TrainConfig:
        negatives = self.negatives if self.loss in ("ce_minus", "cce_minus") else 1
        return TrainConfig(loss=LossConfig(self.loss, num_negatives=negatives),
                           batch_size=self.batch_size, max_len=self.max_len, hidden=self.hidden,
                           bf16=self.bf16, device="cuda")

    def shape(self) -> DatasetShape:
        # Enough users for a full batch and an evaluation pass; the data term stays small.
        return DatasetShape(num_users=2 * self.batch_size, num_items=self.num_items)


def default_grid() -> list[GridPoint]:
    """56 points. On the MovieLens-20M catalog, 8 (B, L, d, N) shapes x the 4 losses, bf16 on
    every other shape; on a 1M-item catalog the same shapes for the sampled losses, and 4
    shapes of few tokens for the full-catalog ones (the fused full CE over 1M items and 100k
    tokens is minutes of compute per step, and the reference's logits exceed any GPU)."""
    points = []
    for loss, (index, (b, length, d, n)) in itertools.product(LOSSES, enumerate(SHAPES)):
        points.append(GridPoint(loss, b, n, length, d, 26_744, bf16=index % 2 == 1))
    for loss, (index, (b, length, d, n)) in itertools.product(("ce_minus", "cce_minus"),
                                                             enumerate(SHAPES)):
        points.append(GridPoint(loss, b, n, length, d, 1_000_000, bf16=index % 2 == 1))
    for loss, (b, length, d, bf16) in itertools.product(("ce", "cce"), FEW_TOKENS):
        points.append(GridPoint(loss, b, 1, length, d, 1_000_000, bf16))
    return points


LOSSES = ("ce", "ce_minus", "cce", "cce_minus")
SHAPES = [  # batch, max_len, hidden, negatives
    (64, 50, 64, 128), (256, 200, 64, 512), (128, 400, 128, 2048), (512, 100, 256, 8192),
    (2048, 50, 128, 1024), (1024, 200, 256, 4096), (256, 400, 256, 256), (2048, 100, 64, 8192),
]
FEW_TOKENS = [(64, 50, 64, False), (64, 50, 128, True), (64, 50, 256, True),
              (128, 50, 64, True)]  # batch, max_len, hidden, bf16


def tiny_grid() -> list[GridPoint]:
    """A handful of small points: checks the command end to end in seconds."""
    return [GridPoint(loss, 32, 64, 20, 32, 1_000, bf16=False)
            for loss in ("ce", "ce_minus", "cce", "cce_minus")]


GRIDS: dict[str, Callable[[], list[GridPoint]]] = {"default": default_grid, "tiny": tiny_grid}
