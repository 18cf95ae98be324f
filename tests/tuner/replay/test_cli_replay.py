"""`cce-tune replay` through `tuner/cli_replay.py`: end to end, and bad input as one line."""

import argparse
import json
import shlex

import pytest

from cce_tune.tuner.cli_replay import add_replay_parser, run_replay
from cce_tune.tuner.errors import CceTuneError
from tests.tuner.replay.tables import write_table


def replay(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="cce-tune")
    add_replay_parser(parser.add_subparsers(dest="command"))
    run_replay(parser.parse_args(["replay", *argv]))


def test_a_run_directory_replays_under_its_own_budget(tmp_path, capsys):
    write_table(tmp_path / "run" / "report")
    (tmp_path / "run" / "run.json").write_text(json.dumps({"budget_bytes": 16 * 10**9,
                                                            "margin": 0.9}))
    replay(str(tmp_path / "run"), "--trials", "4", "--seeds", "1", "--out",
           str(tmp_path / "out"))
    assert "the run's budget: --gpu-mem 16GB --margin 0.9" in capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert result["settings"]["limit_gb"] == pytest.approx(14.4)


def test_replay_a_run_directory(tmp_path, capsys):
    write_table(tmp_path / "run" / "report")
    out = tmp_path / "out"
    replay(str(tmp_path / "run"), "--gpu-mem", "16GB", "--trials", "8", "--seeds", "2",
           "--grace", "1m", "--out", str(out))
    printed = capsys.readouterr().out
    assert "best feasible ndcg10" in printed and "ASHA grace 1.0 min" in printed
    for name in ("random", "tpe", "cce-tune"):
        assert any(line.startswith(name) for line in printed.splitlines())
    result = json.loads((out / "replay.json").read_text())
    assert result["settings"]["limit_gb"] == pytest.approx(14.4)
    assert result["seeds"] == [0, 1]
    assert set(result["summaries"]) == {"random", "tpe", "cce-tune"}
    assert set(result["summaries"]["tpe"]["hypervolume_share"]) == {"8"}
    markdown = (out / "replay.md").read_text().splitlines()
    assert markdown[0] == "# cce-tune replay"
    command = markdown[3]
    assert command.startswith("cce-tune replay ") and "--grace 60" in command
    assert shlex.split(command)[2] == str(tmp_path / "run")


def test_replay_any_csv_with_named_columns(tmp_path, capsys):
    path = write_table(tmp_path, history=False, seeds=1)
    mine = tmp_path / "mine.csv"
    mine.write_text(path.read_text().replace("ndcg10", "score").replace("train_seconds",
                                                                        "gpu_s"))
    replay(str(mine), "--quality", "score", "--memory", "peak_memory_gb", "--cost", "gpu_s",
           "--knobs", "batch_size,negatives", "--strategies", "random", "--trials", "4",
           "--seeds", "1", "--no-early-stopping")
    printed = capsys.readouterr().out
    assert "25 points" in printed and "no early stopping" in printed


@pytest.mark.parametrize(("argv", "message"), [
    (["--gpu-mem", "40 parsecs"], "--gpu-mem: '40 parsecs' is not a memory size"),
    (["--gpu-mem", "1MB"], "nothing in .* fits the budget"),
    (["--quality", "mrr"], "no column 'mrr' \\(--quality\\)"),
    (["--strategies", "random,grid"], "strategy 'grid': choose from"),
])
def test_bad_input_is_one_line(tmp_path, argv, message):
    write_table(tmp_path)
    with pytest.raises(CceTuneError, match=message) as error:
        replay(str(tmp_path / "trials.csv"), "--seeds", "1", "--trials", "2", *argv)
    assert "\n" not in str(error.value)


def test_missing_table(tmp_path):
    with pytest.raises(CceTuneError, match="nowhere.csv: no such file"):
        replay(str(tmp_path / "nowhere.csv"))


def test_the_command_line_imports_no_ray_optuna_or_torch():
    import subprocess
    import sys

    probe = ("import argparse, sys\n"
             "from cce_tune.tuner.cli_replay import add_replay_parser\n"
             "import cce_tune.tuner.replay\n"
             "add_replay_parser(argparse.ArgumentParser().add_subparsers())\n"
             "print([m for m in ('ray', 'optuna', 'torch', 'triton') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
