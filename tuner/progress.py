"""The live view of a tuning run: a rich table redrawn in place on a terminal, one line per
trial event otherwise (logs, CI, a pipe), with measured against estimated memory."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from cce_tune.tuner.families import Family
from cce_tune.tuner.run_dir import (
    COMPLETED,
    CONVERGED,
    FAILED,
    OUT_OF_MEMORY,
    STOPPED_EARLY,
    ended_state,
    error_state,
)
from cce_tune.tuner.trial_names import knobs_text, short
from cce_tune.tuner.units import GB, format_bytes


@dataclass
class _Row:
    number: int
    config: dict[str, Any]
    status: str = "running"
    result: dict[str, Any] = field(default_factory=dict)


class ProgressTable(Callback):
    """Shows each trial's knobs, status and last epoch as the run goes."""

    def __init__(self, trials: int, budget_bytes: int, family: Family, epochs: int,
                 searched: tuple[str, ...] | None = None, live: bool | None = None,
                 run_dir: Path | None = None) -> None:
        self.trials = trials
        self.run_dir = run_dir  # whose trials a resume finds there
        self.epochs = epochs  # the cap: a trial that ends before it was stopped early
        self.budget_bytes = budget_bytes
        self.family = family
        # The knobs worth a column: the family's, less those the space holds fixed, then the
        # other knobs it searches.
        self.columns = (*((knob, header) for knob, header in family.columns
                          if searched is None or knob in searched),
                        *family.extra_columns(searched or ()))
        self.use_live = sys.stdout.isatty() if live is None else live
        self.rows: dict[str, _Row] = {}
        self.done = 0
        self._live = None

    def __getstate__(self) -> dict:  # Ray pickles its callbacks with the run's state
        return {**self.__dict__, "_live": None}

    def setup(self, **info) -> None:
        if not self.rows and getattr(self, "run_dir", None) is not None:
            self._number_earlier_trials()
        if self.use_live and self._live is None:
            from rich.live import Live

            self._live = Live(self.render(), refresh_per_second=2)
            self._live.start()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def on_experiment_end(self, trials, **info) -> None:
        self.close()

    def _number_earlier_trials(self) -> None:
        """On a resume: the interrupted run's trials keep their numbers, in the order they
        started, and those that ended count as ended (Ray restores this callback as it was
        pickled when the run began, before any trial)."""
        from cce_tune.tuner.report import ended_count, load_trials

        trials = load_trials(self.run_dir, self.family, self.epochs)
        if trials.empty:
            return
        if "started_at" in trials:
            trials = trials.sort_values("started_at", na_position="last")
        for trial, status in zip(trials["trial"], trials["status"], strict=True):
            self.rows[trial] = _Row(len(self.rows) + 1, {}, status)
        self.done = ended_count(trials)

    def _row(self, trial) -> _Row:
        if trial.trial_id not in self.rows:
            self.rows[trial.trial_id] = _Row(len(self.rows) + 1, dict(trial.config))
        row = self.rows[trial.trial_id]
        row.config = row.config or dict(trial.config)  # an earlier trial, numbered on resume
        return row

    def _event(self, trial, status: str | None, text: str) -> None:
        row = self._row(trial)
        if status is not None:
            row.status = status
        if self._live is not None:
            self._live.update(self.render())
        else:
            print(f"[{row.number:>3}/{self.trials}] {text}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        knobs = knobs_text(trial.config, self.columns, separator="  ")
        estimate = format_bytes(trial.config.get("estimate_total_bytes", 0))
        self._event(trial, "running", f"start  {knobs}  estimate {estimate} of the "
                                      f"{format_bytes(self.budget_bytes)} budget (with "
                                      "CUDA context and allocator slack)")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._row(trial).result = result
        memory = (f"peak allocated {result['peak_memory_gb']:.2f} GB (estimate "
                  f"{result['estimate_gb']:.2f} GB)" if result['memory_measured'] else
                  f"estimated peak {result['estimate_gb']:.2f} GB (no GPU measured it)")
        self._event(trial, None, (
            f"epoch {result['epoch']}  {self.family.quality_label} "
            f"{result[self.family.quality]:.4f}  {result['epoch_seconds']:.1f} s  {memory}"))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        epoch = self._row(trial).result.get("epoch", 0)
        status = ended_state(self._row(trial).result, self.epochs)
        self._event(trial, status, f"{status} at epoch {epoch} ({self.done} ended)")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        # The trial's folder in RUN_DIR (Ray syncs error.txt there), not the driver's staging.
        where = f"{trial.path}/error.txt" if getattr(trial, "path", None) else ""
        status = error_state(_error_text(trial))
        self._event(trial, status, f"{status.upper()} ({self.done} ended; the run goes on) "
                                   f"{where}")

    def render(self):
        """The table as it stands: a trial a row, the best quality so far in the title."""
        from rich import box
        from rich.table import Table

        label = self.family.quality_label
        scores = [r.result[self.family.quality] for r in self.rows.values() if r.result]
        best = f", best {label} {max(scores):.4f}" if scores else ""
        table = Table(title=f"{self.done}/{self.trials} trials ended{best}; budget "
                            f"{format_bytes(self.budget_bytes)}", box=box.SIMPLE_HEAD,
                      padding=(0, 1))
        for header in ("#", "status", *(h for _, h in self.columns), "ep", label, "s/ep",
                       "GB peak/est."):
            table.add_column(header, justify="left" if header == "status" else "right",
                             no_wrap=True)
        styles = {"running": "yellow", CONVERGED: "green", COMPLETED: "green",
                  STOPPED_EARLY: "blue", FAILED: "red", OUT_OF_MEMORY: "red"}
        for row in self.rows.values():
            result = row.result
            table.add_row(
                str(row.number), f"[{styles[row.status]}]{row.status}",
                *(short(row.config.get(knob)) for knob, _ in self.columns),
                str(result.get("epoch", "")),
                f"{result[self.family.quality]:.4f}" if result else "",
                f"{result['epoch_seconds']:.1f}" if result else "",
                (f"{result['peak_memory_gb']:.2f}" if result else "-")
                + f"/{row.config.get('estimate_bytes', 0) / GB:.2f}")  # both allocated
        return table


def _error_text(trial) -> str:
    """The failed trial's traceback, from the file Ray has just written in the driver's
    staging folder (the copy in RUN_DIR comes later); empty when it cannot be read."""
    try:
        return Path(trial.error_file).read_text() if trial.error_file else ""
    except (OSError, AttributeError):  # the state is then "failed"
        return ""
