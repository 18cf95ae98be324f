"""The calibration benchmark's CPU proxies on the calibrated preset, and its report."""

import json

import numpy as np
import pytest

from benchmarks.synthetic_calibration import (
    candidate_spec,
    main,
    proxies,
    transition_counts,
)
from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.data.synthetic import SYNTHETIC_PRESETS, generate, planted_model


def test_calibrated_preset_is_in_real_movielens_difficulty_range():
    """At ml-1m shape, measured with SASRec on an H200: full CE 0.107, 3.7x popularity
    (published ml-1m: 0.182, 2-6x). Its CPU proxies then read: popularity 0.028, Markov
    0.173, oracle 0.191. The ranges hold those with room for seeds and exclude the easy
    walk (oracle 0.60, Markov 20x popularity) and structure-free data (Markov ~ popularity)."""
    spec = SYNTHETIC_PRESETS["synthetic-ml-1m"]
    found = proxies(generate(spec, 2), planted_model(spec, 2))
    assert 0.02 <= found["popularity"] <= 0.045
    assert 0.14 <= found["oracle"] <= 0.25
    assert 4 <= found["markov"] / found["popularity"] <= 9
    assert found["markov"] <= found["oracle"] + 0.01


def test_transition_counts_use_training_pairs_within_users():
    # User 0: 1 2 3 4 5 (train 1 2 3), user 1: 3 2 1 4 (train 3 2).
    data = SequenceData("t", 5, np.array([0, 5, 9]), np.array([1, 2, 3, 4, 5, 3, 2, 1, 4],
                                                              dtype=np.int32))
    starts, following, counts = transition_counts(data)
    pairs = {(int(a), int(following[i]), int(counts[i]))
             for a in range(6) for i in range(starts[a], starts[a + 1])}
    assert pairs == {(1, 2, 1), (2, 3, 1), (3, 2, 1)}


def test_report_on_a_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", [
        "synthetic_calibration", "--shape", "synthetic", "--candidates", "follow-0.35",
        "--sasrec", "ce-b128", "--epochs", "2", "--max-len", "10", "--hidden", "16",
        "--out", str(tmp_path)])
    main()
    result = json.loads((tmp_path / "calibration.json").read_text())
    assert result["command"].startswith("python -m benchmarks.synthetic_calibration")
    row = result["rows"][0]
    assert row["candidate"] == "follow-0.35" and row["sasrec"]["ce-b128"]["epochs"] <= 2
    assert "| follow-0.35 |" in (tmp_path / "calibration.md").read_text()


def test_candidate_names_only_its_settings():
    spec = candidate_spec("synthetic-ml-1m", "easy")
    assert (spec.clusters, spec.follow_prob) == (1, 0.8)
    with pytest.raises(KeyError):
        candidate_spec("synthetic-ml-1m", "nonsense")
