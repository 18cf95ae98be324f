"""One replayed search: the memory veto's count, out-of-memory launches without it, and
ASHA's decisions taken by the tuner's own scheduler."""

import optuna
import pandas as pd
import pytest

from cce_tune.tuner.per_batch_asha import PerBatchSizeASHA
from cce_tune.tuner.replay.simulate import ReplaySettings, replay_trial, simulate
from cce_tune.tuner.replay.table import Outcome, load_table
from cce_tune.tuner.strategies import STRATEGIES
from tests.tuner.replay.tables import corner_quality, write_table

LIMIT = 14.4  # 0.9 x 16 GB: binds, about a third of the grid is over it


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return load_table(write_table(tmp_path_factory.mktemp("table")))


def test_vetoed_proposals_are_counted_and_never_evaluated(table):
    log = simulate(table, STRATEGIES["random"], 3, ReplaySettings(trials=16, limit_gb=LIMIT))
    assert len(log.evaluated) == 16 and log.missing == 0
    assert all(t.point.memory_gb <= LIMIT and t.feasible for t in log.evaluated)
    # The same seeded RandomSampler, asked directly: the proposals over the limit before the
    # 16th under it are exactly the rejections.
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=3))
    space, under, over = table.space(), 0, 0
    while under < 16:
        trial = study.ask()
        point = table.lookup(space.suggest(trial))
        study.tell(trial, [0.0, 0.0, 0.0])
        if point.memory_gb > LIMIT:
            over += 1
        else:
            under += 1
    assert log.rejected == over > 0


def test_plain_tpe_launches_what_does_not_fit(table):
    log = simulate(table, STRATEGIES["tpe"], 0, ReplaySettings(trials=16, limit_gb=LIMIT))
    assert log.rejected == 0
    oom = [t for t in log.evaluated if t.out_of_memory]
    assert oom and all(t.point.memory_gb > LIMIT and t.quality is None for t in oom)
    assert all(0 < t.cost < t.point.outcomes[0].cost for t in oom)  # its first epoch


def test_a_point_the_table_lacks_is_not_evaluated(tmp_path):
    path = write_table(tmp_path, grid=((64, 128), (256, 512), (50, 100)), history=False)
    trials = pd.read_csv(path)
    hole = (trials["batch_size"] == 128) & (trials["negatives"] == 512)
    trials[~hole].to_csv(path, index=False)  # a grid with a gap: (128, 512) was not measured
    log = simulate(load_table(path), STRATEGIES["cce-tune"], 0, ReplaySettings(trials=8))
    assert log.missing > 0 and len(log.evaluated) == 8
    assert not any(t.point.params["batch_size"] == 128 and t.point.params["negatives"] == 512
                   for t in log.evaluated)


def test_asha_stops_the_clearly_worse_at_the_first_rung_and_never_the_best():
    scheduler = PerBatchSizeASHA("ndcg10", grace_seconds=10.0)

    def outcome(final: float) -> Outcome:
        return Outcome("t", final, 10.0, 1.0, 60.0,
                       tuple((10.0 * e, final * e / 6) for e in range(1, 7)))

    # (ASHA stops a trial below 2/3 of those recorded at a rung: the second trial ever is
    # stopped if it is a little worse than the first.)
    assert replay_trial(outcome(0.28), scheduler, "a", "ndcg10") == (0.28, 60.0, False)
    assert replay_trial(outcome(0.30), scheduler, "b", "ndcg10") == (0.30, 60.0, False)
    quality, cost, stopped = replay_trial(outcome(0.05), scheduler, "c", "ndcg10")
    assert stopped and cost == 10.0 and quality == pytest.approx(0.05 / 6)  # best seen
    assert replay_trial(outcome(0.31), scheduler, "d", "ndcg10") == (0.31, 60.0, False)


def test_a_search_stops_poor_trials_early_for_less_and_never_the_best(tmp_path):
    # Equal epoch times: ASHA's rungs compare every trial at equal training seconds, where
    # the history puts the trials in the order of their final quality.
    table = load_table(write_table(tmp_path, quality=corner_quality,
                                   seconds_per_epoch=lambda *_: 10.0))
    best = max(table.points, key=lambda p: p.quality)
    settings = ReplaySettings(trials=32, grace_seconds=10.0)
    stopped = 0
    for seed in range(3):
        for trial in simulate(table, STRATEGIES["cce-tune"], seed, settings).evaluated:
            if trial.point is best:
                assert not trial.stopped
            if trial.stopped:
                stopped += 1
                assert trial.cost < trial.outcome.cost
                assert trial.quality < trial.outcome.quality
            else:
                assert trial.cost == trial.outcome.cost
    assert stopped > 0


def test_without_grace_every_trial_runs_to_its_end(table):
    log = simulate(table, STRATEGIES["cce-tune"], 0, ReplaySettings(trials=8, limit_gb=LIMIT))
    assert not any(t.stopped for t in log.evaluated)


def test_with_concurrency_proposals_are_made_before_the_running_trials_end(tmp_path):
    """As in the tuner, where trials share GPUs: the first k proposals see no result."""
    from cce_tune.tuner.strategies import Strategy

    seen = []

    class Recording(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial):
            seen.append(sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)))

    strategy = Strategy("recording", "", lambda seed: Recording(seed=seed), veto=True)
    table = load_table(write_table(tmp_path))
    log = simulate(table, strategy, 0, ReplaySettings(trials=8, concurrency=4))
    assert len(log.evaluated) == 8
    asked_before_any_result = [n for n in seen if n == 0]
    assert len(asked_before_any_result) >= 4
    seen.clear()
    sequential = simulate(table, strategy, 0, ReplaySettings(trials=8, concurrency=1))
    assert len(sequential.evaluated) == 8 and seen.count(0) == 1
