"""The fidelity rule: trials compared at equal training time and only with their own batch
size, so a large batch that needs more epochs but ends best is not the one stopped."""

import math
from dataclasses import dataclass

import pytest

pytest.importorskip("ray")

from ray.tune.schedulers import ASHAScheduler, TrialScheduler  # noqa: E402

from cce_tune.tuner.early_stopping import COST
from cce_tune.tuner.per_batch_asha import PerBatchSizeASHA  # noqa: E402


@dataclass(frozen=True)
class FakeTrial:
    trial_id: str
    epoch_seconds: float  # a large batch takes fewer, larger steps: a faster epoch
    ceiling: float  # the quality it converges to
    epochs_to_converge: float  # ... and how many epochs it takes to get there
    start: float = 0.0  # when it was launched: trials start as slots free up
    batch_size: int = 128

    @property
    def config(self) -> dict:
        return {"batch_size": self.batch_size}

    def quality(self, epoch: int) -> float:
        return self.ceiling * (1 - math.exp(-epoch / self.epochs_to_converge))


SMALL = [FakeTrial(f"small{i}", 1.0, 0.33 - 0.01 * i, 1.0) for i in range(4)]
LARGE = FakeTrial("large", 0.25, 0.40, 4.0, start=5.0, batch_size=2048)  # ends best


def stopped(scheduler, trials=(*SMALL, LARGE), seconds=40.0) -> list[str]:
    """Run the trials side by side, their epochs' reports in the order of the clock, and
    return the ids the scheduler stops."""
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    events = sorted(((trial.start + trial.epoch_seconds * epoch, epoch, trial) for trial in trials
                     for epoch in range(1, int(seconds / trial.epoch_seconds) + 1)),
                    key=lambda event: event[:2])
    out: list[str] = []
    for clock, epoch, trial in events:
        if trial.trial_id in out:
            continue
        result = {COST: clock - trial.start, "training_iteration": epoch,
                  "ndcg10": trial.quality(epoch)}
        if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
            out.append(trial.trial_id)
    return out


def test_at_equal_epochs_the_large_batch_would_be_stopped():
    """The rule this replaced: ASHA on `training_iteration` stops the large batch after its
    first epoch, where the small ones were already far ahead."""
    old = ASHAScheduler(time_attr="training_iteration", metric="ndcg10", mode="max",
                        max_t=40, grace_period=1, reduction_factor=3)
    assert "large" in stopped(old)


def test_at_equal_training_time_the_large_batch_that_ends_best_runs_on():
    out = stopped(PerBatchSizeASHA("ndcg10", grace_seconds=1.0))
    assert "large" not in out
    assert out  # and the scheduler does stop the weaker small batches


def test_a_large_batch_is_stopped_only_for_being_behind_large_batches():
    """Large batches that learn slowly per second, all behind every small one at every rung
    until long after the grace: with one ladder for all they would be stopped whatever
    they end at; on their own ladder only the weaker large ones are."""
    large = [FakeTrial(f"large{i}", 1.0, 0.40 - 0.05 * i, 30.0, start=1.0 + i,
                       batch_size=2048) for i in range(3)]
    trials = (*SMALL, *large)
    one_ladder = ASHAScheduler(time_attr=COST, metric="ndcg10", mode="max", max_t=10.0**7,
                               grace_period=1.0, reduction_factor=3)
    assert "large0" in stopped(one_ladder, trials)
    out = stopped(PerBatchSizeASHA("ndcg10", grace_seconds=1.0), trials)
    assert "large0" not in out
    assert {"large1", "large2"} & set(out)  # the weaker large batches still are
    assert {"small1", "small2", "small3"} & set(out)
