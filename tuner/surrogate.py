"""A proposal from a model of quality over the ordered knobs: the untried grid point that a
quadratic fit to the trials so far ranks best.

Quality moves smoothly and mostly one way along batch size, negatives and sequence length
(on the replay's ml-1m table, up with negatives and down with batch size at every other
setting), so a handful of trials already say where the best corner of the space lies. TPE
models each parameter apart and needs many trials to learn a direction; a climb from the
best trial finds it one step at a time. A least-squares fit of quality on each ordered
knob's rank, its square and the pairwise products (plus a column per category), with a
ridge penalty so that a few trials give a near-linear trend, proposes where the trend points
after three trials. Proposals over the budget are vetoed as any other and count as tried (by
the grid's knobs: whatever their learning rate or dropout), so the next plan is the best
point that fits.

Used as a `climb.PlannedSampler` planner, so Optuna's TPE still makes the other proposals.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial

from cce_tune.tuner.climb import evaluated, key

MIN_TRIALS = 3  # evaluated trials before the fit proposes
MAX_GRID = 20_000  # larger grids are not enumerated: the proposal is TPE's
RIDGE = 0.1  # on features in [0, 1]: a few trials fit a near-linear trend


def predicted_best(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The untried configuration of the grid the trials' distributions span that the fit
    predicts best; None before MIN_TRIALS evaluated trials, for a grid over MAX_GRID points,
    or once every point was tried (at any value of the continuous parameters, which keep the
    best trial's value)."""
    done = evaluated(trials)
    if len(done) < MIN_TRIALS:
        return None
    best = max(done, key=lambda t: t.values[0])
    axes = {name: _values(distribution) for name, distribution in best.distributions.items()}
    fixed = {name: best.params[name] for name, values in axes.items() if values is None}
    axes = {name: values for name, values in axes.items() if values is not None}
    if not axes or np.prod([len(v) for v in axes.values()]) > MAX_GRID:
        return None
    # Tried by the grid's knobs alone: a point tried (or vetoed) at another learning rate or
    # dropout is tried, as the memory it needs does not depend on those.
    seen = {key({name: t.params.get(name) for name in axes}) for t in trials if t.params}
    grid = [dict(zip(axes, point, strict=True)) for point in itertools.product(*axes.values())]
    grid = [point | fixed for point in grid if key(point) not in seen]
    if not grid:
        return None
    observed = [t for t in done if all(t.params.get(name) in axes[name] for name in axes)]
    features = Features(axes)
    weights = fit(features([t.params for t in observed]),
                  np.array([t.values[0] for t in observed]))
    return grid[int(np.argmax(features(grid) @ weights))]


def _values(distribution: BaseDistribution) -> list | None:
    """A parameter's grid values, or None for a continuous one."""
    if isinstance(distribution, IntDistribution):
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return None


class Features:
    """A configuration as model inputs: a constant; each ordered knob's rank in [0, 1], its
    square and the products of pairs; each category's choice as a 0/1 column."""

    def __init__(self, axes: dict[str, list]) -> None:
        self.ordered = {name: sorted(values) for name, values in axes.items() if _numeric(values)}
        self.categories = {name: values for name, values in axes.items()
                           if name not in self.ordered}

    def __call__(self, configs: list[dict[str, Any]]) -> np.ndarray:
        rows = []
        for config in configs:
            ranks = [values.index(config[name]) / max(len(values) - 1, 1)
                     for name, values in self.ordered.items()]
            row = [1.0, *ranks, *(r * r for r in ranks)]
            row += [a * b for a, b in itertools.combinations(ranks, 2)]
            row += [float(config[name] == choice) for name, values in self.categories.items()
                    for choice in values]
            rows.append(row)
        return np.array(rows, dtype=float)


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge least squares, the constant unpenalised: weights with x @ w ~ y."""
    penalty = RIDGE * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
