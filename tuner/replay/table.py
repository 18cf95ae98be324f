"""A table of measured configurations, grouped into points: what a replayed search evaluates.

    >>> table = load_table(Path("runs/ml-1m-grid"), Columns())   # a run, or a trials.csv
    >>> point = table.lookup({"batch_size": 512, "negatives": 4096, "max_len": 200})  # every knob
    >>> point.outcomes[0].quality, point.memory_gb

A table is one row per trial (`trials.csv`, as `cce-tune report` and the GPU grid benchmark
write it): the knobs, the quality column (`ndcg10`, `auc`), `epoch_seconds`,
`peak_memory_gb`, `estimate_total_gb`, `train_seconds` and `status`; beside it an optional
`history.csv` with one row per epoch (`trial`, `epoch`, cumulative `train_seconds`, quality).

Rows that share their knob values are one *point* with several measured *outcomes* (the
same configuration trained with different seeds). A replayed evaluation of a point draws one
of its outcomes with the replay seed's random generator, so a search meets the table's noise
as a real one would. A point's memory (what the budget is checked against) is the largest of
its rows' memory column: the estimate errs on the safe side, and so does the replay.

Rows that did not run to their end (stopped early, interrupted, out of memory, failed, not
started) or have no quality are left out and counted: their quality is not an outcome.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cce_tune.tuner.early_stopping import COST
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.run_dir import (
    FAILED,
    HISTORY_FILE,
    INTERRUPTED,
    NOT_STARTED,
    OUT_OF_MEMORY,
    REPORT_DIR,
    STOPPED_EARLY,
)

TRIALS_FILE = "trials.csv"
PEAK = "peak_memory_gb"  # the memory objective, as the tuner's families minimise it
ESTIMATE = "estimate_total_gb"
UNFINISHED = (STOPPED_EARLY, INTERRUPTED, OUT_OF_MEMORY, FAILED, NOT_STARTED)
# Columns that are never knobs: what the reports write beside the knobs, and measurements
# by their unit's suffix (`shared_epoch_seconds`, `estimate_gb`, `ended_at`).
BOOKKEEPING = frozenset({"trial", "seed", COST})
MEASURED = ("_seconds", "_gb", "_bytes", "_at", "_per_s")


@dataclass(frozen=True)
class Columns:
    """Which column holds what; `None` means the default (see `load_table`)."""

    quality: str | None = None
    memory: str | None = None
    time: str = "epoch_seconds"
    cost: str = COST
    knobs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Outcome:
    """One measured trial of a point: its final quality, epoch time, peak memory, training
    seconds, and its per-epoch history as (cumulative training seconds, quality), if known."""

    trial: str
    quality: float
    epoch_seconds: float
    peak_gb: float
    cost: float
    history: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Point:
    """A configuration of the table and every outcome measured for it."""

    params: dict[str, Any]
    memory_gb: float
    outcomes: tuple[Outcome, ...]

    @property
    def quality(self) -> float:
        """The median quality over its seeds: what the point is worth."""
        return statistics.median(o.quality for o in self.outcomes)

    @property
    def objectives(self) -> tuple[float, float, float]:
        """(quality up, epoch seconds down, peak memory down), medians over its seeds."""
        return (self.quality, statistics.median(o.epoch_seconds for o in self.outcomes),
                statistics.median(o.peak_gb for o in self.outcomes))


@dataclass(frozen=True)
class Table:
    """Points by their knob values, and what was read to get them."""

    source: Path
    quality: str
    memory: str
    knobs: tuple[str, ...]
    points: tuple[Point, ...]
    rows: int
    left_out: int  # rows that did not run to their end, or have no quality
    has_history: bool
    _index: dict[tuple, Point] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for point in self.points:
            self._index[key(point.params[k] for k in self.knobs)] = point

    def lookup(self, params: dict[str, Any]) -> Point | None:
        """The point with these knob values, None when the table holds none."""
        try:
            return self._index.get(key(params[k] for k in self.knobs))
        except KeyError:
            return None

    def feasible(self, limit_gb: float) -> list[Point]:
        return [p for p in self.points if p.memory_gb <= limit_gb]

    def values(self, knob: str) -> list:
        """The distinct values a knob takes, in order (numbers ascending)."""
        found = {p.params[knob] for p in self.points}
        try:
            return sorted(found)
        except TypeError:  # None beside numbers, or mixed kinds
            return sorted(found, key=repr)

    def space(self):
        """The search space the table spans, as the tuner's spaces spell it: a numeric knob
        whose values are consecutive powers of two is `powers_of_two` (the sampler sees an
        order), any other knob `choices` (numeric choices are ordered too, so powers with
        gaps, 16, 64, 256, stay steps apart for the climb instead of proposals the table
        lacks), a knob with one value fixed."""
        from cce_tune.search_spaces import Param, SearchSpace

        params, fixed = [], {}
        for knob in self.knobs:
            values = self.values(knob)
            if len(values) == 1:
                fixed[knob] = values[0]
            elif all(_power_of_two(v) for v in values) and _consecutive(values):
                params.append(Param(knob, "powers_of_two", (values[0], values[-1])))
            else:
                params.append(Param(knob, "choices", tuple(values)))
        return SearchSpace(f"table {self.source}", tuple(params), fixed,
                           "the configurations of a replay table")

    def median_first_epoch(self) -> float | None:
        """The median training seconds of a trial's first epoch, None without history."""
        firsts = [o.history[0][0] for p in self.points for o in p.outcomes if o.history]
        return statistics.median(firsts) if firsts else None


def _consecutive(powers: list[int]) -> bool:
    return all(b == 2 * a for a, b in zip(powers, powers[1:], strict=False))


def _power_of_two(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= 1
            and value & (value - 1) == 0)


def key(values: Iterable[Any]) -> tuple:
    return tuple(_plain(v) for v in values)


def _plain(value: Any) -> Any:
    """A knob value as Python spells it (and Optuna's categorical takes): numpy scalars
    unwrapped, whole floats as ints (a column with a gap reads as float), NaN as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
    return value


def table_paths(path: Path) -> tuple[Path, Path | None]:
    """trials.csv (or any CSV) and the history beside it, from a run directory, a report
    directory or a file."""
    path = Path(path)
    if path.is_dir():
        for folder in (path / REPORT_DIR, path):
            if (folder / TRIALS_FILE).is_file():
                path = folder / TRIALS_FILE
                break
        else:
            raise CceTuneError(f"{path}: no {REPORT_DIR}/{TRIALS_FILE} or {TRIALS_FILE} in it; "
                               f"give a run directory, a {TRIALS_FILE} or a CSV file (run "
                               f"`cce-tune report {path}` first if it is a run)")
    elif not path.is_file():
        raise CceTuneError(f"{path}: no such file or directory; give a run directory, a "
                           f"{TRIALS_FILE} or a CSV file")
    history = path.parent / HISTORY_FILE
    return path, history if history.is_file() and path.name == TRIALS_FILE else None


def load_table(path: Path, columns: Columns = Columns()) -> Table:
    """Read and group a table. Defaults: the quality column is the first of the registered
    families' quality metrics the table has (`ndcg10`, `auc`); memory is `estimate_total_gb`,
    else `peak_memory_gb`; the knobs are every column that is neither a metric, bookkeeping
    (the trial, its seed, status, epochs...) nor a measurement (a name ending in
    `_seconds`, `_gb`, `_bytes`, `_at`, `_per_s`)."""
    trials_path, history_path = table_paths(path)
    try:
        frame = pd.read_csv(trials_path, dtype={"trial": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CceTuneError(f"{trials_path}: not a readable CSV ({error})") from None
    quality = columns.quality or _default_quality(frame, trials_path)
    memory = columns.memory or _default_memory(frame, trials_path)
    for flag, name in (("--quality", quality), ("--memory", memory), ("--time", columns.time),
                       ("--cost", columns.cost)):
        _need(frame, name, flag, trials_path)
    knobs = columns.knobs or _default_knobs(frame, {quality, memory, columns.time,
                                                    columns.cost})
    for name in knobs:
        _need(frame, name, "--knobs", trials_path)
    if not knobs:
        raise CceTuneError(f"{trials_path}: no knob columns found; name them with --knobs "
                           f"a,b,c (columns: {', '.join(frame.columns)})")
    rows = len(frame)
    usable = frame[frame[quality].notna()]
    if "status" in usable:
        usable = usable[~usable["status"].isin(UNFINISHED)]
    if usable.empty:
        raise CceTuneError(f"{trials_path}: no row ran to its end with a {quality} value "
                           f"({rows} rows)")
    histories = _histories(history_path, quality, columns.cost) if history_path else {}
    groups: dict[tuple, list] = {}
    for _, row in usable.iterrows():
        groups.setdefault(key(row[k] for k in knobs), []).append(row)
    points = []
    for values, members in groups.items():
        outcomes = tuple(_outcome(row, quality, memory, columns, histories)
                         for row in members)
        memories = [float(row[memory]) for row in members if pd.notna(row[memory])]
        if not memories:
            raise CceTuneError(f"{trials_path}: the point {dict(zip(knobs, values, strict=True))}"
                               f" has no {memory} value; name another column with --memory")
        points.append(Point(dict(zip(knobs, values, strict=True)), max(memories), outcomes))
    return Table(trials_path, quality, memory, tuple(knobs), tuple(points), rows,
                 rows - len(usable), bool(histories))


def _outcome(row: pd.Series, quality: str, memory: str, columns: Columns,
             histories: dict[str, tuple]) -> Outcome:
    trial = str(row["trial"]) if "trial" in row else str(row.name)
    peak = row[PEAK] if PEAK in row and pd.notna(row[PEAK]) else row[memory]
    cost = row[columns.cost]
    history = histories.get(trial, ())
    if pd.isna(cost):
        if not history:
            raise CceTuneError(f"trial {trial}: no {columns.cost} value and no history to "
                               "take it from; name a column with --cost COL")
        cost = history[-1][0]
    return Outcome(trial, float(row[quality]), float(row[columns.time]), float(peak),
                   float(cost), history)


def _histories(path: Path, quality: str, cost: str) -> dict[str, tuple]:
    """Per trial, its epochs in order as (cumulative training seconds, quality)."""
    frame = pd.read_csv(path, dtype={"trial": str})
    seconds = cost if cost in frame else COST
    for name in ("trial", "epoch", seconds, quality):
        if name not in frame:
            raise CceTuneError(f"{path}: no column {name!r} (history needs trial, epoch, "
                               f"{seconds} and {quality}; columns: {', '.join(frame.columns)})")
    frame = frame.dropna(subset=[seconds, quality]).sort_values(["trial", "epoch"])
    return {trial: tuple(zip(group[seconds].astype(float), group[quality].astype(float),
                             strict=True))
            for trial, group in frame.groupby("trial", sort=False)}


def _need(frame: pd.DataFrame, name: str, flag: str, path: Path) -> None:
    if name not in frame:
        raise CceTuneError(f"{path}: no column {name!r} ({flag}); columns: "
                           f"{', '.join(frame.columns)}")


def _default_quality(frame: pd.DataFrame, path: Path) -> str:
    candidates = _metrics()[0]
    for name in candidates:
        if name in frame:
            return name
    raise CceTuneError(f"{path}: no quality column ({', '.join(candidates)}); name it with "
                       f"--quality COL (columns: {', '.join(frame.columns)})")


def _default_memory(frame: pd.DataFrame, path: Path) -> str:
    for name in (ESTIMATE, PEAK):
        if name in frame and frame[name].notna().any():
            return name
    raise CceTuneError(f"{path}: no memory column ({ESTIMATE} or {PEAK}); name it with "
                       f"--memory COL (columns: {', '.join(frame.columns)})")


def _default_knobs(frame: pd.DataFrame, named: set[str]) -> tuple[str, ...]:
    from cce_tune.tuner.families.base import REPORT_COLUMNS

    qualities, others = _metrics()
    skip = REPORT_COLUMNS | BOOKKEEPING | set(qualities) | set(others) | named | {PEAK,
                                                                                  ESTIMATE}
    return tuple(c for c in frame.columns if c not in skip and not c.endswith(MEASURED))


def _metrics() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The registered families' quality columns, and their other metric columns."""
    from cce_tune.tuner.families import get, names

    families = [get(name) for name in names()]
    return (tuple(dict.fromkeys(f.quality for f in families)),
            tuple(m for f in families for m in (f.second, f.throughput)))
