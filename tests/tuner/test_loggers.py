"""`--mlflow`: Ray Tune's MLflow logger writing inside RUN_DIR, and one clear line when the
optional mlflow is not installed."""

import sys

import pytest

from cce_tune.tuner.cli import main

SMALL = ["--dataset", "synthetic", "--epochs", "2", "--no-dashboard", "--gpu-mem", "40GB"]


def test_mlflow_missing_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an interpreter without it finds
    assert main([*SMALL, "--mlflow", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "cce-tune: error: --mlflow needs mlflow, which is not installed: "
        "pip install 'cce-tune[mlflow]'"]
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # MLflow's SQLAlchemy use
def test_mlflow_logs_every_trial_with_its_knobs_and_metrics_inside_run_dir(tmp_path, capsys,
                                                                          monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    run_dir = tmp_path / "run"
    work = tmp_path / "elsewhere"  # MLflow's defaults would write here (./mlruns)
    work.mkdir()
    monkeypatch.chdir(work)
    assert main([*SMALL, "--trials", "2", "--mlflow", "--out", str(run_dir)]) == 0
    printed = capsys.readouterr()
    assert "INFO mlflow" not in printed.out + printed.err  # quiet by default
    assert list(work.iterdir()) == []
    client = mlflow.MlflowClient(f"sqlite:///{run_dir.resolve()}/mlflow.db")
    experiment = client.get_experiment_by_name("run")
    assert experiment.artifact_location.startswith(run_dir.resolve().as_uri())
    runs = client.search_runs([experiment.experiment_id])
    trials = sorted(path.name for path in run_dir.glob("trial_*"))
    assert sorted(run.info.run_name.split()[0] for run in runs) == trials
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"batch_size", "negatives", "max_len"} <= set(run.data.params)
        assert f"B={run.data.params['batch_size']}" in run.info.run_name
        history = client.get_metric_history(run.info.run_id, "ndcg10")
        assert [m.step for m in history] == [1, 2]  # every epoch
        assert {"epoch_seconds", "peak_memory_gb", "hr10"} <= set(run.data.metrics)
