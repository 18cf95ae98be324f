"""What a model family plugs into cce-tune, and the knob: one setting's one translation.

A family (SASRec, DLRM, a user's own) says once what differs between models: its knobs, its
quality metric, its command-line arguments, how to open its data, its training config from
arguments and from a trial's params and back to a command line, its memory estimate, its
trainer and what to compile before trials. The search, the live table, the reports and the
CLI ask the family (through `tuner.families.get`) and never branch on a model's name.

Torch-free: a family imports its trainer, data and memory code inside the methods that use
them, so `cce-tune report` and `cce-tune estimate` stay light.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from cce_tune.search_spaces import SearchSpace
    from cce_tune.tuner.memory import MemoryBreakdown, MemoryProfile
    from cce_tune.tuner.run_dir import TuneSettings
    from cce_tune.tuner.trial import TrialSettings

# Columns of a run's trial table that the reports fill themselves: no family metric or
# searchable knob may take one of these names (nor may a metric be "loss", the training loss
# every trial reports).
REPORT_COLUMNS = frozenset({
    "trial", "status", "error", "epoch", "epochs", "best_epoch", "loss_value",
    "epoch_seconds", "peak_memory_gb", "memory_measured", "estimate_gb", "estimate_total_gb",
    "gpu_fraction", "pareto", "started_at", "setup_at", "first_step_at", "ended_at", "tflops",
    "eval_seconds"})


@dataclass(frozen=True)
class Knob:
    """One setting of a training run: `name` in spaces and trial rows, `flag` on the command
    line, `field` a dotted path into the family's training config ('loss.num_negatives').
    `searchable` knobs may appear in a space; the others are fixed for a run but repeated in
    its retrain command. `render` writes the field's value as the flag reads it."""

    name: str
    flag: str
    field: str
    kind: type
    _: KW_ONLY
    searchable: bool = True
    negated: bool = False  # a boolean flag that sets the field to False (--include-seen)
    render: Callable[[Any], str] | None = None
    spelled: Callable[[Any], Any] | None = None  # the field's value as a space writes it

    def get(self, config: Any) -> Any:
        value = config
        for part in self.field.split("."):
            value = getattr(value, part)
        return value

    def param(self, config: Any) -> Any:
        """The knob's value in `config` as a space or trial row spells it."""
        value = self.get(config)
        if self.spelled is not None:
            return self.spelled(value)
        return not value if self.negated else value

    def argv(self, config: Any) -> list[str]:
        """The flag that sets this knob to its value in `config`: a boolean flag or nothing,
        else flag and value (floats by repr, which reads back to the same float)."""
        value = self.get(config)
        if self.kind is bool:
            return [self.flag] if bool(value) != self.negated else []
        if self.render is not None:
            return [self.flag, self.render(value)]
        return [self.flag, repr(float(value)) if self.kind is float else str(value)]


class Target(Protocol):
    """What the search needs of a family for one run: a sampled point's training config,
    its memory estimate, the trial function with its data, and what to prepare first."""

    def config(self, params: dict[str, Any]) -> Any: ...

    def estimate(self, config: Any) -> MemoryBreakdown: ...

    def describe(self) -> str: ...

    def trainable(self, trial_settings: TrialSettings) -> Callable: ...

    def warm(self, space: SearchSpace) -> None: ...


class Family(ABC):
    """A model family. Subclasses set the class attributes and implement the methods; one
    instance is registered in `tuner.families`."""

    name: ClassVar[str]
    help: ClassVar[str]  # one line for `--model`
    quality: ClassVar[str]  # the validation metric maximised (and ranked on by ASHA)
    quality_label: ClassVar[str]
    second: ClassVar[str]  # another validation metric, shown beside it
    second_label: ClassVar[str]
    throughput: ClassVar[str]  # a trial's speed, per second
    columns: ClassVar[tuple[tuple[str, str], ...]]  # (knob, short header) for tables
    grid: ClassVar[tuple[str, str]]  # the two knobs of the report's configuration grid
    knobs: ClassVar[tuple[Knob, ...]]
    default_space: ClassVar[str]  # the preset tuned when a dataset has none of its own
    # The grid `verify-memory --model NAME` measures (`tuner.memory_grid.GRIDS`); None: none.
    memory_grid: ClassVar[str | None] = None

    @property
    def objectives(self) -> dict[str, str]:
        """Optuna's objectives: quality up, epoch time and peak memory down."""
        return {self.quality: "max", "epoch_seconds": "min", "peak_memory_gb": "min"}

    @property
    def space_knobs(self) -> dict[str, type]:
        """The knobs a space may set (which a trial's row keeps), with their types."""
        return {knob.name: knob.kind for knob in self.knobs if knob.searchable}

    @property
    def searchable(self) -> tuple[str, ...]:
        return tuple(self.space_knobs)

    def extra_columns(self, names) -> list[tuple[str, str]]:
        """(knob, header) for the searchable knobs among `names` that `columns` leaves out
        (a space searching sparse_item_grad or negative_mode), headed by their flag."""
        shown = {knob for knob, _ in self.columns}
        return [(knob.name, knob.flag.removeprefix("--")) for knob in self.knobs
                if knob.searchable and knob.name in names and knob.name not in shown]

    def table_columns(self, trials) -> list[tuple[str, str]]:
        """(knob, header) of a run's trial tables (`trials`, a DataFrame): `columns`, then
        every other searchable knob that took more than one value in the run."""
        varied = [name for name in self.searchable
                  if name in trials and trials[name].nunique(dropna=True) > 1]
        return [*self.columns, *self.extra_columns(varied)]

    def params_of(self, config: Any) -> dict[str, Any]:
        """Every knob's value in `config`, by knob name: the inverse of `config_from_params`."""
        return {knob.name: knob.param(config) for knob in self.knobs}

    # The command line.
    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        """This family's arguments for `command` (train, tune or estimate), its data's
        included; for train and tune also `--epochs` (tune's cap). The CLI adds `--model`,
        `--seed` and, for train, `--device` and `--out`."""

    @abstractmethod
    def data_options(self, args: argparse.Namespace) -> Any:
        """The dataset the arguments name, as a dataclass a run directory stores."""

    @abstractmethod
    def train_config(self, args: argparse.Namespace, **run: Any) -> Any:
        """The training config the arguments describe; `run` adds seed, device..."""

    @abstractmethod
    def run_config(self, args: argparse.Namespace) -> Any:
        """The config `cce-tune train` runs: the arguments' training config with the run's
        own (device, seed, evaluation options)."""

    @abstractmethod
    def run_train(self, args: argparse.Namespace) -> None:
        """`cce-tune train --model NAME`: train once and print the results."""

    @abstractmethod
    def run_estimate(self, args: argparse.Namespace) -> None:
        """`cce-tune estimate --model NAME`: the memory breakdown, no GPU."""

    # A run directory.
    @abstractmethod
    def data_name(self, data: Any) -> str:
        """The dataset's name for titles (a preset's name or a file's)."""

    @abstractmethod
    def from_json(self, run: dict) -> tuple[Any, Any]:
        """The data options and base config that a `run.json` holds (its `data` and `base`),
        rebuilt."""

    # The search.
    @abstractmethod
    def target(self, settings: TuneSettings, profile: MemoryProfile | None) -> Target:
        """Loads the run's data (once, in the driver) and answers for the search."""

    @abstractmethod
    def config_from_params(self, params: dict[str, Any], base: Any) -> Any:
        """The training config a sampled point describes; raises ValueError for a point the
        model refuses."""

    @abstractmethod
    def data_argv(self, data: Any) -> list[str]:
        """The arguments that open `data` again."""

    def add_train_arguments(self, parser: argparse.ArgumentParser) -> None:
        """`cce-tune train`'s arguments after `--model`: the family's and the run's."""
        self.add_arguments(parser, "train")
        group = parser.add_argument_group("run")
        group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                           help="where to train (default: auto, a CUDA GPU if there is one)")
        group.add_argument("--seed", type=int, default=0,
                           help="of initialisation, batches and negatives (default: 0)")
        group.add_argument("--out", type=Path, help="write the results as JSON here")

    def train_argv(self, data: Any, config: Any) -> list[str]:
        """`cce-tune train` arguments (after `--model`) that retrain `config` on `data`: the
        recommended command, each knob written by its one translation. A knob's flag is left
        out where the command parses to the same config without it, so the command shows
        what the run chose, not every default (a default may hang on another knob, as the
        negatives' on the loss: the parse decides, not a comparison of values)."""
        from cce_tune.tuner.errors import CceTuneError

        parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
        self.add_train_arguments(parser)

        def argv(knobs: list[Knob]) -> list[str]:
            return [*self.data_argv(data), *(arg for knob in knobs for arg in knob.argv(config))]

        def retrains(knobs: list[Knob]) -> bool:
            try:
                return self.run_config(parser.parse_args(argv(knobs))) == config
            except (CceTuneError, argparse.ArgumentError):  # a flag another one needs
                return False

        kept = list(self.knobs)
        for knob in self.knobs:
            fewer = [k for k in kept if k is not knob]
            if retrains(fewer):
                kept = fewer
        return argv(kept)
