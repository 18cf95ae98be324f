import pandas as pd
import pytest

from cce_tune.tuner.report import trial_gaps


def test_trial_gaps_split_the_way_from_the_freed_slot_to_the_first_step():
    trials = pd.DataFrame({
        "trial": ["a", "b", "c", "d"],
        "started_at": [0.0, 0.0, 5.1, 10.2],
        "setup_at": [0.5, 0.4, 5.5, 10.4],
        "first_step_at": [1.0, 0.9, 6.0, 11.0],
        "ended_at": [10.0, 5.0, 12.0, 13.0],
    })
    gaps = trial_gaps(trials)
    # a and b started in fresh slots; c took b's (ended at 5), d took a's (ended at 10)
    expected = {"total": [1.0, 1.0], "ray": [0.1, 0.2], "setup": [0.4, 0.2],
                "first_step": [0.5, 0.6]}
    for column, values in expected.items():
        assert gaps[column].tolist() == pytest.approx(values), column


def test_trial_gaps_of_runs_without_timings_are_empty():
    assert trial_gaps(pd.DataFrame({"trial": ["a"]})).empty
