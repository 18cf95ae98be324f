"""The tuning-run bars: stopped-early shares by batch size, and the recommended command
retrained with new seeds as a user would run it."""

import pandas as pd

from benchmarks.tuning_run_bars import retrain, stopped_shares


def test_stopped_shares_compare_small_and_large_batches_that_early_stopping_judged():
    trials = pd.DataFrame({
        "batch_size": [128, 256, 512, 1024, 2048, 4096, 4096, 128, 4096],
        "status": ["stopped early", "converged", "completed", "stopped early",
                   "stopped early", "converged", "stopped early", "interrupted", "failed"]})
    shares = stopped_shares(trials, small=512, large=2048)
    assert shares["small"] == {"trials": 3, "stopped": 1, "share": 1 / 3}
    assert shares["large"] == {"trials": 3, "stopped": 2, "share": 2 / 3}
    assert stopped_shares(trials[trials["batch_size"] < 2048], 512, 2048)["large"]["share"] \
        is None


def test_the_command_retrains_with_each_seed():
    command = ("cce-tune train --dataset synthetic --epochs 1 --batch-size 256 --max-len 20 "
               "--hidden 16 --seed 7")
    first = retrain(command, [1, 2], ["--device", "cpu"])
    assert len(first) == 2 and first[0] != first[1]  # the added seed wins over --seed 7
    assert retrain(command, [1], ["--device", "cpu"]) == first[:1]
