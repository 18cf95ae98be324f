"""Strategies against each other on one table, every strategy on the same seeds: computed
once here (`Comparison`), written as a text table, Markdown and JSON by `report.py`.

    >>> comparison = compare(table, ["random", "tpe", "cce-tune"], seeds=range(30),
    ...                      settings=ReplaySettings(trials=32, limit_gb=14.4,
    ...                                              grace_seconds=60.0))
    >>> comparison.summaries["cce-tune"].trials_to_within
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.replay.metrics import (
    CHECKPOINTS,
    Normaliser,
    SearchMetrics,
    Summary,
    search_metrics,
    summarise,
)
from cce_tune.tuner.replay.simulate import ReplaySettings, simulate
from cce_tune.tuner.replay.table import Point, Table
from cce_tune.tuner.strategies import STRATEGIES, Strategy


@dataclass(frozen=True)
class Comparison:
    table: Table
    settings: ReplaySettings
    seeds: tuple[int, ...]
    checkpoints: tuple[int, ...]
    feasible: tuple[Point, ...]
    best: Point  # the feasible point of the highest median quality
    front: tuple[Point, ...]  # the table's feasible Pareto front
    true_volume: float
    runs: dict[str, tuple[SearchMetrics, ...]]
    summaries: dict[str, Summary]


def checkpoints_for(trials: int) -> tuple[int, ...]:
    """8, 16 and 32 evaluated trials, those a search of `trials` reaches, and `trials`."""
    return tuple(sorted({k for k in CHECKPOINTS if k <= trials} | {trials}))


def feasible_points(table: Table, limit_gb: float) -> list[Point]:
    """The table's points under `limit_gb`; refused when there are none."""
    feasible = table.feasible(limit_gb)
    if not feasible:
        smallest = min(p.memory_gb for p in table.points)
        raise CceTuneError(
            f"nothing in {table.source} fits the budget: its smallest point needs "
            f"{smallest:.2f} GB ({table.memory}), over the limit of {limit_gb:.2f} GB "
            "(margin x --gpu-mem); give a larger --gpu-mem")
    return feasible


def compare(table: Table, strategies: Sequence[str | Strategy], seeds: Iterable[int],
            settings: ReplaySettings, progress=None) -> Comparison:
    """Replay each strategy (by name in `STRATEGIES`, or a variant's own) once per seed;
    `progress(strategy, seed)` is called before each search, if given."""
    unknown = [s for s in strategies if isinstance(s, str) and s not in STRATEGIES]
    if unknown:
        raise CceTuneError(f"strategy {unknown[0]!r}: choose from {', '.join(STRATEGIES)}")
    strategies = [STRATEGIES[s] if isinstance(s, str) else s for s in strategies]
    seeds = tuple(seeds)
    feasible = feasible_points(table, settings.limit_gb)
    best = max(feasible, key=lambda p: p.quality)
    normaliser = Normaliser(feasible)
    true_volume = normaliser.volume(feasible)
    checkpoints = checkpoints_for(settings.trials)
    runs = {}
    for strategy in strategies:
        metrics = []
        for seed in seeds:
            if progress is not None:
                progress(strategy.name, seed)
            log = simulate(table, strategy, seed, settings)
            metrics.append(search_metrics(log, best.quality, normaliser, true_volume,
                                          checkpoints))
        runs[strategy.name] = tuple(metrics)
    return Comparison(table, settings, seeds, checkpoints, tuple(feasible), best,
                      tuple(pareto_front(feasible)), true_volume, runs,
                      {name: summarise(metrics) for name, metrics in runs.items()})


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other beats on all three objectives (ties kept)."""
    def minimised(point: Point) -> tuple[float, float, float]:
        quality, seconds, memory = point.objectives
        return -quality, seconds, memory

    values = [minimised(p) for p in points]
    return [p for p, v in zip(points, values, strict=True)
            if not any(all(o <= s for o, s in zip(other, v, strict=True)) and other != v
                       for other in values)]


def limit_gb(budget_bytes: int | None, margin: float) -> float:
    from cce_tune.tuner.units import GB

    return math.inf if budget_bytes is None else budget_bytes * margin / GB
