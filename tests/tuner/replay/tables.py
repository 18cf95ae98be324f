"""Replay tables written by hand, in the format `cce-tune report` and the GPU grid benchmark
write: `trials.csv` (one row per trial) and `history.csv` (one row per epoch)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

BATCHES = (64, 128, 256, 512, 1024)
NEGATIVES = (256, 512, 1024, 2048, 4096)
MAX_LENS = (50, 100, 200, 400)


def corner_quality(batch: int, negatives: int, max_len: int) -> float:
    """An easy table: the best is the corner that is also fastest and smallest."""
    return (0.30 - 0.02 * math.log2(1024 / batch) - 0.02 * math.log2(negatives / 256)
            - 0.02 * math.log2(max_len / 50))


def quality_of(batch: int, negatives: int, max_len: int) -> float:
    """Smooth in every knob's order, best inside the grid (batch 512, negatives 2048, 200)."""
    b, n, m = math.log2(batch / 512), math.log2(negatives / 2048), math.log2(max_len / 200)
    return 0.30 - 0.012 * b * b - 0.010 * n * n - 0.015 * m * m


def memory_of(batch: int, negatives: int, max_len: int) -> float:
    """GB, growing with each knob: batch x max_len tokens, each with its negatives' logits."""
    return 1.0 + batch * max_len * (64 + negatives) * 2e-7


def seconds_of(batch: int, negatives: int, max_len: int) -> float:
    return 5.0 + 4000.0 / batch + negatives * max_len / 2e4


def write_table(folder: Path, seeds: int = 2, epochs: int = 6, history: bool = True,
                noise: float = 0.001, grid=(BATCHES, NEGATIVES, MAX_LENS),
                quality=quality_of, seconds_per_epoch=seconds_of) -> Path:
    """A full grid with `seeds` rows per point; returns trials.csv's path. Each trial's
    quality rises over its epochs towards its final value, the same share of it at each
    epoch for every trial."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    rows, epochs_rows = [], []
    for number, ((batch, negatives, max_len), seed) in enumerate(
            itertools.product(itertools.product(*grid), range(seeds))):
        final = quality(batch, negatives, max_len) + noise * rng.standard_normal()
        seconds = seconds_per_epoch(batch, negatives, max_len)
        trial = f"{number:05d}"
        memory = memory_of(batch, negatives, max_len)
        rows.append({"trial": trial, "batch_size": batch, "negatives": negatives,
                     "max_len": max_len, "loss": "cce_minus", "seed": seed, "ndcg10": final,
                     "hr10": 2 * final, "epoch_seconds": seconds,
                     "peak_memory_gb": memory * 0.95, "estimate_total_gb": memory,
                     "train_seconds": seconds * epochs, "status": "converged",
                     # more of what the reports and the grid benchmark write: not knobs
                     "estimate_gb": memory * 0.9, "best_epoch": epochs, "epochs": epochs,
                     "shared_epoch_seconds": seconds * 1.5})
        for epoch in range(1, epochs + 1):  # rises towards the final quality
            epochs_rows.append({"trial": trial, "epoch": epoch,
                                "train_seconds": seconds * epoch,
                                "ndcg10": final * (1 - 0.5 ** epoch) / (1 - 0.5 ** epochs)})
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    if history:
        pd.DataFrame(epochs_rows).to_csv(folder / "history.csv", index=False)
    return folder / "trials.csv"
