"""The fidelity rule: trials compared at equal training time, so a large batch that needs
more epochs but ends best is not the one stopped."""

import math
from dataclasses import dataclass

import pytest

pytest.importorskip("ray")

from ray.tune.schedulers import ASHAScheduler, TrialScheduler  # noqa: E402

from cce_tune.tuner.early_stopping import COST, make_scheduler  # noqa: E402


@dataclass(frozen=True)
class FakeTrial:
    trial_id: str
    epoch_seconds: float  # a large batch takes fewer, larger steps: a faster epoch
    ceiling: float  # the quality it converges to
    epochs_to_converge: float  # ... and how many epochs it takes to get there
    start: float = 0.0  # when it was launched: trials start as slots free up

    def quality(self, epoch: int) -> float:
        return self.ceiling * (1 - math.exp(-epoch / self.epochs_to_converge))


SMALL = [FakeTrial(f"small{i}", 1.0, 0.33 - 0.01 * i, 1.0) for i in range(4)]
LARGE = FakeTrial("large", 0.25, 0.40, 4.0, start=5.0)  # 4 epochs per small one's, ends best


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
    out = stopped(make_scheduler("ndcg10", grace_seconds=1.0))
    assert "large" not in out
    assert out  # and the scheduler does stop the weaker small batches
