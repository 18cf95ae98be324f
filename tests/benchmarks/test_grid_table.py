"""The grid benchmark's tables are what `cce-tune replay` reads."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.grid_table import Point, describe, earlier_runs, kept_runs, tables
from cce_tune.kernels import LossConfig
from cce_tune.tuner.memory import DatasetShape
from cce_tune.tuner.replay.table import load_table
from cce_tune.tuner.sequences.config import TrainConfig


def fake_run(point: Point, seed: int, qualities: list[float], converged: bool) -> dict:
    epochs = [{"epoch": e, "ndcg10": q, "hr10": 2 * q, "seconds": 9.0, "peak": 2e9,
               "converged": converged and e == len(qualities)}
              for e, q in enumerate(qualities, 1)]
    return {"point": point, "seed": seed, "epochs": epochs,
            "status": "converged" if converged else "completed", "ndcg10": max(qualities)}


def test_tables_use_solo_timings_and_replay_reads_them(tmp_path: Path):
    small, large = Point("cce_minus", 64, 16, 50), Point("cce_minus", 256, 64, 50)
    runs = [fake_run(small, 0, [0.1, 0.2, 0.15], True), fake_run(small, 1, [0.1, 0.18], False),
            fake_run(large, 0, [0.2, 0.3], False)]
    solo = {small: 2.0, large: 0.5}
    base = TrainConfig(loss=LossConfig("cce_minus"), epochs=2, patience=1)
    trials, history = tables(runs, solo, base, DatasetShape(6040, 3706))
    assert trials["ndcg10"].tolist() == [0.2, 0.18, 0.3]  # each run's best epoch
    assert trials["train_seconds"].tolist() == [6.0, 4.0, 1.0]  # solo epoch x epochs run
    assert trials["shared_epoch_seconds"].tolist() == [9.0, 9.0, 9.0]
    assert (trials["estimate_total_gb"] > 0.5).all()  # the estimate with its CUDA context
    assert history[history["trial"] == "00000"]["train_seconds"].tolist() == [2.0, 4.0, 6.0]
    trials.to_csv(tmp_path / "trials.csv", index=False)
    history.to_csv(tmp_path / "history.csv", index=False)
    table = load_table(tmp_path)
    assert {tuple(sorted(p.params.items())) for p in table.points} == {
        tuple(sorted({"loss": "cce_minus", "batch_size": b, "negatives": n,
                      "max_len": 50}.items())) for b, n in ((64, 16), (256, 64))}
    assert "Best point" in describe(trials, "python -m benchmarks.grid_table", 60.0)


def test_a_resumed_table_keeps_the_earlier_calls_runs(tmp_path: Path):
    small, large = Point("cce_minus", 64, 16, 50), Point("cce_minus", 256, 64, 50)
    runs = [fake_run(small, 0, [0.1, 0.2, 0.15], True), fake_run(large, 1, [0.2, 0.3], False),
            {"point": large, "seed": 0, "epochs": [], "status": "out_of_memory"}]
    solo = {small: 2.0, large: 0.5}
    base = TrainConfig(loss=LossConfig("cce_minus"), epochs=3, patience=1)
    trials, history = tables(runs, solo, base, DatasetShape(6040, 3706))
    trials.to_csv(tmp_path / "trials.csv", index=False)
    history.to_csv(tmp_path / "history.csv", index=False)
    kept = earlier_runs(tmp_path)
    assert {(run["point"], run["seed"]) for run in kept} == {(small, 0), (large, 1), (large, 0)}
    again, again_history = tables(kept, {small: 4.0, large: 0.5}, base, DatasetShape(6040, 3706))
    assert again["ndcg10"].fillna(-1).tolist() == trials["ndcg10"].fillna(-1).tolist()
    assert again["status"].tolist() == trials["status"].tolist()
    assert again["train_seconds"].tolist()[0] == 12.0  # this call's solo timing x 3 epochs
    assert again_history["ndcg10"].tolist() == history["ndcg10"].tolist()


def test_a_resume_keeps_this_grids_runs_that_did_not_fail(tmp_path: Path, capsys):
    small, large, gone = (Point("cce_minus", 64, 16, 50), Point("cce_minus", 256, 64, 50),
                          Point("cce_minus", 512, 64, 50))
    runs = [fake_run(small, 0, [0.1, 0.2], True), fake_run(gone, 0, [0.1], True),
            {"point": large, "seed": 0, "epochs": [], "status": "failed"}]
    base = TrainConfig(loss=LossConfig("cce_minus"), epochs=3, patience=1)
    trials, history = tables(runs, {small: 1.0, large: 1.0, gone: 1.0}, base,
                             DatasetShape(6040, 3706))
    trials.to_csv(tmp_path / "trials.csv", index=False)
    history.to_csv(tmp_path / "history.csv", index=False)
    (tmp_path / "grid.json").write_text(json.dumps({"base": asdict(base)}, default=str))
    kept = kept_runs(tmp_path, base, [small, large])
    assert [(run["point"], run["seed"]) for run in kept] == [(small, 0)]  # failed: again
    assert "counted patience once any margin" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="another base config"):
        kept_runs(tmp_path, TrainConfig(loss=LossConfig("cce_minus"), epochs=9), [small])


def test_an_earlier_table_without_a_single_epoch_resumes(tmp_path: Path):
    point = Point("cce_minus", 64, 16, 50)
    trials, _ = tables([{"point": point, "seed": 0, "epochs": [], "status": "out_of_memory"}],
                       {point: 1.0}, TrainConfig(loss=LossConfig("cce_minus")),
                       DatasetShape(6040, 3706))
    trials.to_csv(tmp_path / "trials.csv", index=False)
    (tmp_path / "history.csv").write_text("")
    assert earlier_runs(tmp_path)[0]["status"] == "out_of_memory"
