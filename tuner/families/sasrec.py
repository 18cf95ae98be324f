"""SASRec on sequence data (next-item prediction ranked over the full catalog), as a family.

Its knob table is the one place where a setting's space name, `cce-tune train` flag and
`TrainConfig` field meet: trial configs, trial rows and the recommended command are all
generated from it, so a searched value cannot be lost on the way.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cce_tune.kernels.config import SINGLE_NEGATIVE, LossConfig
from cce_tune.models.sasrec_config import SASRecConfig
from cce_tune.tuner.arguments import (
    add_data_arguments,
    add_loss_arguments,
    add_model_arguments,
    data_options,
    positive_int,
    train_config,
)
from cce_tune.tuner.data import DataOptions
from cce_tune.tuner.data.prepare import PrepareOptions
from cce_tune.tuner.data.tabular import ColumnNames
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families.base import Family, Knob
from cce_tune.tuner.memory import (
    SOLVABLE,
    DatasetShape,
    MemoryBreakdown,
    MemoryProfile,
    check_described,
    estimate,
    packs,
)
from cce_tune.tuner.sequences import trial
from cce_tune.tuner.sequences.config import TrainConfig, data_parallel_refusal, resolve_auto
from cce_tune.tuner.trial import data_parallel_workers

if TYPE_CHECKING:
    from cce_tune.search_spaces import SearchSpace
    from cce_tune.tuner.run_dir import TuneSettings
    from cce_tune.tuner.trial import TrialSettings

KNOBS = (
    Knob("loss", "--loss", "loss.name", str),
    Knob("negatives", "--negatives", "loss.num_negatives", int),
    Knob("negative_mode", "--negative-mode", "loss.negative_mode", str),
    Knob("tile_size", "--tile-size", "loss.tile_size", int),
    Knob("temperature", "--temperature", "loss.temperature", float),
    Knob("in_kernel_negatives", "--in-kernel-negatives", "loss.in_kernel_negatives", bool),
    Knob("sparse_item_grad", "--sparse-item-grad", "loss.sparse_item_grad", bool),
    Knob("sampled_softmax", "--sampled-softmax", "loss.sampled_softmax", bool, searchable=False),
    Knob("gbce_t", "--gbce-t", "loss.gbce_t", float, searchable=False),
    Knob("batch_size", "--batch-size", "batch_size", int),
    Knob("max_len", "--max-len", "max_len", int),
    Knob("hidden", "--hidden", "hidden", int),
    Knob("blocks", "--blocks", "num_blocks", int),
    Knob("heads", "--heads", "num_heads", int),
    Knob("dropout", "--dropout", "dropout", float),
    Knob("lr", "--lr", "lr", float),
    Knob("bf16", "--bf16", "bf16", bool),
    Knob("compile", "--compile", "compile", bool, searchable=False),
    Knob("cuda_graphs", "--cuda-graphs", "cuda_graphs", bool, searchable=False),
    Knob("batches", "--batches", "batches", str, searchable=False),
    Knob("epochs", "--epochs", "epochs", int, searchable=False),
    Knob("patience", "--patience", "patience", int, searchable=False),
    Knob("eval_batch_size", "--eval-batch-size", "eval_batch_size", int, searchable=False),
    Knob("seed", "--seed", "seed", int, searchable=False),
    Knob("include_seen", "--include-seen", "exclude_seen", bool, searchable=False, negated=True),
)


def config_from_params(params: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """The training config a sampled point describes, `base` for what it leaves out; keys
    that name no knob are not the config's (a trial's params also carry its estimate and
    GPU share).

    Raises ValueError for a combination the model or loss refuses (heads not dividing the
    hidden size, in-kernel ids with a PyTorch loss).
    """
    loss_fields = asdict(base.loss)
    top = {}
    for knob in KNOBS:
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


def data_from_json(raw: dict) -> DataOptions:
    return DataOptions(
        dataset=raw["dataset"], data_dir=Path(raw["data_dir"]) if raw["data_dir"] else None,
        prepare=PrepareOptions(**raw["prepare"]), columns=ColumnNames(**raw["columns"]),
        seed=raw["seed"])


class SASRecTarget:
    """SASRec on one sequence dataset: what the search asks of the family during a run.
    A sequence model beside SASRec sets its training config's class and its translation of
    a sampled point here (BERT4Rec's target does)."""

    config_class = TrainConfig
    configure = staticmethod(config_from_params)

    def __init__(self, base: TrainConfig, shape: DatasetShape, profile: MemoryProfile | None,
                 data=None, gpus: int = 1) -> None:
        self.base, self.shape, self.profile, self.data = base, shape, profile, data
        self.gpus = gpus  # a data-parallel trial's: the estimate is one GPU's of them

    def __getstate__(self) -> dict:
        # Ray pickles the searcher (and this with it) into RUN_DIR for --resume, which needs
        # the dataset's shape only: without this, two copies of the dataset (78 MB for
        # synthetic-ml-20m) were written there.
        return {**self.__dict__, "data": None}

    def config(self, params: dict[str, Any]) -> TrainConfig:
        """A sampled point's training config, as its trial trains it (--batches auto made
        concrete). A step the memory model does not describe is refused (ValueError), never
        launched: packed batches off the variable-length kernel (float32, or an older
        torch), steps replayed from CUDA graphs but packed ones (the only graphed steps
        measured), what data-parallel trials cannot train (`data_parallel_refusal`) and what
        `tuner.memory.check_described` refuses."""
        config = resolve_auto(self.configure(params, self.base), data_parallel=self.gpus > 1)
        refusal = (data_parallel_refusal(config, "--gpus-per-trial > 1") if self.gpus > 1
                   else None)
        if refusal:
            raise ValueError(refusal)
        if config.batches == "packed" and not packs(config):
            raise ValueError("--batches packed needs bf16 and torch >= 2.10 in a tuning run "
                             "(elsewhere attention runs on a padded layout, which the memory "
                             "model does not describe): add --bf16, or leave --batches to auto")
        check_described(config)
        if config.cuda_graphs and not packs(config):
            raise ValueError("--cuda-graphs in a tuning run replays packed bf16 steps only (no "
                             "other graphed step was measured against the memory model): "
                             "leave it to --batches auto")
        return config

    def estimate(self, config: TrainConfig) -> MemoryBreakdown:
        return estimate(config, self.shape, self.profile, gpus=self.gpus)

    def describe(self) -> str:
        return self.data.summary()

    def trainable(self, trial_settings: TrialSettings) -> Callable:
        from ray import tune as ray_tune

        # The dataset goes to Ray's object store once; trials map it from there.
        return ray_tune.with_parameters(trial.run_trial, data=self.data, settings=trial_settings,
                                        configure=self.configure)

    def warm(self, space: SearchSpace) -> None:
        from cce_tune.tuner.sequences.warmup import warm_and_say

        warm_and_say(space, self.config, self.data.num_items)


class SASRecFamily(Family):
    name = "sasrec"
    help = "SASRec on user sequences, next-item prediction (default)"
    quality, quality_label = trial.QUALITY, "NDCG@10"
    second, second_label = trial.SECOND, "HR@10"
    throughput = trial.THROUGHPUT
    columns = (("loss", "loss"), ("batch_size", "B"), ("negatives", "N"), ("max_len", "L"),
               ("hidden", "d"), ("lr", "lr"))
    grid = ("batch_size", "negatives")
    knobs = KNOBS
    default_space = "default"
    memory_grid = "default"
    target_class = SASRecTarget

    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        add_data_arguments(parser)
        add_loss_arguments(parser)
        add_model_arguments(parser, command)
        if command == "train":
            parser.add_argument_group("evaluation").add_argument(
                "--include-seen", action="store_true",
                help="rank items the user already saw too (default: exclude them)")
        if command == "estimate":
            group = parser.add_argument_group("dataset size (default: from the dataset)")
            group.add_argument("--num-users", type=positive_int, help="users of the dataset")
            group.add_argument("--num-items", type=positive_int, help="items of the catalog")
            group.add_argument("--solve", choices=tuple(SOLVABLE),
                               help="with --gpu-mem: the largest value of this knob that fits")
            group.add_argument("--gpus", type=positive_int, default=1,
                               help="GPUs training one model data parallel (torchrun): the "
                                    "estimate is one GPU's (default: 1)")

    def data_options(self, args: argparse.Namespace) -> DataOptions:
        return data_options(args)

    def train_config(self, args: argparse.Namespace, **run: Any) -> TrainConfig:
        return train_config(args, **run)

    def run_config(self, args: argparse.Namespace) -> TrainConfig:
        return self.train_config(args, seed=args.seed, device=args.device,
                                 exclude_seen=not args.include_seen)

    def run_train(self, args: argparse.Namespace) -> None:
        from cce_tune.models.packing import varlen_attn
        from cce_tune.tuner.data import load
        from cce_tune.tuner.sequences.data_parallel import process_group_from_env
        from cce_tune.tuner.sequences.graphed_steps import check_graphable
        from cce_tune.tuner.sequences.report import print_epoch, print_header, print_summary
        from cce_tune.tuner.sequences.train import resolve_device, train

        # Under torchrun every rank trains data parallel, which neither packs nor graphs.
        config = resolve_auto(self.run_config(args),
                              data_parallel=int(os.environ.get("WORLD_SIZE", "1")) > 1)
        device = resolve_device(config.device)
        if config.bf16 and device.type != "cuda":  # before auto's graphs are blamed for it
            raise CceTuneError("--bf16 needs a CUDA GPU with bfloat16 support; leave it out on "
                               "the CPU")
        if config.cuda_graphs:  # before any data is read
            check_graphable(device)
        if config.batches == "packed" and device.type == "cuda" and not (
                config.bf16 and varlen_attn is not None):
            print("--batches packed: attention runs on a padded layout, no faster than random "
                  "batches (the variable-length kernel needs --bf16 and a torch with "
                  "torch.nn.attention.varlen)", flush=True)
        # Under torchrun, every rank trains its share and rank 0 speaks for all.
        with process_group_from_env(device) as rank:
            data = load(data_options(args))
            if rank == 0:
                print(data.summary())
                if config.compile:
                    print("--compile: the first epoch waits for torch.compile (tens of seconds "
                          "on a GPU, minutes on a CPU) and its times include it", flush=True)
                print_header()
            result = train(config, data, on_epoch=print_epoch if rank == 0 else None)
        if rank == 0:
            print_summary(result)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result.to_dict(), indent=2, default=str))
                print(f"results written to {args.out}")

    def run_estimate(self, args: argparse.Namespace) -> None:
        from cce_tune.tuner.cli_memory import run_sequence_estimate

        run_sequence_estimate(args, self.train_config(args))

    def data_name(self, data: DataOptions) -> str:
        return data.dataset

    def from_json(self, run: dict) -> tuple[DataOptions, TrainConfig]:
        base = run["base"]
        # Runs written before families were plug-ins kept the data under `dataset`.
        data = data_from_json(run.get("data") or run["dataset"])
        config_class = self.target_class.config_class
        if "batch_by_length" in base:  # runs written before --batches
            base = dict(base)
            base["batches"] = "length" if base.pop("batch_by_length") else "random"
        return data, config_class(**{**base, "loss": LossConfig(**base["loss"])})

    def target(self, settings: TuneSettings, profile: MemoryProfile | None) -> SASRecTarget:
        from cce_tune.tuner.data import load

        data = load(settings.data)
        return self.target_class(settings.base, DatasetShape.of(data),
                                 profile, data, data_parallel_workers(settings.gpus_per_trial))

    def config_from_params(self, params: dict[str, Any], base: TrainConfig) -> TrainConfig:
        return self.target_class.configure(params, base)

    def data_argv(self, data: DataOptions) -> list[str]:
        return data_argv(data)


FAMILY = SASRecFamily()
