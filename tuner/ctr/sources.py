"""Click datasets by name: the generated presets, or a Criteo file (last 10 % validates)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tuner.ctr.batches import ClickBatch, ClickGenerator, ClickSpec
from tuner.ctr.criteo import CriteoOptions, load_criteo
from tuner.errors import DataError

# Shaped like a small click log: tables from 10k rows down to 10, 13 dense features.
CLICK_PRESETS = {
    "synthetic-dlrm": ClickSpec((10_000, 5_000, 2_000, 1_000, 500, 100, 50, 10),
                                dense_features=13, lookups=2, samples=500_000),
}
CLICK_PRESETS["random-dlrm"] = CLICK_PRESETS["synthetic-dlrm"]
VALID_SAMPLES = 50_000


@dataclass
class ClickSource:
    table_sizes: tuple[int, ...]
    dense_features: int
    train: Callable[[], Iterable[ClickBatch]]  # one epoch's batches
    valid: list[ClickBatch]


def click_source(dataset: str, batch_size: int, seed: int = 0,
                 options: CriteoOptions | None = None) -> ClickSource:
    if dataset in CLICK_PRESETS:
        spec = CLICK_PRESETS[dataset]
        generator = ClickGenerator(spec, planted=dataset.startswith("synthetic"), seed=seed)
        valid = list(generator.batches(batch_size, VALID_SAMPLES))
        return ClickSource(spec.table_sizes, spec.dense_features,
                           lambda: generator.batches(batch_size), valid)
    path = Path(dataset)
    if not path.is_file():
        raise DataError(f"unknown click dataset {dataset!r}; choose one of "
                        f"{', '.join(CLICK_PRESETS)}, or give a Criteo file")
    data = load_criteo(path, options or CriteoOptions())
    split = int(len(data.labels) * 0.9)
    return ClickSource(data.table_sizes, data.dense.shape[1],
                       lambda: data.batches(batch_size, stop=split),
                       list(data.batches(batch_size, start=split)))
