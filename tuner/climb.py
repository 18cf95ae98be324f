"""A sampler whose every other proposal is planned from the trials so far, the others being
the wrapped sampler's (TPE), and the plan it started with: a climb from the best trial.

Batch size, negatives and sequence length are ordered (powers of two, lengths), and quality
changes smoothly along them, which a TPE over independent parameters does not exploit: it
keeps sampling the whole space. The climb proposes an untried neighbour of the best
configuration found so far: one ordered knob one step up or down, or one category changed;
steps up (towards the budget's edge) come first. The tuner now plans with a fit of quality
instead (`tuner.surrogate`), which replayed on the ml-1m table reached the best in fewer
trials; the climb stays as the baseline `benchmarks.search_variants` compares it with.
A proposal over the budget is vetoed like any other and counts as tried.

Works through Optuna's sampler interface alone, so the tuner (through Ray's `OptunaSearch`)
and `cce-tune replay` plan the same way.

    >>> sampler = PlannedSampler(optuna.samplers.TPESampler(seed=0), planner=predicted_best)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

# The attribute `search._constrain` sets: > 0 for a proposal over the budget.
OVER_BUDGET = "over_budget_bytes"


# What a planned proposal is made from: the study's trials so far -> a configuration, or None
# to leave the proposal to the wrapped sampler.
Planner = Callable[[list[FrozenTrial]], "dict[str, Any] | None"]


class PlannedSampler(BaseSampler):
    """`base` for most proposals; for one in `every`, the plan `planner` makes when the
    trial starts (`before_trial`; the best trial's first untried neighbour by default),
    handed out parameter by parameter."""

    def __init__(self, base: BaseSampler, every: int = 2,
                 planner: Planner | None = None) -> None:
        self.base = base
        self.every = every  # one proposal in `every` is planned
        self.planner = planner or next_neighbour
        self._plans: dict[int, dict[str, Any]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A sampler pickled by a run started before planners existed climbed: resumed, it
        # goes on climbing.
        self.__dict__.update({"planner": next_neighbour, **state})

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def infer_relative_search_space(self, study, trial: FrozenTrial):
        return self.base.infer_relative_search_space(study, trial)

    def before_trial(self, study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        if trial.number % self.every == self.every - 1:
            plan = self.planner(study.get_trials(deepcopy=False))
            if plan is not None:
                self._plans[trial.number] = plan

    def sample_relative(self, study, trial: FrozenTrial, search_space) -> dict[str, Any]:
        if trial.number in self._plans:
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = self._plans.get(trial.number, {})
        if param_name in plan:
            return plan[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._plans.pop(trial.number, None)
        self.base.after_trial(study, trial, state, values)


def evaluated(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that ran within the budget and reported their objectives."""
    return [t for t in trials if t.state == TrialState.COMPLETE and t.values
            and t.user_attrs.get(OVER_BUDGET, 0.0) <= 0]


def tried(trials: list[FrozenTrial]) -> set[tuple]:
    """Every configuration proposed so far (vetoed ones too), by `key`."""
    return {key(t.params) for t in trials if t.params}


def next_neighbour(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The first untried neighbour of the best feasible completed trial (quality is the
    first objective), or None when there is no such trial or every neighbour was tried."""
    done = evaluated(trials)
    if not done:
        return None
    best = max(done, key=lambda t: t.values[0])
    seen = tried(trials)
    for neighbour in neighbours(best.params, best.distributions):
        if key(neighbour) not in seen:
            return neighbour
    return None


def neighbours(params: dict[str, Any],
               distributions: dict[str, BaseDistribution]) -> list[dict[str, Any]]:
    """`params` with one ordered knob a step up (all of those first), then one a step down,
    then one category changed, then one ordered knob up and another down (a step along the
    budget's edge, where single steps up no longer fit); continuous knobs keep their value."""
    up, down, other = {}, {}, []
    for name, distribution in distributions.items():
        value = params[name]
        if isinstance(distribution, IntDistribution):
            step = distribution.step
            if value + step <= distribution.high:
                up[name] = value + step
            if value - step >= distribution.low:
                down[name] = value - step
        elif isinstance(distribution, CategoricalDistribution):
            choices = list(distribution.choices)
            if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
                ordered = sorted(choices)
                at = ordered.index(value)
                if at + 1 < len(ordered):
                    up[name] = ordered[at + 1]
                if at > 0:
                    down[name] = ordered[at - 1]
            else:
                other += [{**params, name: choice} for choice in choices if choice != value]
    along = [{**params, raised: up[raised], lowered: down[lowered]}
             for raised in up for lowered in down if raised != lowered]
    return ([{**params, name: value} for name, value in up.items()]
            + [{**params, name: value} for name, value in down.items()] + other + along)


def key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


# The class's name in runs started before it took other planners: their searcher state,
# pickled by Ray, unpickles under it when such a run is resumed.
ClimbingSampler = PlannedSampler
