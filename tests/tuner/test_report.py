import html
import json

import pandas as pd
import pytest

from cce_tune.tuner.report import budget_edge, trial_gaps, write_reports
from tests.tuner.run_dirs import TRIALS, fake_sasrec_run


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


def test_a_gap_a_resume_falls_in_is_the_interruption_not_overhead():
    trials = pd.DataFrame({"trial": ["a", "b"], "started_at": [0.0, 60.0],
                           "setup_at": [0.5, 60.5], "first_step_at": [1.0, 61.0],
                           "ended_at": [10.0, 70.0]})
    assert trial_gaps(trials)["total"].tolist() == [51.0]
    assert trial_gaps(trials, resumes=[55.0]).empty


def test_trial_gaps_of_runs_without_timings_are_empty():
    assert trial_gaps(pd.DataFrame({"trial": ["a"]})).empty


def test_trial_states_say_what_happened(tmp_path):
    """Completed (to the cap), stopped early, interrupted (no final result), out of memory,
    failed, not started; only completed trials reach the front, and a run with unfinished
    trials says it is partial and how to resume it."""
    run_dir = fake_sasrec_run(tmp_path / "run")  # three trials completed at epoch 2 of 2
    trials = sorted(run_dir.glob("trial_*"))
    result = trials[0] / "result.json"
    result.write_text(result.read_text().splitlines()[0].replace('"done": false',
                                                                '"done": true') + "\n")
    interrupted = trials[1] / "result.json"
    interrupted.write_text(interrupted.read_text().splitlines()[0] + "\n")
    for name, error in (("oom", "torch.OutOfMemoryError: CUDA out of memory."),
                        ("failed", "ValueError: boom"), ("waiting", None)):
        extra = run_dir / f"trial_{name}"
        extra.mkdir()
        (extra / "params.json").write_text('{"batch_size": 64}')
        if error:
            (extra / "error.txt").write_text(error)
    out = write_reports(run_dir)
    states = pd.read_csv(out / "trials.csv").set_index("trial")["status"].to_dict()
    assert states == {"00000": "stopped early", "00001": "interrupted", "00002": "completed",
                      "oom": "out of memory", "failed": "failed", "waiting": "not started"}
    assert pd.read_csv(out / "pareto.csv", dtype={"trial": str})["trial"].tolist() == ["00002"]
    summary = (out / "summary.md").read_text()
    assert "**Partial run**" in summary
    assert f"cce-tune tune --resume {run_dir}" in summary
    assert "Interrupted ahead" not in summary  # 0.175 after 1 epoch, the front has 0.28


def test_a_partial_run_names_an_interrupted_trial_ahead_of_the_finished_ones(tmp_path):
    run_dir = fake_sasrec_run(tmp_path / "run")
    interrupted = sorted(run_dir.glob("trial_*"))[1] / "result.json"
    first = json.loads(interrupted.read_text().splitlines()[0])
    interrupted.write_text(json.dumps({**first, "ndcg10": 0.5}) + "\n")
    summary = (write_reports(run_dir) / "summary.md").read_text()
    assert ("Interrupted ahead of every finished trial: trial 00001, validation NDCG@10 "
            "0.5000 after 1 epoch (not on the front") in summary


def test_a_complete_run_is_not_partial(tmp_path):
    out = write_reports(fake_sasrec_run(tmp_path / "run"))
    summary = (out / "summary.md").read_text()
    assert "Partial run" not in summary and "3 of 3 trials (3 completed)" in summary


def test_a_run_whose_time_budget_ran_out_is_not_partial(tmp_path):
    """Asked for 5 trials, 3 launched before the time budget: the other 2 are not missing."""
    from dataclasses import replace

    from cce_tune.tuner.run_dir import LAUNCHES_STOPPED_FILE, TuneSettings

    run_dir = fake_sasrec_run(tmp_path / "run")
    replace(TuneSettings.load(run_dir), trials=5).save()
    assert "**Partial run**" in (write_reports(run_dir) / "summary.md").read_text()
    (run_dir / LAUNCHES_STOPPED_FILE).write_text("600.0\n")
    summary = (write_reports(run_dir) / "summary.md").read_text()
    assert "Partial run" not in summary
    assert "the time budget (600 s) ran out after 3 launches" in summary
    html = (run_dir / "report" / "report.html").read_text()
    assert "The time budget (600 s) ran out after 3 launches: no more were proposed" in html


def test_resuming_a_complete_run_rebuilds_its_reports_without_running(tmp_path, capsys):
    from cce_tune.tuner.cli import main

    run_dir = fake_sasrec_run(tmp_path / "run")  # all three trials completed
    assert main(["tune", "--resume", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert f"{run_dir} is complete: all 3 trials ended" in printed
    assert (run_dir / "report" / "summary.md").is_file()


def test_the_html_report_leads_with_the_recommendation_and_lists_every_trial(tmp_path):
    run_dir = fake_sasrec_run(tmp_path / "run")
    oom = run_dir / "trial_oom"
    oom.mkdir()
    (oom / "params.json").write_text('{"batch_size": 4096}')
    (oom / "error.txt").write_text("torch.OutOfMemoryError: CUDA out of memory.")
    page = (write_reports(run_dir) / "report.html").read_text()
    summary = (run_dir / "report" / "summary.md").read_text()
    command = next(line for line in summary.splitlines() if line.startswith("cce-tune train"))
    recommended, charts = page.index("<h2>Recommended"), page.index("plotly-graph-div")
    assert recommended < page.index(html.escape(command)) < charts  # before any chart
    assert page.count("<tr class='completed'>") == 3
    assert "<tr class='out-of-memory'>" in page and "CUDA out of memory" in page
    assert "Estimated against measured" not in page  # nothing was measured on a GPU


def test_a_searched_knob_beyond_the_familys_columns_gets_a_column_where_it_varies(tmp_path):
    """A space that searches sparse_item_grad shows it in the front's table and the HTML's;
    one fixed for the run (negative_mode here) adds nothing."""
    trials = [({**params, "sparse_item_grad": index == 1, "negative_mode": "tile"}, *rest)
              for index, (params, *rest) in enumerate(TRIALS)]
    run_dir = fake_sasrec_run(tmp_path / "run", trials)
    page = (write_reports(run_dir) / "report.html").read_text()
    summary = (run_dir / "report" / "summary.md").read_text()
    header = next(line for line in summary.splitlines() if line.startswith("| trial |"))
    assert header.endswith("| lr | sparse-item-grad | NDCG@10 | epoch s | peak GB | "
                           "estimated peak GB |"), header
    assert "negative-mode" not in header
    assert "<th>sparse-item-grad</th>" in page and "<th>negative-mode</th>" not in page


def test_a_converged_trial_reaches_the_front_and_every_epoch_is_in_the_history(tmp_path):
    """A trial that stopped itself (validation stalled) ran to its end, like one that hit
    the epoch cap; history.csv holds each epoch with the training seconds spent by then."""
    run_dir = fake_sasrec_run(tmp_path / "run")
    result = sorted(run_dir.glob("trial_*"))[2] / "result.json"
    first = json.loads(result.read_text().splitlines()[0])
    result.write_text(json.dumps({**first, "converged": True, "done": True,
                                  "train_seconds": 3.0}) + "\n")
    out = write_reports(run_dir)
    trials = pd.read_csv(out / "trials.csv", dtype={"trial": str}).set_index("trial")
    assert trials.loc["00002", "status"] == "converged"
    assert trials.loc["00002", "pareto"]  # the fastest epoch of the three
    history = pd.read_csv(out / "history.csv", dtype={"trial": str})
    assert history.groupby("trial")["epoch"].apply(list).to_dict() == {
        "00000": [1, 2], "00001": [1, 2], "00002": [1]}
    assert history.set_index("trial").loc["00002", "train_seconds"] == 3.0
    assert "reached by training time" in (out / "report.html").read_text()


def test_the_budget_edge_is_drawn_at_the_recommended_trials_other_knobs(tmp_path):
    """From the estimates the run wrote at its start: per batch size, the most negatives
    that fit under margin x budget, at the recommended trial's sequence length."""
    run_dir = fake_sasrec_run(tmp_path / "run")  # budget 40 GB: the limit is 36 GB
    rows = [{"batch_size": b, "negatives": n, "max_len": m, "lr": 1e-3,
             "estimate_total_gb": b * n * m / 1e5}
            for b in (64, 128, 256) for n in (128, 256, 512) for m in (50, 100)]
    (run_dir / "memory-grid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recommended = pd.Series({"max_len": 100})
    edge = budget_edge(run_dir, ("batch_size", "negatives"), recommended, 36.0)
    # at L = 100: 64 x 512 x 100 / 1e5 = 32.8 GB fits, 128 x 256 = 32.8, 256 x 128 = 32.8
    assert edge.to_dict("list") == {"batch_size": [64, 128, 256], "negatives": [512, 256, 128]}
    assert budget_edge(run_dir, ("batch_size", "negatives"), None, 36.0) is None
    assert "budget edge" in (write_reports(run_dir) / "report.html").read_text()
    # a budget that nothing in the space reaches draws no edge: it would be the space's
    assert budget_edge(run_dir, ("batch_size", "negatives"), recommended, 400.0) is None


def test_a_trial_restarted_by_a_resume_keeps_its_restarts_epochs_only(tmp_path):
    """Without a checkpoint Ray restarts an unfinished trial from epoch 1 and appends to its
    result.json: the epochs before the restart are not the trial's."""
    run_dir = fake_sasrec_run(tmp_path / "run")
    result = sorted(run_dir.glob("trial_*"))[0] / "result.json"
    lines = result.read_text().splitlines()
    result.write_text("\n".join([lines[0], *lines]) + "\n")  # epoch 1, then 1, 2 again
    out = write_reports(run_dir)
    trials = pd.read_csv(out / "trials.csv", dtype={"trial": str}).set_index("trial")
    assert trials.loc["00000", "epochs"] == 2
    history = pd.read_csv(out / "history.csv", dtype={"trial": str})
    assert history[history["trial"] == "00000"]["epoch"].tolist() == [1, 2]
