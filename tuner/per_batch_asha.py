"""ASHA with one ladder of rungs per batch size: why, in `tuner.early_stopping`. The tuner and
`cce-tune replay` both stop trials with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from cce_tune.tuner.early_stopping import COST, NO_HORIZON, REDUCTION_FACTOR, STRATUM

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class PerBatchSizeASHA(FIFOScheduler):
    """Ray Tune's ASHA on training seconds, one instance per batch size: a trial is first
    compared with the others of its batch size once it has trained `grace_seconds`, then at
    3x, 9x, ... that. Trials are told apart by `trial.config[STRATUM]`."""

    def __init__(self, quality: str, grace_seconds: float) -> None:
        super().__init__()
        self._metric = quality  # ASHA's: what Ray reads of a scheduler's metric
        self.grace_seconds = grace_seconds
        self._ladders: dict[Any, ASHAScheduler] = {}  # by the trials' STRATUM value
        self._ladder_of: dict[str, ASHAScheduler] = {}  # by trial id, while it runs

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        stratum = (getattr(trial, "config", None) or {}).get(STRATUM)
        if stratum not in self._ladders:
            self._ladders[stratum] = ASHAScheduler(
                time_attr=COST, metric=self._metric, mode="max", max_t=NO_HORIZON,
                grace_period=self.grace_seconds, reduction_factor=REDUCTION_FACTOR)
        self._ladder_of[trial.trial_id] = ladder = self._ladders[stratum]
        ladder.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        return self._ladder_of[trial.trial_id].on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._ladder_of.pop(trial.trial_id).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        if trial.trial_id in self._ladder_of:  # a trial that ended is no longer held
            self._ladder_of.pop(trial.trial_id).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "ASHA per batch size: " + "; ".join(
            f"{stratum}: {ladder.debug_string()}" for stratum, ladder in self._ladders.items())
