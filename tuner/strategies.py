"""Search strategies a replay compares: a name, how to build its Optuna sampler from a seed,
and whether the memory model vetoes proposals over the budget. A new strategy is one entry
in `STRATEGIES`.

- `random`: Optuna's RandomSampler; a proposal over the budget is never launched (the veto).
- `tpe`: plain multi-objective TPE: no constraint, no veto. A proposal over the budget is
  launched and runs out of memory: it counts as an evaluated trial, infeasible, costs its
  first epoch's training seconds (see `simulate.oom_cost`), and Optuna is told it failed
  (as Ray's OptunaSearch tells an errored trial), so TPE learns nothing from it.
- `cce-tune`: the tuner's own: `cce_tune_sampler` (multi-objective TPE, which honours the
  constraint the define-by-run function sets, wrapped so that every other proposal is the
  untried point a fit of quality over the ordered knobs ranks best: `climb.PlannedSampler`
  with `surrogate.predicted_best`), started from EDGE_POINTS configurations on the budget's
  edge (`memory_edge`), with the veto: a proposal over the budget is told to Optuna as
  complete and infeasible, with how far over the budget it is.

    >>> STRATEGIES["cce-tune"].sampler(0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# How many configurations on the budget's edge the tuner's search evaluates first.
EDGE_POINTS = 4


def cce_tune_sampler(seed: int | None) -> Any:
    """The tuner's sampler: multi-objective TPE, seeded, every other proposal the best point
    of a fit of quality (`tuner.surrogate`). TPE reads the constraint each trial sets
    (`Trial.set_constraint`, Optuna >= 5), so proposals told infeasible with how far over
    the budget they were steer it away from the region. The tuner and `cce-tune replay` both
    build it here."""
    import optuna

    from cce_tune.tuner.climb import PlannedSampler
    from cce_tune.tuner.surrogate import predicted_best

    return PlannedSampler(optuna.samplers.TPESampler(seed=seed), planner=predicted_best)


def _random(seed: int | None) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _plain_tpe(seed: int | None) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


@dataclass(frozen=True)
class Strategy:
    name: str
    help: str
    sampler: Callable[[int | None], Any]
    veto: bool  # proposals over the budget are never launched and told infeasible
    edge_points: int = 0  # evaluated first: configurations on the budget's edge (memory_edge)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("random", "Optuna's RandomSampler, with the memory veto", _random, veto=True),
    Strategy("tpe", "plain multi-objective TPE: over-budget proposals run out of memory",
             _plain_tpe, veto=False),
    Strategy("cce-tune", "the tuner's search: multi-objective TPE with the memory constraint "
             "and veto, every other proposal the untried point a fit of quality ranks best, "
             f"starting from {EDGE_POINTS} points on the budget's edge where it binds",
             cce_tune_sampler, veto=True, edge_points=EDGE_POINTS),
)}
