"""Search spaces as data: one YAML file per preset, and the loader that validates them.

    >>> from cce_tune.search_spaces import load_space
    >>> from cce_tune.tuner.families import get
    >>> space = load_space("ml-20m", lambda model: get(model).space_knobs)  # or a YAML path
    >>> params = space.suggest(optuna_trial)      # {'batch_size': 512, 'negatives': 4096, ...}

A file has `params`, each one distribution, and optionally `fixed` values, `scale` rules, a
`description` and the `model` it tunes (`sasrec`, the default, `dlrm`, or any registered
family), whose knobs are the ones allowed:

    params:
      batch_size: {powers_of_two: [64, 1024]}   # 64, 128, ..., 1024 (ordered for the sampler)
      lr: {log_uniform: [3.0e-4, 3.0e-3]}
      dropout: {uniform: [0.1, 0.4]}
      max_len: {choices: [50, 100, 200]}
      blocks: {int: [1, 3]}
    fixed:
      loss: cce_minus
    scale:
      lr: {by: batch_size, reference: 128, power: 0.5}

A `scale` rule makes a searched real knob relative to another: the value drawn is the one at
`by` = `reference`, and a trial trains with value x (by / reference) ** power. With the
square-root rule for Adam's learning rate (Malladi et al., NeurIPS 2022; our replay tables
were measured with it), a batch of 2,048 is not paired with the learning rate of a batch of
128, which left large batches on a plateau when the two were drawn apart.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).parent
PRESETS = tuple(sorted(path.stem for path in PRESET_DIR.glob("*.yaml")))

# The knobs a model's space may set and each one's type; the application knows them (its
# model families), so the loader is given them rather than importing it.
KnobsOf = Callable[[str], Mapping[str, type]]
KINDS = ("choices", "powers_of_two", "int", "uniform", "log_uniform")
SCALE_KEYS = ("by", "reference", "power")


class SpaceError(ValueError):
    """A malformed space file: the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    values: tuple  # the choices, or the (low, high) bounds

    def suggest(self, trial) -> Any:
        """Draw this parameter from an Optuna trial (define-by-run)."""
        if self.kind == "choices":
            return trial.suggest_categorical(self.name, list(self.values))
        low, high = self.values
        if self.kind == "powers_of_two":  # the exponent, so the sampler sees an order
            return 2 ** trial.suggest_int(self.optuna_name(), int(math.log2(low)),
                                          int(math.log2(high)))
        if self.kind == "int":
            return trial.suggest_int(self.name, low, high)
        return self._readable(trial.suggest_float(self.name, low, high,
                                                  log=self.kind == "log_uniform"))

    def _readable(self, value: float) -> float:
        """A continuous value to 4 significant digits, within the bounds: what a trial trains
        with and its command shows (`--lr 0.0009487`, not `--lr 0.0009486832980505138`)."""
        low, high = self.values
        return min(max(float(f"{value:.4g}"), low), high)

    @property
    def ordered(self) -> bool:
        """Discrete and numeric: its values have an order (memory may grow along it)."""
        return self.kind in ("powers_of_two", "int") or (
            self.kind == "choices" and len(self.values) > 1 and _numbers(self.values))

    def optuna_name(self) -> str:
        """The name Optuna knows this parameter by (a power of two's exponent has its own)."""
        return f"{self.name}_log2" if self.kind == "powers_of_two" else self.name

    def optuna_value(self, value: Any) -> Any:
        """`value` as Optuna stores it, to enqueue a chosen point."""
        return int(math.log2(value)) if self.kind == "powers_of_two" else value

    def grid(self) -> list:
        """The values a grid over the space takes: every one of a discrete parameter, the
        middle of a continuous one (which memory does not depend on)."""
        if self.kind == "choices":
            return list(self.values)
        low, high = self.values
        if self.kind == "powers_of_two":
            return [2**e for e in range(int(math.log2(low)), int(math.log2(high)) + 1)]
        if self.kind == "int":
            return list(range(low, high + 1))
        return [self._readable(math.sqrt(low * high) if self.kind == "log_uniform"
                               else (low + high) / 2)]

    def smallest(self) -> list:
        """The values the smallest configurations take: the low end of a number, every
        value of a category (a loss, a mode), whose memory has no order."""
        if self.kind != "choices":
            return [self.values[0]]
        return [min(self.values)] if _numbers(self.values) else list(self.values)


@dataclass(frozen=True)
class Scale:
    """A searched real knob relative to another one: value x (by / reference) ** power."""

    knob: str
    by: str
    reference: float
    power: float

    def factor(self, config: dict[str, Any]) -> float:
        return (config[self.by] / self.reference) ** self.power


@dataclass(frozen=True)
class SearchSpace:
    name: str
    params: tuple[Param, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    model: str = "sasrec"
    scales: tuple[Scale, ...] = ()

    def suggest(self, trial) -> dict[str, Any]:
        """A configuration drawn from an Optuna trial, scaled knobs at their trained value."""
        return self._scaled({**self.fixed, **{p.name: p.suggest(trial) for p in self.params}})

    def grid(self) -> list[dict[str, Any]]:
        """Every configuration of the discrete parameters, continuous ones at their middle
        (a scaled one at its middle times its rule, as a trial trains it)."""
        names = [p.name for p in self.params]
        return [self._scaled({**self.fixed, **dict(zip(names, values, strict=True))})
                for values in itertools.product(*(p.grid() for p in self.params))]

    def _scaled(self, config: dict[str, Any]) -> dict[str, Any]:
        """`config` with each scaled knob at its trained value, to 4 significant digits."""
        for scale in self.scales:
            config[scale.knob] = float(f"{config[scale.knob] * scale.factor(config):.4g}")
        return config

    def optuna_params(self, config: dict[str, Any]) -> dict[str, Any]:
        """A configuration as Optuna's parameters, for `enqueue_trial`: a scaled knob's
        drawn value (its trained one over the scale's factor), kept within its bounds."""
        drawn = dict(config)
        for scale in self.scales:
            low, high = next(p for p in self.params if p.name == scale.knob).values
            drawn[scale.knob] = min(max(config[scale.knob] / scale.factor(config), low), high)
        return {p.optuna_name(): p.optuna_value(drawn[p.name]) for p in self.params}

    def smallest_corners(self) -> list[dict[str, Any]]:
        """Configurations with every number at its low end: if none fits a budget, nothing
        in the space does (memory grows with each number)."""
        names = [p.name for p in self.params]
        return [{**self.fixed, **dict(zip(names, values, strict=True))}
                for values in itertools.product(*(p.smallest() for p in self.params))]


def preset_model(name: str) -> str:
    """The model a preset tunes (its `model:`, sasrec when it names none)."""
    spec = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text()) or {}
    return str(spec.get("model", "sasrec"))


def load_space(name_or_path: str | Path, knobs_of: KnobsOf) -> SearchSpace:
    """A preset by name (see `PRESETS`) or a YAML file by path, validated against the knobs
    that `knobs_of(model)` allows (it raises ValueError for a model it does not know)."""
    path = Path(name_or_path)
    if str(name_or_path) in PRESETS:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    elif not path.is_file():
        raise SpaceError(f"--space {name_or_path}: neither a preset ({', '.join(PRESETS)}) "
                         "nor a file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpaceError(f"{path}: not valid YAML ({error})") from None
    return parse_space(spec, path.stem, str(path), knobs_of)


def parse_space(spec: Any, name: str, where: str, knobs_of: KnobsOf) -> SearchSpace:
    if not isinstance(spec, dict):
        raise SpaceError(f"{where}: expected a mapping with `params` (and optionally `fixed`, "
                         "`description`, `model`)")
    unknown = set(spec) - {"params", "fixed", "scale", "description", "model"}
    if unknown:
        raise SpaceError(f"{where}: unknown top-level key {sorted(unknown)[0]!r}; allowed: "
                         "params, fixed, scale, description, model")
    model = spec.get("model", "sasrec")
    try:
        knobs = knobs_of(str(model))
    except ValueError as error:
        raise SpaceError(f"{where}: {error}") from None
    params_spec = spec.get("params") or {}
    fixed_spec = spec.get("fixed") or {}
    for section, value in (("params", params_spec), ("fixed", fixed_spec)):
        if not isinstance(value, dict):
            raise SpaceError(f"{where}: `{section}` must be a mapping of knob names")
    params = tuple(_param(name_, value, where, knobs) for name_, value in params_spec.items())
    fixed = {key: _value(key, value, where, f"fixed.{key}", knobs)
             for key, value in fixed_spec.items()}
    both = set(fixed) & {p.name for p in params}
    if both:
        raise SpaceError(f"{where}: {sorted(both)[0]!r} is both searched and fixed")
    scale_spec = spec.get("scale") or {}
    if not isinstance(scale_spec, dict):
        raise SpaceError(f"{where}: `scale` must be a mapping of knob names")
    scales = tuple(_scale(key, value, where, params, fixed, set(scale_spec))
                   for key, value in scale_spec.items())
    return SearchSpace(name, params, fixed, str(spec.get("description", "")), model, scales)


def _scale(key: str, spec: Any, where: str, params: tuple[Param, ...],
           fixed: dict[str, Any], scaled: set[str]) -> Scale:
    path = f"scale.{key}"
    searched = {p.name: p for p in params}
    if key not in searched or searched[key].kind not in ("uniform", "log_uniform"):
        raise SpaceError(f"{where}: {path}: only a searched real knob (uniform or "
                         f"log_uniform in params) can be scaled, not {key!r}")
    if not isinstance(spec, dict) or set(spec) != set(SCALE_KEYS):
        unknown = sorted(set(spec) - set(SCALE_KEYS)) if isinstance(spec, dict) else []
        raise SpaceError(f"{where}: {path}: "
                         + (f"unknown key {unknown[0]!r}; " if unknown else "")
                         + f"give {', '.join(SCALE_KEYS)}, e.g. "
                         "{by: batch_size, reference: 128, power: 0.5}")
    by = spec["by"]
    if by in scaled and by != key:
        raise SpaceError(f"{where}: {path}.by: {by!r} is scaled itself; scale by a knob "
                         "that is not")
    if by in searched:
        numeric = searched[by].kind != "choices" or _numbers(searched[by].values)
    else:
        numeric = by in fixed and _numbers([fixed[by]])
    if by == key or not numeric:
        raise SpaceError(f"{where}: {path}.by: {by!r} is not another numeric knob of the "
                         "space")
    reference, power = spec["reference"], spec["power"]
    if not _numbers([reference]) or reference <= 0:
        raise SpaceError(f"{where}: {path}.reference: {reference!r} is not a positive number")
    if not _numbers([power]):
        raise SpaceError(f"{where}: {path}.power: {power!r} is not a number (0.5: square root)")
    values = list(searched[by].values) if by in searched else [fixed[by]]
    if min(values) <= 0:
        raise SpaceError(f"{where}: {path}.by: {by} takes {min(values)}; scaling needs it "
                         "positive")
    return Scale(key, by, float(reference), float(power))


def _knob(key: str, where: str, path: str, knobs: Mapping[str, type]) -> type:
    if key not in knobs:
        raise SpaceError(f"{where}: {path}: unknown knob {key!r}; allowed: {', '.join(knobs)}")
    return knobs[key]


def _value(key: str, value: Any, where: str, path: str, knobs: Mapping[str, type]) -> Any:
    kind = _knob(key, where, path, knobs)
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an MLP of one hidden layer, `mlp_top: {choices: [256]}`
    if kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpaceError(f"{where}: {path}: {value!r} is not {kind.__name__}")
    return value


def _param(key: str, spec: Any, where: str, knobs: Mapping[str, type]) -> Param:
    path = f"params.{key}"
    knob = _knob(key, where, path, knobs)
    if not isinstance(spec, dict) or len(spec) != 1:
        raise SpaceError(f"{where}: {path}: give exactly one of {', '.join(KINDS)}, "
                         "e.g. {choices: [64, 128]}")
    kind, values = next(iter(spec.items()))
    if kind not in KINDS:
        raise SpaceError(f"{where}: {path}: unknown distribution {kind!r}; allowed: "
                         f"{', '.join(KINDS)}")
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{where}: {path}.{kind}: expected a list")
    values = [_value(key, v, where, f"{path}.{kind}", knobs) for v in values]
    if kind == "choices":
        return Param(key, kind, tuple(values))
    if len(values) != 2 or not values[0] <= values[1]:
        raise SpaceError(f"{where}: {path}.{kind}: expected [low, high] with low <= high, "
                         f"got {values}")
    if kind in ("powers_of_two", "int") and knob is not int:
        raise SpaceError(f"{where}: {path}: {kind} needs a whole-number knob, not {key}")
    if kind in ("uniform", "log_uniform") and knob is not float:
        raise SpaceError(f"{where}: {path}: {kind} needs a real-valued knob, not {key}; "
                         "use choices, int or powers_of_two")
    if kind == "powers_of_two" and any(v < 1 or v & (v - 1) for v in values):
        raise SpaceError(f"{where}: {path}.powers_of_two: bounds must be powers of two, "
                         f"got {values}")
    if kind == "log_uniform" and values[0] <= 0:
        raise SpaceError(f"{where}: {path}.log_uniform: bounds must be positive, got {values}")
    return Param(key, kind, tuple(values))


def _numbers(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
