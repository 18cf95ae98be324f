"""Strategies compared on the same seeds: the table's best feasible point, the ranking on an
easy table, determinism."""

import pytest

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.replay import ReplaySettings, compare, load_table, report
from cce_tune.tuner.replay.metrics import stopped_by_batch
from cce_tune.tuner.replay.simulate import simulate
from cce_tune.tuner.strategies import STRATEGIES
from tests.tuner.replay.tables import corner_quality, memory_of, quality_of, write_table


def test_best_feasible_is_the_best_point_under_the_budget(tmp_path):
    table = load_table(write_table(tmp_path, noise=0.0))
    comparison = compare(table, ["random"], range(2), ReplaySettings(trials=8, limit_gb=14.4))
    feasible = [p.params for p in table.points if memory_of(p.params["batch_size"],
                                                            p.params["negatives"],
                                                            p.params["max_len"]) <= 14.4]
    best = max(feasible, key=lambda p: quality_of(p["batch_size"], p["negatives"],
                                                  p["max_len"]))
    assert comparison.best.params == best
    assert comparison.best.quality == pytest.approx(
        quality_of(best["batch_size"], best["negatives"], best["max_len"]))
    unbounded = compare(table, ["random"], range(1), ReplaySettings(trials=8))
    assert unbounded.best.quality > comparison.best.quality  # the budget binds
    assert len(comparison.feasible) < len(unbounded.feasible) == len(table.points)


def test_the_tuners_search_beats_random_on_an_easy_table(tmp_path):
    table = load_table(write_table(tmp_path, quality=corner_quality, history=False))
    comparison = compare(table, ["random", "cce-tune"], range(6), ReplaySettings(trials=32))
    ours, random = comparison.summaries["cce-tune"], comparison.summaries["random"]
    assert ours.trials_to_within is not None and ours.trials_to_within <= 32
    assert random.trials_to_within is None or ours.trials_to_within < random.trials_to_within
    assert ours.not_reached < random.not_reached


def test_same_seeds_same_numbers(tmp_path):
    table = load_table(write_table(tmp_path))
    settings = ReplaySettings(trials=8, limit_gb=14.4, grace_seconds=60.0)
    first, second = (report.to_json(compare(table, ["tpe", "cce-tune"], [4, 7], settings), "")
                     for _ in range(2))
    assert first == second
    assert first["seeds"] == [4, 7] and len(first["runs"]["tpe"]) == 2


def test_nothing_fits(tmp_path):
    table = load_table(write_table(tmp_path))
    with pytest.raises(CceTuneError, match=r"smallest point needs 1\.\d\d GB"):
        compare(table, ["random"], range(1), ReplaySettings(limit_gb=0.5))


def test_unknown_strategy(tmp_path):
    table = load_table(write_table(tmp_path))
    with pytest.raises(CceTuneError, match="strategy 'bayes': choose from random, tpe, "
                                           "cce-tune"):
        compare(table, ["bayes"], range(1), ReplaySettings())


def test_stopped_early_is_tallied_by_batch_size_and_reported(tmp_path):
    """ASHA stops trials on this table, and the report says how many per batch size, summed
    over seeds (which ones it stops: tests/tuner/test_early_stopping.py)."""
    table = load_table(write_table(tmp_path, quality=corner_quality,
                                   seconds_per_epoch=lambda *_: 10.0))
    settings = ReplaySettings(trials=16, grace_seconds=10.0)
    log = simulate(table, STRATEGIES["random"], 0, settings)
    for batch, (stopped, run) in stopped_by_batch(log).items():
        mine = [t for t in log.evaluated if t.point.params["batch_size"] == batch]
        assert (stopped, run) == (sum(t.stopped for t in mine), len(mine))
    comparison = compare(table, ["random"], range(3), settings)
    tally = comparison.summaries["random"].stopped_by_batch
    assert sum(run for _, run in tally.values()) == 3 * 16
    assert sum(stopped for stopped, _ in tally.values()) > 0
    stopped, run = tally[64]
    assert f"| {stopped}/{run} {stopped / run:.0%} |" in report.markdown(comparison, "")
    assert "B 1,024" in report.text(comparison)
