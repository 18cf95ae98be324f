"""What a replayed search is worth, and an exact hypervolume to measure its front.

Per search (one strategy, one seed):

- **trials to within 1 %**: the number of evaluated trials (vetoed and missing proposals not
  counted; out-of-memory launches counted) until one runs to its end at a configuration
  whose table quality is at least `best - 1 % x |best|`, where `best` is the best feasible
  quality of the table: the highest median-over-seeds quality among points under margin x
  budget. Both sides are medians over seeds: the quality a trial reports is one seed's
  draw, and a search that found the best configuration but drew its weak seed found it all
  the same (the user retrains it), as one that drew a lucky seed of a lesser one did not.
  None when never reached.
- **GPU seconds** spent to that trial (inclusive), and in all: the sum of evaluated trials'
  costs (training seconds up to ASHA's stop or the end; an out-of-memory launch its first
  epoch).
- **hypervolume share** after k evaluated trials (k = 8, 16, 32): the found set is the
  points of the first k evaluated trials that ran to their end under the budget (trials ASHA
  stopped are off the front, as in the tuner's report), each at its table value (medians
  over its seeds of quality, epoch seconds and peak memory), so a lucky seed cannot beat
  the table. Objectives are made minimised (quality negated) and normalised over the
  table's feasible points: x' = (x - min) / (max - min), 0 the best value met, 1 the worst
  (an objective without spread maps to 0). The reference point is (1.1, 1.1, 1.1), the
  worst corner plus a 10 % margin, so every feasible point adds volume. The share is
  HV(found) / HV(all feasible points), in [0, 1], and 1 when the found set holds the
  table's front.

- **stopped early by batch size**: of the trials run at each batch size (out-of-memory
  launches left out), how many ASHA stopped: whether early stopping is fair to large
  batches, which need more epochs, at the table's costs (tables with a `batch_size` knob).

Over seeds (`summarise`): medians; a search that never reached within 1 % counts as
infinitely many trials, so the median is "not reached" once half the seeds miss, and the
number that missed is reported beside it. Stopped-early counts are summed over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from cce_tune.tuner.replay.simulate import SearchLog
from cce_tune.tuner.replay.table import Point

WITHIN = 0.01
CHECKPOINTS = (8, 16, 32)
REFERENCE = 1.1  # in every normalised coordinate: the worst corner plus 10 %


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """The exact volume that `points` (n x 3, every objective minimised) dominate up to
    `reference`: slices between consecutive values of the third objective, each the 2-D
    hypervolume of the points at or below it times the slice's thickness. O(n^2 log n)."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    reference = np.asarray(reference, dtype=float)
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[np.argsort(points[:, 2], kind="stable")]
    volume = 0.0
    for i in range(len(points)):
        top = points[i + 1, 2] if i + 1 < len(points) else reference[2]
        if top > points[i, 2]:
            volume += hypervolume_2d(points[: i + 1, :2], reference[:2]) * (top - points[i, 2])
    return float(volume)


def hypervolume_2d(points: np.ndarray, reference: Sequence[float]) -> float:
    """The area `points` (n x 2, minimised) dominate up to `reference`: a sweep along x."""
    area, best_y = 0.0, reference[1]
    order = np.lexsort((points[:, 1], points[:, 0]))
    xs = [*points[order, 0], reference[0]]
    for i, j in enumerate(order):
        best_y = min(best_y, points[j, 1])
        area += (xs[i + 1] - xs[i]) * (reference[1] - best_y)
    return float(area)


class Normaliser:
    """Objectives (quality up, epoch seconds down, peak memory down) to minimised [0, 1]
    coordinates over a set of points (the table's feasible ones)."""

    def __init__(self, points: Sequence[Point]) -> None:
        values = self._minimised([p.objectives for p in points])
        self.low = values.min(axis=0)
        span = values.max(axis=0) - self.low
        self.span = np.where(span > 0, span, 1.0)

    @staticmethod
    def _minimised(objectives: Sequence[tuple[float, float, float]]) -> np.ndarray:
        values = np.array(objectives, dtype=float).reshape(-1, 3)
        values[:, 0] *= -1.0
        return values

    def __call__(self, points: Sequence[Point]) -> np.ndarray:
        return (self._minimised([p.objectives for p in points]) - self.low) / self.span

    def volume(self, points: Sequence[Point]) -> float:
        return hypervolume(self(points), [REFERENCE] * 3)


@dataclass(frozen=True)
class SearchMetrics:
    strategy: str
    seed: int
    trials_to_within: int | None
    gpu_seconds_to_within: float | None
    gpu_seconds: float
    hypervolume_share: dict[int, float]
    evaluated: int
    rejected: int
    missing: int
    stopped_early: int
    out_of_memory: int
    gave_up: bool
    stopped_by_batch: dict[int, tuple[int, int]]  # batch size: (stopped early, run)

    def to_json(self) -> dict:
        return asdict(self)


def target_quality(best: float, within: float = WITHIN) -> float:
    return best - within * abs(best)


def search_metrics(log: SearchLog, best: float, normaliser: Normaliser, true_volume: float,
                   checkpoints: Sequence[int] = CHECKPOINTS,
                   within: float = WITHIN) -> SearchMetrics:
    target = target_quality(best, within)
    reached, spent_then, spent = None, None, 0.0
    for number, trial in enumerate(log.evaluated, start=1):
        spent += trial.cost
        if (reached is None and trial.feasible and not trial.stopped
                and trial.point.objectives[0] >= target):
            reached, spent_then = number, spent
    shares = {}
    for k in checkpoints:
        found = [t.point for t in log.evaluated[:k] if t.feasible and not t.stopped]
        shares[k] = normaliser.volume(found) / true_volume if found else 0.0
    return SearchMetrics(
        log.strategy, log.seed, reached, spent_then, spent, shares, len(log.evaluated),
        log.rejected, log.missing, sum(t.stopped for t in log.evaluated),
        sum(t.out_of_memory for t in log.evaluated), log.gave_up, stopped_by_batch(log))


def stopped_by_batch(log: SearchLog) -> dict[int, tuple[int, int]]:
    """(stopped early, run) per batch size of the trials that ran (none without the knob)."""
    return _summed({t.point.params["batch_size"]: (int(t.stopped), 1)} for t in log.evaluated
                   if "batch_size" in t.point.params and not t.out_of_memory)


@dataclass(frozen=True)
class Summary:
    """One strategy over every seed: medians (None: not reached by half the seeds or more)."""

    strategy: str
    seeds: int
    not_reached: int
    trials_to_within: float | None
    gpu_seconds_to_within: float | None
    gpu_seconds: float
    hypervolume_share: dict[int, float]
    rejected: float
    missing: float
    stopped_early: float
    out_of_memory: float
    stopped_by_batch: dict[int, tuple[int, int]]  # summed over seeds

    def to_json(self) -> dict:
        return asdict(self)


def summarise(runs: Sequence[SearchMetrics]) -> Summary:
    def finite(value: float) -> float | None:
        return None if math.isinf(value) else value

    def median(values) -> float:
        return float(statistics.median(values))

    checkpoints = runs[0].hypervolume_share
    return Summary(
        runs[0].strategy, len(runs), sum(r.trials_to_within is None for r in runs),
        finite(median(math.inf if r.trials_to_within is None else r.trials_to_within
                      for r in runs)),
        finite(median(math.inf if r.gpu_seconds_to_within is None else r.gpu_seconds_to_within
                      for r in runs)),
        median(r.gpu_seconds for r in runs),
        {k: median(r.hypervolume_share[k] for r in runs) for k in checkpoints},
        median(r.rejected for r in runs), median(r.missing for r in runs),
        median(r.stopped_early for r in runs), median(r.out_of_memory for r in runs),
        _summed(r.stopped_by_batch for r in runs))


def _summed(tallies: Iterable[dict[int, tuple[int, int]]]) -> dict[int, tuple[int, int]]:
    total: dict[int, tuple[int, int]] = {}
    for tally in tallies:
        for batch, (stopped, run) in tally.items():
            before = total.get(batch, (0, 0))
            total[batch] = (before[0] + stopped, before[1] + run)
    return dict(sorted(total.items()))
