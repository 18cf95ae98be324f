"""The recommended command retrains the trial it recommends: a tiny CPU tune over a space that
searches the loss layout knobs (the ones the command once dropped), then the summary's command
run as a user would, compared with the trial field by field and by its first epoch's loss."""

import json
import shlex
from dataclasses import asdict, replace

import pandas as pd
import pytest

from cce_tune.tuner.cli import main
from cce_tune.tuner.families import get
from cce_tune.tuner.report import knee
from cce_tune.tuner.run_dir import TuneSettings
from cce_tune.tuner.sequences.config import resolve_auto

SPACE = """
description: the layout knobs of the fused loss, searched
params:
  negative_mode: {choices: [shared, tile, per_position]}
  tile_size: {choices: [8, 16]}
  in_kernel_negatives: {choices: [true, false]}
  negatives: {choices: [16, 32]}
fixed:
  loss: cce_minus
  batch_size: 64
  max_len: 20
  hidden: 16
"""


@pytest.mark.slow
def test_the_recommended_command_retrains_the_recommended_trial(tmp_path, capsys):
    space, run_dir = tmp_path / "layout.yaml", tmp_path / "run"
    space.write_text(SPACE)
    assert main(["--dataset", "synthetic", "--space", str(space), "--trials", "2",
                 "--epochs", "1", "--gpu-mem", "40GB", "--no-dashboard", "--seed", "4",
                 "--out", str(run_dir)]) == 0
    summary = (run_dir / "report" / "summary.md").read_text()
    command = next(line for line in summary.splitlines() if line.startswith("cce-tune train"))
    settings = TuneSettings.load(run_dir)
    front = pd.read_csv(run_dir / "report" / "pareto.csv", dtype={"trial": str})
    recommended = front.loc[knee(front, settings.family.objectives), "trial"]
    trial_dir = run_dir / f"trial_{recommended}"
    params = json.loads((trial_dir / "params.json").read_text())
    # The config the trial trained: its params over the run's base, on this CPU (no bf16),
    # with --batches auto made concrete as the trainer makes it.
    trained = resolve_auto(replace(get("sasrec").config_from_params(params, settings.base),
                                   device="cpu", bf16=False))
    out = tmp_path / "retrained.json"
    capsys.readouterr()
    assert main([*shlex.split(command)[1:], "--device", "cpu", "--out", str(out)]) == 0
    retrained = json.loads(out.read_text())
    assert retrained["config"] == asdict(trained)  # field by field
    first = json.loads((trial_dir / "result.json").read_text().splitlines()[0])
    assert retrained["epochs"][0]["loss"] == pytest.approx(first["loss"], abs=1e-6)

