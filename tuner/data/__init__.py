"""Datasets by name: MovieLens, any CSV/parquet log, or the embedded synthetic generator.

    >>> from cce_tune.tuner.data import DataOptions, load
    >>> data = load(DataOptions(dataset="synthetic"))
    >>> print(data.summary())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

from cce_tune.tuner.data.cache import cache_dir, cached, cached_counts
from cce_tune.tuner.data.movielens import MOVIELENS, ratings_path, read_ratings
from cce_tune.tuner.data.prepare import PrepareOptions, prepare
from cce_tune.tuner.data.progress import building
from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.data.synthetic import SYNTHETIC_PRESETS, generate
from cce_tune.tuner.data.tabular import TABULAR_SUFFIXES, ColumnNames, read_table
from cce_tune.tuner.errors import DataError

KNOWN_DATASETS = (*SYNTHETIC_PRESETS, *MOVIELENS)

__all__ = ["DataOptions", "KNOWN_DATASETS", "SequenceData", "counts", "load"]


@dataclass(frozen=True)
class DataOptions:
    """Which data, and how to prepare it; every field is part of the cache key."""

    dataset: str = "synthetic"
    data_dir: Path | None = None
    prepare: PrepareOptions = field(default_factory=PrepareOptions)
    columns: ColumnNames = field(default_factory=ColumnNames)
    seed: int = 0  # the synthetic generator's


def load(options: DataOptions) -> SequenceData:
    """Prepared sequences for `options`, from the cache when they were prepared before."""
    return _load(options, prepare=True)


def load_prepared(options: DataOptions) -> SequenceData | None:
    """The prepared sequences for `options` if the cache holds them, else None: nothing is
    generated, read or downloaded (for an answer that must come at once, `estimate`'s)."""
    try:
        return _load(options, prepare=False)
    except (_NotPrepared, DataError):
        return None


class _NotPrepared(Exception):
    """Raised instead of preparing data that `load_prepared` found no cache of."""


def _refuse(name: str) -> NoReturn:
    raise _NotPrepared(name)


def _load(options: DataOptions, prepare: bool) -> SequenceData:
    """`load`, or without `prepare` the cache's copy alone (_NotPrepared without one)."""
    name = options.dataset
    if name in SYNTHETIC_PRESETS:
        spec = SYNTHETIC_PRESETS[name]
        return cached({"name": name, "spec": asdict(spec), "seed": options.seed},
                      lambda: _generated(spec, options.seed) if prepare else _refuse(name))
    if name in MOVIELENS:
        path = ratings_path(MOVIELENS[name], options.data_dir, cache_dir(), download=prepare)
        return _prepared(name, path, lambda: read_ratings(path), options, prepare)
    path = Path(name)
    if path.suffix in TABULAR_SUFFIXES:
        return _prepared(path.stem, path, lambda: read_table(path, options.columns), options,
                         prepare)
    raise _unknown(name)


def _unknown(name: str) -> DataError:
    return DataError(
        f"unknown dataset {name!r}; choose one of {', '.join(KNOWN_DATASETS)}, "
        f"or give a file ending in {', '.join(TABULAR_SUFFIXES)}"
    )


def counts(options: DataOptions) -> tuple[int, int]:
    """(users, items) without loading the data: metadata for known datasets (an upper bound
    when ratings are filtered more than by default), else the prepared cache's."""
    name = options.dataset
    if name in SYNTHETIC_PRESETS:
        spec = SYNTHETIC_PRESETS[name]
        return spec.num_users, spec.num_items
    if name in MOVIELENS:
        return MOVIELENS[name].num_users, MOVIELENS[name].num_items
    path = Path(name)
    if path.suffix not in TABULAR_SUFFIXES:
        raise _unknown(name)
    found = cached_counts(_key(path.stem, path, options))
    if found is None:
        raise DataError(f"{path} is not prepared yet: run `cce-tune data --dataset {path}` "
                        "once, or give --num-users and --num-items")
    return found


def _key(name: str, path: Path, options: DataOptions) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    stat = path.stat()
    return {
        "name": name,
        "source": [str(path.resolve()), stat.st_size, stat.st_mtime_ns],
        "prepare": asdict(options.prepare),
        "columns": asdict(options.columns),
    }


def _prepared(name: str, path: Path, read, options: DataOptions,
              allowed: bool = True) -> SequenceData:
    def build() -> SequenceData:
        if not allowed:
            _refuse(name)
        with building(f"preparing {name} (once: it is cached)"):
            return prepare(read(), options.prepare, name)

    return cached(_key(name, path, options), build)


def _generated(spec, seed: int) -> SequenceData:
    with building(f"generating {spec.name} (once: it is cached)") as advance:
        return generate(spec, seed, progress=advance)
