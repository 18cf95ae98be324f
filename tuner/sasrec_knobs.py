"""SASRec's knobs, each defined once: its search-space name, its `cce-tune train` flag and the
`TrainConfig` field it sets. Trial configs, trial rows and the recommended command are all
generated from this table, so a searched value cannot be lost on the way (issue 13: the
summary's command dropped `negative_mode`, `tile_size`, `temperature` and in-kernel ids).

Torch-free, like the reports that read it.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from kernels.config import SINGLE_NEGATIVE, LossConfig
from models.sasrec_config import SASRecConfig
from tuner.data import DataOptions
from tuner.data.prepare import PrepareOptions
from tuner.data.tabular import ColumnNames
from tuner.train_config import TrainConfig


@dataclass(frozen=True)
class Knob:
    """One setting of a training run: `name` in spaces and trial rows, `flag` on the command
    line, `field` a path into `TrainConfig` ('loss.num_negatives'). `searchable` knobs may
    appear in a space; the others are fixed for a run but repeated in its retrain command."""

    name: str
    flag: str
    field: str
    kind: type
    searchable: bool = True
    negated: bool = False  # a boolean flag that sets the field to False (--include-seen)

    def get(self, config: TrainConfig) -> Any:
        value = config
        for part in self.field.split("."):
            value = getattr(value, part)
        return value

    def argv(self, value: Any) -> list[str]:
        """The flag that sets `value`: a boolean flag or nothing, else flag and value (floats
        by repr, which reads back to the same float)."""
        if self.kind is bool:
            return [self.flag] if bool(value) != self.negated else []
        return [self.flag, repr(float(value)) if self.kind is float else str(value)]


KNOBS = (
    Knob("loss", "--loss", "loss.name", str),
    Knob("negatives", "--negatives", "loss.num_negatives", int),
    Knob("negative_mode", "--negative-mode", "loss.negative_mode", str),
    Knob("tile_size", "--tile-size", "loss.tile_size", int),
    Knob("temperature", "--temperature", "loss.temperature", float),
    Knob("in_kernel_negatives", "--in-kernel-negatives", "loss.in_kernel_negatives", bool),
    Knob("sampled_softmax", "--sampled-softmax", "loss.sampled_softmax", bool, False),
    Knob("gbce_t", "--gbce-t", "loss.gbce_t", float, False),
    Knob("batch_size", "--batch-size", "batch_size", int),
    Knob("max_len", "--max-len", "max_len", int),
    Knob("hidden", "--hidden", "hidden", int),
    Knob("blocks", "--blocks", "num_blocks", int),
    Knob("heads", "--heads", "num_heads", int),
    Knob("dropout", "--dropout", "dropout", float),
    Knob("lr", "--lr", "lr", float),
    Knob("bf16", "--bf16", "bf16", bool),
    Knob("epochs", "--epochs", "epochs", int, False),
    Knob("eval_batch_size", "--eval-batch-size", "eval_batch_size", int, False),
    Knob("seed", "--seed", "seed", int, False),
    Knob("include_seen", "--include-seen", "exclude_seen", bool, False, negated=True),
)
SEARCHABLE = tuple(knob.name for knob in KNOBS if knob.searchable)


def config_from_params(params: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """The training config a sampled point describes, `base` for what it leaves out; keys
    that name no knob are not the config's (the space loader has validated the names).

    Raises ValueError for a combination the model or loss refuses (heads not dividing the
    hidden size, in-kernel ids with a PyTorch loss).
    """
    loss_fields = asdict(base.loss)
    top = {}
    for knob in KNOBS:  # a trial's params also carry its estimate and GPU share: skipped
        if knob.name not in params:
            continue
        value = params[knob.name]
        value = not value if knob.negated else value
        if knob.field.startswith("loss."):
            loss_fields[knob.field.removeprefix("loss.")] = value
        else:
            top[knob.field] = value
    if loss_fields["name"] in SINGLE_NEGATIVE:
        loss_fields["num_negatives"] = 1
    config = replace(base, loss=LossConfig(**loss_fields), **top)
    SASRecConfig(num_items=1, hidden=config.hidden, num_heads=config.num_heads)
    return config


def params_of(config: TrainConfig) -> dict[str, Any]:
    """Every knob's value in `config`, by knob name: the inverse of `config_from_params`."""
    return {knob.name: (not knob.get(config)) if knob.negated else knob.get(config)
            for knob in KNOBS}


def data_argv(options: DataOptions) -> list[str]:
    """The data flags that prepare `options` again (only those that differ from the
    defaults, so a preset's command stays short)."""
    argv = ["--dataset", options.dataset]
    if options.data_dir is not None:
        argv += ["--data-dir", str(options.data_dir)]
    prepare, columns = options.prepare, options.columns
    if prepare.min_rating is not None:
        argv += ["--min-rating", repr(float(prepare.min_rating))]
    if prepare.min_user_interactions != PrepareOptions().min_user_interactions:
        argv += ["--min-user-interactions", str(prepare.min_user_interactions)]
    flags = {"user": "--user-col", "item": "--item-col", "time": "--time-col",
             "rating": "--rating-col"}
    defaults = ColumnNames()
    for column in fields(ColumnNames):
        value = getattr(columns, column.name)
        if value != getattr(defaults, column.name):
            argv += [flags[column.name], str(value)]
    return argv


def train_argv(options: DataOptions, config: TrainConfig) -> list[str]:
    """`cce-tune train` arguments that retrain `config` on the data of `options`."""
    return ["train", *data_argv(options),
            *(arg for knob in KNOBS for arg in knob.argv(knob.get(config)))]


def train_command(options: DataOptions, config: TrainConfig) -> str:
    return shlex.join(["cce-tune", *train_argv(options, config)])
