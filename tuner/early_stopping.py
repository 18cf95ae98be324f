"""Early stopping at equal cost: trials are compared after equal seconds of training, never
after equal epochs.

A batch of 4,096 takes 32x fewer optimizer steps per epoch than one of 128 and needs more
epochs to converge, but each of its epochs is faster. Compared at equal epochs (Ray's
`training_iteration`), ASHA stops the large batches first, the opposite of what scaling
batch size and negatives together is worth. Compared at equal training seconds (`COST`, the
sum of the epochs' training time, evaluation left out), each trial gets the GPU time it
costs. The tuner and `cce-tune replay` build the scheduler here, so both stop the same
trials.
"""

from __future__ import annotations

# The time attribute every trial reports: cumulative seconds spent training, evaluation
# excluded.
COST = "train_seconds"
REDUCTION_FACTOR = 3
# ASHA needs a horizon to lay out its rungs; trials end by patience or their epoch cap first.
NO_HORIZON = 10.0**7


def make_scheduler(quality: str, grace_seconds: float):
    """Ray Tune's ASHA on training seconds: a trial is first compared with the others once
    it has trained `grace_seconds`, then at 3x, 9x, ... that."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr=COST, metric=quality, mode="max", max_t=NO_HORIZON,
                         grace_period=grace_seconds, reduction_factor=REDUCTION_FACTOR)
