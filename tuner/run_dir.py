"""What a run directory holds: its settings (`run.json`, which `--resume` and `report` read)
and the names of the files the search writes beside Ray's. No Ray and no torch: the reports
read a run with pandas alone."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families import DEFAULT, Family, get
from cce_tune.tuner.memory import LAUNCH_MARGIN

RUN_FILE = "run.json"
REJECTED_FILE = "rejected.jsonl"
JOURNAL_FILE = "optuna-journal.log"
MLFLOW_DB, MLFLOW_ARTIFACTS = "mlflow.db", "mlflow-artifacts"  # with --mlflow
# Every point of the space's grid (discrete knobs) with its estimate, written at the start:
# the reports draw the budget's edge from it.
MEMORY_GRID_FILE = "memory-grid.jsonl"
# When each `--resume` began (seconds since the epoch, a line each): the time between an
# interruption and its resume is no trial's overhead.
RESUMES_FILE = "resumes.txt"
# Written when the search stops launching because its time budget (`--time-budget`) ran
# out: the trials it never proposed are not missing, and `--resume` finishes only what was
# interrupted. Holds the budget in seconds.
LAUNCHES_STOPPED_FILE = "time-budget-spent.txt"
REPORT_DIR = "report"
# Every trial's every epoch (report/history.csv): what `cce-tune replay` replays early
# stopping from, and what the quality-against-cost chart draws.
HISTORY_FILE = "history.csv"

# What became of a trial. Only trials that ran to their end (converged: validation stopped
# improving; completed: the epoch cap) are compared on the front: an early-stopped or
# interrupted one reports a quality it had not finished reaching.
CONVERGED, COMPLETED = "converged", "completed"
STOPPED_EARLY, INTERRUPTED = "stopped early", "interrupted"
OUT_OF_MEMORY, FAILED, NOT_STARTED = "out of memory", "failed", "not started"
RAN_TO_THE_END = (CONVERGED, COMPLETED)
# Reported true with a trial's last epoch (converged, or its epoch cap), so a run cut off
# later still knows the trial had ended.
LAST_EPOCH = "last_epoch"


def objective_values(results: list[dict[str, Any]], quality: str) -> dict[str, float]:
    """What a trial scores on the three objectives, from its epochs' results: its best
    quality, its median epoch time, its highest peak. The reports and the search (what
    Optuna is told) both read a trial this way."""
    return {quality: max(r[quality] for r in results),
            "epoch_seconds": statistics.median(r["epoch_seconds"] for r in results),
            "peak_memory_gb": max(r["peak_memory_gb"] for r in results)}


def error_state(error: str) -> str:
    """What became of a trial that raised `error` (its traceback's text)."""
    return OUT_OF_MEMORY if "out of memory" in error.lower() else FAILED


def launches_stopped(run_dir: Path) -> float | None:
    """The time budget (seconds) after which the search stopped proposing, if it did."""
    path = Path(run_dir) / LAUNCHES_STOPPED_FILE
    return float(path.read_text()) if path.is_file() else None


def resume_times(run_dir: Path) -> list[float]:
    path = Path(run_dir) / RESUMES_FILE
    return [float(line) for line in path.read_text().split()] if path.is_file() else []


def ended_state(last_result: dict[str, Any], epochs: int) -> str:
    """What became of a trial that ended after reporting `last_result`, `epochs` the cap."""
    if last_result.get("converged"):
        return CONVERGED
    return COMPLETED if last_result.get("epoch", 0) >= epochs else STOPPED_EARLY


@dataclass(frozen=True)
class TuneSettings:
    """Everything a run needs; stored as RUN_DIR/run.json."""

    run_dir: Path
    base: Any  # the family's training config: the fixed part of every trial's
    data: Any  # the family's data options (a dataset's name and how to prepare it)
    model: str = DEFAULT
    space: str = "default"
    budget_bytes: int = 40 * 10**9
    margin: float = LAUNCH_MARGIN  # launch only what the estimate puts under margin x budget
    trials: int = 16
    epochs: int = 5
    time_budget_s: float | None = None
    gpus_per_trial: float | None = None  # None: a fraction of a GPU by each trial's estimate
    address: str | None = None
    seed: int = 0
    memory_profile: Path | None = None
    dashboard: bool = True
    mlflow: bool = False  # log every trial to MLflow in RUN_DIR too
    actor_per_trial: bool = False  # a fresh Ray actor per trial, named after it
    grace_seconds: float = 60.0  # training seconds before ASHA may stop a trial
    max_rejections: int = 2000  # proposals in a row over the budget before giving up

    @property
    def family(self) -> Family:
        return get(self.model)

    @property
    def dataset_name(self) -> str:
        return self.family.data_name(self.data)

    @property
    def budget_limit(self) -> float:
        return self.budget_bytes * self.margin

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / RUN_FILE).write_text(json.dumps(asdict(self), indent=2, default=str))

    @classmethod
    def load(cls, run_dir: Path) -> TuneSettings:
        path = Path(run_dir) / RUN_FILE
        if not path.is_file():
            raise CceTuneError(f"{run_dir}: not a cce-tune run (no {RUN_FILE})")
        raw = json.loads(path.read_text())
        model = raw.get("model", DEFAULT)
        data, base = get(model).from_json(raw)
        profile = raw["memory_profile"]
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in raw.items() if k in known},
                      "run_dir": Path(run_dir), "model": model, "data": data, "base": base,
                      "memory_profile": Path(profile) if profile else None})

