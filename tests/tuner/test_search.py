"""The tuner end to end on the CPU: real Ray runs on the tiny synthetic set."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from cce_tune.search_spaces import load_space
from cce_tune.tuner.cli import main
from cce_tune.tuner.families import get
from cce_tune.tuner.families.sasrec import SASRecTarget
from cce_tune.tuner.memory import DatasetShape
from cce_tune.tuner.report import pareto_mask
from cce_tune.tuner.search import BudgetedSearch, SpaceSampler
from cce_tune.tuner.sequences.config import TrainConfig

REPORT_FILES = ("trials.csv", "pareto.csv", "pareto.json", "report.html", "summary.md")


def knobs_of(model):
    return get(model).space_knobs


SMALL = ["--dataset", "synthetic", "--epochs", "2", "--no-dashboard", "--gpu-mem", "40GB"]


def brute_force_front(points, senses):
    signs = np.array([1 if s == "min" else -1 for s in senses])
    values = np.asarray(points) * signs
    keep = []
    for p in values:
        beaten = ((values <= p).all(axis=1) & (values < p).any(axis=1)).any()
        keep.append(not beaten)
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_pareto_set_equals_a_brute_force_filter(seed):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, (60, 3)).astype(float).tolist()  # many ties
    senses = ("max", "min", "min")
    assert pareto_mask(points, senses) == brute_force_front(points, senses)


def test_over_budget_proposals_are_never_suggested(tmp_path):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    space = load_space("synthetic", knobs_of)
    base = TrainConfig(epochs=2)
    shape = DatasetShape(2_000, 500)
    limit = 2.285e9  # between the space's smallest and largest estimates (context included)
    inner = OptunaSearch(space=SpaceSampler(space, SASRecTarget(base, shape, None), limit),
                         metric=["ndcg10", "epoch_seconds", "peak_memory_gb"],
                         mode=["max", "min", "min"],
                         sampler=optuna.samplers.TPESampler(seed=0))
    search = BudgetedSearch(inner, limit, tmp_path, None, None, max_rejections=500,
                            quality="ndcg10")
    suggested = [search.suggest(f"t{i}") for i in range(12)]
    assert all(config["estimate_total_bytes"] <= limit for config in suggested)
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    assert search.rejected == len(rejected) > 0
    assert all(r["estimate_total_bytes"] > limit for r in rejected)
    # Optuna saw the rejections as complete trials that violate the constraint.
    study_trials = inner._ot_study.trials
    infeasible = [t for t in study_trials if t.user_attrs["over_budget_bytes"] > 0]
    assert len(infeasible) == len(rejected)
    assert all(t.state.name == "COMPLETE" for t in infeasible)


def test_nothing_is_proposed_once_the_time_budget_has_run_out(tmp_path):
    """`--time-budget` stops the proposals; Ray Tune's own budget would stop running trials
    mid-training instead."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    def search(launch_until: float) -> BudgetedSearch:
        space = load_space("synthetic", knobs_of)
        target = SASRecTarget(TrainConfig(epochs=2), DatasetShape(2_000, 500), None)
        inner = OptunaSearch(space=SpaceSampler(space, target, 1e12),
                             metric=["ndcg10", "epoch_seconds", "peak_memory_gb"],
                             mode=["max", "min", "min"],
                             sampler=optuna.samplers.TPESampler(seed=0))
        return BudgetedSearch(inner, 1e12, tmp_path, None, None, max_rejections=5,
                              quality="ndcg10", launch_until=launch_until, time_budget_s=60)

    assert "batch_size" in search(time.time() + 60).suggest("t0")
    assert not (tmp_path / "time-budget-spent.txt").exists()
    assert search(time.time() - 1).suggest("t1") == BudgetedSearch.FINISHED
    assert (tmp_path / "time-budget-spent.txt").read_text() == "60\n"


def test_optuna_is_told_what_the_reports_score_a_trial_by(tmp_path):
    """The best quality a trial reached (not its last epoch's, lower once validation has
    stalled), its median epoch time and its highest peak, as the reports score it."""

    class Inner:
        metric, mode = ["ndcg10"], ["max"]

        def __init__(self):
            self.told = {}

        def suggest(self, trial_id):
            return {"estimate_total_bytes": 1}

        def on_trial_result(self, trial_id, result):
            pass

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.told[trial_id] = result

    def epoch(number, ndcg, seconds, peak):
        return {"epoch": number, "ndcg10": ndcg, "epoch_seconds": seconds,
                "peak_memory_gb": peak}

    inner = Inner()
    search = BudgetedSearch(inner, 10.0, tmp_path, None, None, max_rejections=5,
                            quality="ndcg10")
    search.suggest("t")
    results = [epoch(1, 0.2, 3.0, 1.0), epoch(2, 0.4, 1.0, 1.5), epoch(3, 0.3, 2.0, 1.2)]
    for result in results:
        search.on_trial_result("t", result)
    search.on_trial_complete("t", results[-1])  # Ray passes the last result on again
    told = inner.told["t~0"]
    assert (told["ndcg10"], told["epoch_seconds"], told["peak_memory_gb"]) == (0.4, 2.0, 1.5)
    # When ASHA stops a trial, Ray gives that epoch's result to the searcher only at the end.
    search.suggest("u")
    search.on_trial_result("u", epoch(1, 0.1, 1.0, 1.0))
    search.on_trial_complete("u", epoch(2, 0.3, 1.0, 1.0))
    assert inner.told["u~0"]["ndcg10"] == 0.3


def run_cli(*argv):
    assert main(list(argv)) == 0


@pytest.mark.slow
def test_a_run_writes_every_report_and_survives_an_out_of_memory_trial(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("CCE_TUNE_FAULT", "oom:batch_size=64")
    monkeypatch.setenv("CCE_TUNE_PROFILE_FIRST_STEP", "1")
    run_dir = tmp_path / "run"
    run_cli(*SMALL, "--trials", "5", "--out", str(run_dir), "--seed", "3")
    printed = capsys.readouterr()
    # Quiet by default: the live lines and the summary, not Ray's or Optuna's chatter; a
    # failed trial is one line with its error file.
    for noise in ("TensorBoard", "A new study created", "Traceback", "Configuration for"):
        assert noise not in printed.out + printed.err, noise
    assert "OUT OF MEMORY" in printed.out and f"{run_dir.resolve()}/trial_" in printed.out
    assert len((run_dir / "memory-grid.jsonl").read_text().splitlines()) == 3 * 4 * 2
    for name in REPORT_FILES:
        assert (run_dir / "report" / name).is_file(), name
    trials = pd.read_csv(run_dir / "report" / "trials.csv")
    assert len(trials) == 5
    oom = trials[trials["batch_size"] == 64]
    assert len(oom) > 0 and (oom["status"] == "out of memory").all()
    assert "injected by CCE_TUNE_FAULT" in oom["error"].iloc[0]
    finished = trials[trials["status"].isin(["completed", "converged", "stopped early"])]
    assert len(finished) == 5 - len(oom) > 0
    for trial in finished["trial"]:  # where each trial's time to its first step went
        profile = (run_dir / f"trial_{trial}" / "first-step-profile.txt").read_text()
        assert "CPU total" in profile and "aten::" in profile
    front = pd.read_csv(run_dir / "report" / "pareto.csv")
    assert set(front["trial"]) <= set(finished["trial"]) and len(front) >= 1
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "cce-tune train --model sasrec --dataset synthetic" in summary
    assert "out of memory" in summary
    html = (run_dir / "report" / "report.html").read_text()
    assert "plotly" in html and "<h2>Recommended" in html and "out-of-memory" in html
    assert "Estimated against measured" not in html  # a CPU run measures no GPU memory
    # What optuna-dashboard and TensorBoard read (README): the journal, every trial's
    # objectives and memory constraint; each trial's event file, inside RUN_DIR.
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="cce-tune", storage=JournalStorage(
        JournalFileBackend(str(run_dir / "optuna-journal.log"))))
    told = [t for t in study.trials if t.values is not None]
    # Under 40 GB the whole synthetic space fits: no edge, so no configuration is enqueued.
    assert not any("fixed_params" in t.system_attrs for t in study.trials)
    assert len(told) >= len(finished) and all(len(t.values) == 3 for t in told)
    assert all("over_budget_bytes" in t.user_attrs for t in told)
    for trial in finished["trial"]:
        assert list((run_dir / f"trial_{trial}").glob("events.out.tfevents.*")), trial
    # The report command rebuilds the same files from RUN_DIR alone.
    (run_dir / "report" / "trials.csv").unlink()
    run_cli("report", str(run_dir))
    assert pd.read_csv(run_dir / "report" / "trials.csv").shape == trials.shape


@pytest.mark.slow
def test_a_killed_run_resumes_without_losing_or_rerunning_trials(tmp_path, capsys):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "cce_tune.tuner.cli", *SMALL, "--trials", "6",
               "--out", str(run_dir)]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    done = 0
    deadline = time.time() + 120
    for line in driver.stdout:
        done += "] completed" in line or "] stopped early" in line
        if done >= 2 or time.time() > deadline:
            break
    driver.send_signal(signal.SIGINT)  # Ctrl-C on the driver
    rest, _ = driver.communicate(timeout=60)
    assert done >= 2
    # The interrupted run's summary says it is partial and how to go on.
    assert "Partial run" in (run_dir / "report" / "summary.md").read_text()
    assert f"cce-tune tune --resume {run_dir}" in rest
    cut = (pd.read_csv(run_dir / "report" / "trials.csv")["status"] == "interrupted").any()
    assert driver.returncode == (130 if cut else 0)  # a script learns the run was cut short
    before = {p.parent.name: p.read_text() for p in run_dir.glob("trial_*/result.json")
              if p.read_text().count("\n") == 2}  # trials that finished both epochs
    assert len(before) >= 2
    capsys.readouterr()
    run_cli("--resume", str(run_dir))
    assert "(6 ended)" in capsys.readouterr().out  # the live count goes on from the first run
    trials = pd.read_csv(run_dir / "report" / "trials.csv")
    assert len(trials) == 6 and trials["status"].isin(["completed", "stopped early"]).all()
    assert "Partial run" not in (run_dir / "report" / "summary.md").read_text()
    for name, text in before.items():  # untouched: not rerun, not lost
        assert (run_dir / name / "result.json").read_text() == text


@pytest.mark.slow
def test_dlrm_tunes_by_auc_and_recommends_a_command_that_trains(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_cli("--model", "dlrm", "--dataset", "synthetic-dlrm-small", "--epochs", "2",
            "--trials", "3", "--no-dashboard", "--gpu-mem", "40GB", "--out", str(run_dir))
    for name in REPORT_FILES:
        assert (run_dir / "report" / name).is_file(), name
    trials = pd.read_csv(run_dir / "report" / "trials.csv")
    assert len(trials) == 3 and trials["status"].isin(["completed", "stopped early"]).all()
    assert trials["auc"].between(0.5, 1).all()
    assert {"embedding_dim", "mlp_bot", "mlp_top", "table_lr"} <= set(trials.columns)
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "validation AUC" in summary
    command = next(line for line in summary.splitlines() if line.startswith("cce-tune "))
    capsys.readouterr()
    run_cli(*command.split()[1:], "--epochs", "1", "--device", "cpu")
    assert "val AUC" in capsys.readouterr().out


def test_a_space_for_another_model_is_refused(capsys):
    assert main(["--model", "dlrm", "--dataset", "synthetic-dlrm-small", "--space", "synthetic",
                 "--gpu-mem", "40GB"]) == 2
    assert "--space synthetic tunes sasrec, not dlrm" in capsys.readouterr().err


def test_a_space_is_checked_against_its_models_knobs(tmp_path):
    from cce_tune.search_spaces import SpaceError

    path = tmp_path / "mine.yaml"
    path.write_text("model: dlrm\nparams:\n  negatives: {choices: [64]}\n")
    with pytest.raises(SpaceError, match="unknown knob 'negatives'; allowed: batch_size, "
                                         "embedding_dim"):
        load_space(path, knobs_of)
    path.write_text("model: gru4rec\nparams: {}\n")
    with pytest.raises(SpaceError, match="model 'gru4rec': choose one of sasrec, dlrm"):
        load_space(path, knobs_of)


def test_a_dlrm_point_sets_the_architecture_between_the_data_and_one_logit():
    from cce_tune.models.dlrm_config import DLRMConfig
    from cce_tune.tuner.clicks.config import DLRMTrainConfig
    from cce_tune.tuner.families.dlrm import config_from_params as dlrm_config_from_params

    base = DLRMTrainConfig(DLRMConfig((100, 20), bottom=(13, 64, 16), top=(32, 1),
                                      embedding_dim=16))
    config = dlrm_config_from_params({"embedding_dim": 8, "mlp_bot": "256-64", "mlp_top": "128",
                                      "batch_size": 2048, "table_lr": 0.1}, base)
    assert config.model.bottom == (13, 256, 64, 8) and config.model.top == (128, 1)
    assert config.model.table_sizes == (100, 20) and config.batch_size == 2048
    assert config.table_lr == 0.1 and config.lr == base.lr
    with pytest.raises(ValueError, match="mlp_top '128-x': hidden widths joined by '-'"):
        dlrm_config_from_params({"mlp_top": "128-x"}, base)


def test_the_searcher_pickles_without_the_dataset():
    import pickle

    from cce_tune.tuner.data.sequences import SequenceData

    data = SequenceData("big", 500, np.arange(0, 2_001 * 50, 50), np.ones(2_000 * 50, np.int32))
    target = SASRecTarget(TrainConfig(), DatasetShape(2_000, 500), None, data)
    sampler = SpaceSampler(load_space("synthetic", knobs_of), target, 1e9)
    restored = pickle.loads(pickle.dumps(sampler))
    assert restored.target.data is None and restored.target.shape == target.shape
    assert len(pickle.dumps(target)) < 10_000


def test_a_dlrm_runs_settings_survive_the_round_trip_through_run_json(tmp_path):
    from cce_tune.models.dlrm_config import DLRMConfig
    from cce_tune.tuner.clicks.config import ClickDataset, CriteoOptions, DLRMTrainConfig
    from cce_tune.tuner.run_dir import TuneSettings

    base = DLRMTrainConfig(DLRMConfig((100, 20), bottom=(13, 64, 16), top=(32, 1),
                                      embedding_dim=16), table_lr=0.2)
    settings = TuneSettings(run_dir=tmp_path, model="dlrm", space="dlrm", base=base,
                            data=ClickDataset("criteo.txt",
                                              CriteoOptions(hash_size=None, min_frequency=3)))
    settings.save()
    assert TuneSettings.load(tmp_path) == settings
