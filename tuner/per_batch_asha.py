"""ASHA with one ladder of rungs per batch size: why, in `tuner.early_stopping`."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from cce_tune.tuner.early_stopping import COST, NO_HORIZON, REDUCTION_FACTOR, STRATUM


class PerBatchSizeASHA(FIFOScheduler):
    """Ray Tune's ASHA on training seconds, one instance per batch size: a trial is first
    compared with the others of its batch size once it has trained `grace_seconds`, then at
    3x, 9x, ... that. Trials are told apart by `trial.config[STRATUM]`."""

    def __init__(self, quality: str, grace_seconds: float) -> None:
        super().__init__()
        self._metric = quality  # what Ray reads of a scheduler's metric, as of ASHA's
        self.quality, self.grace_seconds = quality, grace_seconds
        self._ladders: dict[Any, ASHAScheduler] = {}
        self._ladder_of: dict[str, ASHAScheduler] = {}

    def _ladder(self, trial) -> ASHAScheduler:
        return self._ladder_of[trial.trial_id]

    def on_trial_add(self, tune_controller, trial) -> None:
        stratum = (getattr(trial, "config", None) or {}).get(STRATUM)
        if stratum not in self._ladders:
            self._ladders[stratum] = ASHAScheduler(
                time_attr=COST, metric=self.quality, mode="max", max_t=NO_HORIZON,
                grace_period=self.grace_seconds, reduction_factor=REDUCTION_FACTOR)
        self._ladder_of[trial.trial_id] = ladder = self._ladders[stratum]
        ladder.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._ladder(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._ladder_of.pop(trial.trial_id).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if trial.trial_id in self._ladder_of:  # a trial that ended is no longer held
            self._ladder_of.pop(trial.trial_id).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "ASHA per batch size: " + "; ".join(
            f"{stratum}: {ladder.debug_string()}" for stratum, ladder in self._ladders.items())


def make_scheduler(quality: str, grace_seconds: float) -> PerBatchSizeASHA:
    """The tuner's early stopping (and `cce-tune replay`'s): ASHA on training seconds, per
    batch size."""
    return PerBatchSizeASHA(quality, grace_seconds)
