"""Criteo click logs (the Kaggle display-advertising file and the Terabyte day files).

Each line: a 0/1 label, 13 integer features, 26 categorical features as 8-digit hexadecimal
strings, tab-separated; any feature may be empty. Dense features become log(1 + max(x, 0)),
missing ones 0. A categorical value becomes a row of its feature's table, either hashed
(`hash_size` rows plus row 0 for missing) or, with `min_frequency`, numbered among the values
seen at least that often (row 0 for missing and rare values; a first pass counts them).
Lines are streamed into numpy chunks, never held as Python objects, and the result is cached
as .npz next to the prepared sequence datasets.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cce_tune.tuner.clicks.batches import ClickBatch
from cce_tune.tuner.clicks.config import CriteoOptions
from cce_tune.tuner.data.cache import cache_dir
from cce_tune.tuner.errors import DataError

DENSE, CATEGORICAL = 13, 26
FIELDS = 1 + DENSE + CATEGORICAL
CHUNK = 1 << 18  # rows parsed into one numpy chunk


@dataclass(frozen=True)
class CriteoData:
    dense: np.ndarray  # float32 (rows, 13)
    categorical: np.ndarray  # int64 (rows, 26), row ids into each feature's table
    labels: np.ndarray  # float32 (rows,)
    table_sizes: tuple[int, ...]
    bad_rows: int

    def batches(self, batch_size: int, device: torch.device | str = "cpu",
                start: int = 0, stop: int | None = None) -> Iterator[ClickBatch]:
        """One id per table per sample, in the CSR form DLRM takes."""
        stop = len(self.labels) if stop is None else stop
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            ids = torch.as_tensor(self.categorical[first:last], device=device)
            offsets = torch.arange(last - first, device=device)
            yield ClickBatch(torch.as_tensor(self.dense[first:last], device=device),
                             [ids[:, t].contiguous() for t in range(CATEGORICAL)],
                             [offsets] * CATEGORICAL,
                             torch.as_tensor(self.labels[first:last], device=device))


def load_criteo(path: Path, options: CriteoOptions) -> CriteoData:
    """Parse `path` once, then reuse the cached arrays while the file is unchanged."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    stat = path.stat()
    key = json.dumps({"source": [str(path.resolve()), stat.st_size, stat.st_mtime_ns],
                      "options": asdict(options), "version": 1}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cached = cache_dir() / "criteo" / f"{path.stem}-{digest}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            return CriteoData(stored["dense"], stored["categorical"], stored["labels"],
                              tuple(int(n) for n in stored["table_sizes"]),
                              int(stored["bad_rows"]))
    data = parse_criteo(path, options)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(cached.name + ".part.npz")
    np.savez(partial, dense=data.dense, categorical=data.categorical, labels=data.labels,
             table_sizes=np.array(data.table_sizes), bad_rows=data.bad_rows)
    partial.replace(cached)
    return data


def parse_criteo(path: Path, options: CriteoOptions) -> CriteoData:
    vocab = None
    if options.min_frequency is not None:
        counts = [Counter() for _ in range(CATEGORICAL)]
        for _, _, cats, _ in _Reader(path, options).rows():
            for counter, value in zip(counts, cats, strict=True):
                if value:
                    counter[value] += 1
        vocab = [{v: i + 1 for i, v in enumerate(sorted(
            v for v, n in counter.items() if n >= options.min_frequency))} for counter in counts]
    chunks = []
    reader = _Reader(path, options)
    dense = np.zeros((CHUNK, DENSE), np.float32)
    cats = np.zeros((CHUNK, CATEGORICAL), np.int64)
    labels = np.zeros(CHUNK, np.float32)
    filled = 0
    for label, numbers, values, hashed in reader.rows():
        labels[filled] = label
        dense[filled] = numbers
        if vocab is None:  # row 0 for a missing value, else the value hashed into the table
            cats[filled] = [h % options.hash_size + 1 if v else 0
                            for v, h in zip(values, hashed, strict=True)]
        else:
            cats[filled] = [vocab[t].get(v, 0) for t, v in enumerate(values)]
        filled += 1
        if filled == CHUNK:
            chunks.append((dense.copy(), cats.copy(), labels.copy()))
            filled = 0
    chunks.append((dense[:filled].copy(), cats[:filled].copy(), labels[:filled].copy()))
    sizes = ((options.hash_size + 1,) * CATEGORICAL if vocab is None
             else tuple(len(v) + 1 for v in vocab))
    return CriteoData(np.concatenate([c[0] for c in chunks]),
                      np.concatenate([c[1] for c in chunks]),
                      np.concatenate([c[2] for c in chunks]), sizes, reader.bad)


class _Reader:
    """Good lines of a file, one pass; counts the bad ones it skips."""

    def __init__(self, path: Path, options: CriteoOptions) -> None:
        self.path, self.options, self.bad = path, options, 0

    def rows(self) -> Iterator[tuple]:
        """(label, dense log1p values, categorical strings, the same as numbers) per good
        line."""
        with open(self.path, encoding="ascii", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                parsed = _parse(line.rstrip("\n").rstrip("\r"), self.path, number)
                if isinstance(parsed, DataError):
                    if not self.options.skip_bad_rows:
                        raise DataError(f"{parsed} (or skip bad rows)")
                    self.bad += 1
                    continue
                yield parsed


def _parse(line: str, path: Path, number: int):
    fields = line.split("\t")
    if len(fields) != FIELDS:
        return DataError(f"{path}:{number}: expected {FIELDS} tab-separated fields (label, "
                         f"{DENSE} integers, {CATEGORICAL} hexadecimal), found {len(fields)}")
    if fields[0] not in ("0", "1"):
        return DataError(f"{path}:{number}: label {fields[0]!r} is not 0 or 1")
    numbers = [0.0] * DENSE  # Python floats: numpy per scalar cost twice the whole parse
    for index, text in enumerate(fields[1:1 + DENSE]):
        if text:
            try:
                numbers[index] = math.log1p(max(int(text), 0))
            except ValueError:
                return DataError(f"{path}:{number}: integer feature I{index + 1} is {text!r}")
    values = fields[1 + DENSE:]
    hashed = [0] * CATEGORICAL  # each value as a number, parsed once here
    for index, text in enumerate(values):
        if text:
            try:
                hashed[index] = int(text, 16)
            except ValueError:
                return DataError(f"{path}:{number}: categorical feature C{index + 1} is "
                                 f"{text!r}, not hexadecimal")
    return int(fields[0]), numbers, values, hashed
