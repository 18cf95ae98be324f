"""How a trial is named wherever Ray shows it: `trial_<id> B=256 N=128 L=30 ...`.

Ray Tune names a trial `<function>_<id>` and runs it in an actor of class `ImplicitFunc`
whose repr is the function's name, so the Ray dashboard shows every trial alike. The name
here (Ray Tune's `trial_name_creator`) carries the trial's id and knobs; MLflow's runs take
it. With `--actor-per-trial` the trial's actor also returns it as its `__repr__`, which Ray
records once, when the actor is created, as the actor's repr and the prefix of its tasks'
names (`<repr>.train`) in the dashboard and `ray.util.state`. Ray offers no way to change
it later (no `name=` option on Ray Tune's actors or tasks, no setter for the repr), so a
reused actor would keep its first trial's name: named actors are not reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


def knobs_text(config: dict[str, Any], columns: tuple[tuple[str, str], ...],
               separator: str = " ") -> str:
    """`B=256 N=128 ...`: the knobs of `columns` (knob, short header) that `config` holds."""
    return separator.join(f"{header}={short(config[knob])}" for knob, header in columns
                          if knob in config)


def short(value: Any) -> str:
    """A knob's value in a name: floats to two significant digits, None as nothing."""
    if isinstance(value, float):
        return f"{value:.2g}"
    return "" if value is None else str(value)


class TrialNamer:
    """Ray Tune's `trial_name_creator` (a class, not a closure: Ray pickles it with the
    run's state for `--resume`)."""

    def __init__(self, columns: tuple[tuple[str, str], ...]) -> None:
        self.columns = columns

    def __call__(self, trial: Trial) -> str:
        return f"trial_{trial.trial_id} {knobs_text(trial.config, self.columns)}".rstrip()


def named_actor_class(function: Callable) -> type:
    """Ray Tune's actor class for the trial function `function`, its repr its trial's name.
    Ray Tune knows it by the function's name still, so a run resumes with or without it."""
    from ray.tune.trainable import wrap_function

    class TrialActor(wrap_function(function)):
        def __repr__(self) -> str:
            return self.trial_name

    TrialActor.__qualname__ = TrialActor.__name__  # the dashboard's class name
    return TrialActor
