"""Early stopping that is fair across batch sizes: trials are compared after equal seconds of
training, and only with trials of their own batch size.

A batch of 4,096 takes 32x fewer optimizer steps per epoch than one of 128 and needs more
epochs to converge, but each of its epochs is faster. Compared at equal epochs (Ray's
`training_iteration`), ASHA stops the large batches first, the opposite of what scaling
batch size and negatives together is worth. Compared at equal training seconds (`COST`, the
sum of the epochs' training time, evaluation left out), each trial gets the GPU time it
costs; but how much a trial has learnt after its first seconds still depends on its batch
size, one way or the other: on the H200's ml-1m-shaped tables the batches of 32 (the
tables' best) were the ones stopped, 66-100 % of them, and on MovieLens-20M's GPU run
those of 2,048 (`benchmarks/results/replay-stopping-by-batch.md`). So each batch size
climbs its own ASHA rungs (`tuner.per_batch_asha.PerBatchSizeASHA`): a trial is stopped only
for being behind trials that learn at its pace, and which batch size is best is left to the
search, which sees every trial's quality. The tuner and `cce-tune replay` build the same
scheduler, so both stop the same trials.
"""

from __future__ import annotations

# The time attribute every trial reports: cumulative seconds spent training, evaluation
# excluded.
COST = "train_seconds"
REDUCTION_FACTOR = 3
# ASHA needs a horizon to lay out its rungs; trials end by patience or their epoch cap first.
NO_HORIZON = 10.0**7
# The knob whose values climb rungs apart; trials without it share one ladder.
STRATUM = "batch_size"

