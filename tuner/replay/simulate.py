"""One search replayed over a table: Optuna proposes, the table answers instead of training.

    >>> log = simulate(table, STRATEGIES["cce-tune"], seed=0, settings=ReplaySettings(...))
    >>> len(log.evaluated), log.rejected

Trials run `concurrency` at a time (1 by default; a clock in training seconds orders their
epochs, and a freed slot is filled at once), through the tuner's own pieces: the space the
table spans (`Table.space`, proposals drawn by `SearchSpace.suggest`), the memory
constraint (`search.SpaceSampler`, `search._constrain`), the strategy's sampler, and the
tuner's ASHA (`per_batch_asha.PerBatchSizeASHA`: the very scheduler object decides).

For each proposal:

- A point the table does not hold (a grid with gaps) is told to Optuna as complete and
  infeasible (constraint +inf) with every strategy; it costs nothing and is not counted as
  an evaluated trial (`SearchLog.missing`).
- A point whose memory is over margin x budget: with the veto (`random`, `cce-tune`), told
  complete and infeasible with how far over the budget it is, as the tuner does; it costs
  nothing and is not counted (`SearchLog.rejected`). Without the veto (`tpe`) it is launched
  and runs out of memory: an evaluated trial, infeasible, costing `oom_cost` (its first
  epoch's training seconds, or its epoch time without history: an upper bound, as an
  out-of-memory error comes within the first steps plus the trial's set-up), and told to
  Optuna as failed.
- Otherwise one of the point's outcomes is drawn with the search's random generator
  (`numpy.random.default_rng(seed)`) and its history replayed through ASHA, one result per
  epoch with the cumulative training seconds as `early_stopping.COST`. A trial ASHA stops
  reports the best quality it had reached and costs the training seconds up to the stop; a
  trial ASHA stops at its last epoch has nothing left to do and counts as run to its end.
  Without history a trial runs to its end (its final result still reaches ASHA's rungs, as
  Ray's `on_trial_complete` records it). Optuna is told (quality, epoch seconds, peak memory).
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from cce_tune.tuner.early_stopping import COST
from cce_tune.tuner.replay.table import Outcome, Point, Table
from cce_tune.tuner.strategies import Strategy
from cce_tune.tuner.units import GB

DIRECTIONS = ("maximize", "minimize", "minimize")  # quality, epoch seconds, peak memory


@dataclass(frozen=True)
class ReplaySettings:
    trials: int = 32
    limit_gb: float = math.inf  # margin x budget; a point above it is over the budget
    grace_seconds: float | None = None  # None: no early stopping
    max_rejections: int = 2000  # proposals in a row not evaluated before the search gives up
    concurrency: int = 1  # trials training at once


@dataclass(frozen=True)
class Evaluated:
    """One evaluated trial: the point, the outcome drawn (None when it ran out of memory),
    the quality it reported, the GPU seconds it cost, and how it ended."""

    point: Point
    outcome: Outcome | None
    quality: float | None
    cost: float
    stopped: bool = False
    out_of_memory: bool = False

    @property
    def feasible(self) -> bool:
        return not self.out_of_memory


@dataclass
class SearchLog:
    strategy: str
    seed: int
    evaluated: list[Evaluated] = field(default_factory=list)
    rejected: int = 0  # vetoed: over the budget, never launched
    missing: int = 0  # proposed, but the table does not hold the point
    gave_up: bool = False  # max_rejections proposals in a row were not evaluated


def oom_cost(outcome: Outcome) -> float:
    """What a launch that runs out of memory costs: its first epoch's training seconds."""
    return outcome.history[0][0] if outcome.history else outcome.epoch_seconds


class _TableTarget:
    """The table as the search's `Target`: a point's config is the point itself, its
    estimate the table's memory column. A point the table lacks is refused as the model
    refuses an invalid configuration (ValueError)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def config(self, params: dict) -> Point:
        point = self.table.lookup(params)
        if point is None:
            raise ValueError("not in the table")
        return point

    def estimate(self, point: Point) -> SimpleNamespace:
        total = point.memory_gb * GB
        return SimpleNamespace(total=total, peak_allocated=total)


def simulate(table: Table, strategy: Strategy, seed: int, settings: ReplaySettings) -> SearchLog:
    """Run one search of `settings.trials` evaluated trials over `table`, up to
    `settings.concurrency` of them training at once (as trials share GPUs in the tuner: a
    proposal is made before the results of the trials still running are known)."""
    import optuna
    from optuna.trial import TrialState

    from cce_tune.tuner.memory_edge import edge_seeds
    from cce_tune.tuner.per_batch_asha import PerBatchSizeASHA
    from cce_tune.tuner.search import SpaceSampler, _constrain

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=strategy.sampler(seed))
    space = table.space()
    sampler = SpaceSampler(space, _TableTarget(table), settings.limit_gb * GB)
    scheduler = (PerBatchSizeASHA(table.quality, settings.grace_seconds)
                 if settings.grace_seconds else None)
    rng = np.random.default_rng(seed)
    for point in edge_seeds(space, sampler.target, sampler.limit, strategy.edge_points):
        study.enqueue_trial(space.optuna_params(point))
    log = SearchLog(strategy.name, seed)
    events: list[tuple[float, int, _Running]] = []  # (when, order, trial): its next epoch
    launched, order, clock = 0, itertools.count(), 0.0
    while len(log.evaluated) < settings.trials:
        while len(events) < settings.concurrency and launched < settings.trials:
            proposal = _propose(study, strategy, space, sampler, table, settings, log,
                                _constrain)
            if proposal is None:
                break  # gave up: max_rejections in a row were not evaluated
            trial, point = proposal
            launched += 1
            outcome = point.outcomes[int(rng.integers(len(point.outcomes)))]
            if point.memory_gb > settings.limit_gb:  # launched without the veto
                study.tell(trial, state=TrialState.FAIL)
                log.evaluated.append(Evaluated(point, None, None, oom_cost(outcome),
                                               out_of_memory=True))
                continue
            run = _Running(trial, point, outcome, f"{strategy.name}-{seed}-{launched}",
                           start=clock)
            _start(run, scheduler)
            heapq.heappush(events, (run.next_event(scheduler), next(order), run))
        if not events:
            break
        clock, _, run = heapq.heappop(events)
        ended = _advance(run, scheduler, table.quality)
        if ended is None:
            heapq.heappush(events, (run.next_event(scheduler), next(order), run))
            continue
        quality, cost, stopped = ended
        study.tell(run.trial, [quality, run.outcome.epoch_seconds, run.outcome.peak_gb])
        log.evaluated.append(Evaluated(run.point, run.outcome, quality, cost, stopped))
    return log


def _propose(study, strategy: Strategy, space, sampler, table: Table,
             settings: ReplaySettings, log: SearchLog, constrain):
    """The next proposal to launch, as (Optuna trial, point); those the table lacks or the
    veto refuses are told to Optuna as complete and infeasible and counted. None after
    `max_rejections` in a row."""
    for _ in range(settings.max_rejections):
        trial = study.ask()
        if strategy.veto:
            proposal = sampler(trial)
            point = None if "invalid" in proposal else table.lookup(proposal)
        else:
            point = table.lookup(space.suggest(trial))
            if point is None:
                constrain(trial, math.inf)
        if point is not None and not (strategy.veto and point.memory_gb > settings.limit_gb):
            return trial, point
        # Complete and infeasible, the placeholders `BudgetedSearch` tells.
        study.tell(trial, [0.0, 1e9, point.memory_gb if point else 0.0])
        if point is None:
            log.missing += 1
        else:
            log.rejected += 1
    log.gave_up = True
    return None


@dataclass
class _Running:
    """A trial training in the replay: where it is in its outcome's history."""

    trial: object  # the Optuna trial
    point: Point | None
    outcome: Outcome
    trial_id: str
    start: float  # the replay's clock when it was launched (training seconds)
    epoch: int = 0
    best: float = -math.inf

    def next_event(self, scheduler) -> float:
        """When its next epoch ends (or the whole trial, without history or scheduler)."""
        if scheduler is None or not self.outcome.history:
            return self.start + self.outcome.cost
        return self.start + self.outcome.history[self.epoch][0]


def _start(run: _Running, scheduler) -> None:
    if scheduler is not None:  # as a Ray trial: its id, and its config for the ladder
        config = run.point.params if run.point is not None else {}
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=run.trial_id, config=config))


def _advance(run: _Running, scheduler, quality: str) -> tuple[float, float, bool] | None:
    """Feed the trial's next epoch to the ASHA `scheduler` as Ray Tune would; when the trial
    ends, (the quality it reports, the training seconds it cost, whether ASHA stopped it
    before its end), else None."""
    outcome = run.outcome
    if scheduler is None:
        return outcome.quality, outcome.cost, False
    from ray.tune.schedulers import TrialScheduler

    trial = SimpleNamespace(trial_id=run.trial_id)  # all that ASHA reads of a reporting trial
    if not outcome.history:
        scheduler.on_trial_complete(None, trial, {COST: outcome.cost, quality: outcome.quality})
        return outcome.quality, outcome.cost, False
    seconds, value = outcome.history[run.epoch]
    run.best = max(run.best, value)
    result = {COST: seconds, quality: value}
    last = run.epoch == len(outcome.history) - 1
    stop = scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP
    if stop and not last:
        scheduler.on_trial_complete(None, trial, result)
        return run.best, seconds, True
    if last:
        scheduler.on_trial_complete(None, trial, result)
        return outcome.quality, outcome.cost, False
    run.epoch += 1
    return None


def replay_trial(outcome: Outcome, scheduler, trial_id: str,
                 quality: str) -> tuple[float, float, bool]:
    """One outcome's epochs fed to the ASHA `scheduler` alone: (the quality it reports, the
    training seconds it cost, whether ASHA stopped it before its end)."""
    run = _Running(None, None, outcome, trial_id, start=0.0)
    _start(run, scheduler)
    while (ended := _advance(run, scheduler, quality)) is None:
        pass
    return ended
