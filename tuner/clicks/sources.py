"""Click datasets by name: the generated presets, or a Criteo file (last 10 % validates)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cce_tune.tuner.clicks.batches import ClickBatch, ClickGenerator, ClickSpec
from cce_tune.tuner.clicks.config import CriteoOptions
from cce_tune.tuner.clicks.criteo import load_criteo
from cce_tune.tuner.errors import DataError

# Shaped like a small click log: tables from 10k rows down to 10, 13 dense features.
CLICK_PRESETS = {
    "synthetic-dlrm": ClickSpec((10_000, 5_000, 2_000, 1_000, 500, 100, 50, 10),
                                dense_features=13, lookups=2, samples=500_000),
}
CLICK_PRESETS["random-dlrm"] = CLICK_PRESETS["synthetic-dlrm"]
# A run of a few trials in a minute on a laptop's CPU (the tests tune it).
CLICK_PRESETS["synthetic-dlrm-small"] = ClickSpec(
    (1_000, 500, 100, 20), dense_features=13, lookups=2, samples=20_000)
VALID_SAMPLES = 50_000  # at most; a tenth of a smaller preset


def click_lookups(dataset: str) -> int:
    """Ids per bag (at most) in `dataset`: a preset's, or one per feature in a Criteo file."""
    return CLICK_PRESETS[dataset].lookups if dataset in CLICK_PRESETS else 1


@dataclass
class ClickSource:
    table_sizes: tuple[int, ...]
    dense_features: int
    lookups: int  # ids per bag (at most), which a step's memory grows with
    train: Callable[[], Iterable[ClickBatch]]  # one epoch's batches
    valid: list[ClickBatch]


def click_source(dataset: str, batch_size: int, seed: int = 0,
                 options: CriteoOptions | None = None, device: str = "cpu") -> ClickSource:
    """A generated preset's batches are drawn on `device`; a Criteo file's are read on the
    CPU (the trainer moves them)."""
    if dataset in CLICK_PRESETS:
        spec = CLICK_PRESETS[dataset]
        generator = ClickGenerator(spec, planted=dataset.startswith("synthetic"), seed=seed,
                                   device=device)
        valid = list(generator.batches(batch_size, min(VALID_SAMPLES, spec.samples // 10)))
        return ClickSource(spec.table_sizes, spec.dense_features, spec.lookups,
                           lambda: generator.batches(batch_size), valid)
    path = Path(dataset)
    if not path.is_file():
        raise DataError(f"unknown click dataset {dataset!r}; choose one of "
                        f"{', '.join(CLICK_PRESETS)}, or give a Criteo file")
    data = load_criteo(path, options or CriteoOptions())
    split = int(len(data.labels) * 0.9)
    return ClickSource(data.table_sizes, data.dense.shape[1], 1,
                       lambda: data.batches(batch_size, stop=split),
                       list(data.batches(batch_size, start=split)))
