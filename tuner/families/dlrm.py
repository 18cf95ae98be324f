"""DLRM on click data (a generated preset or a Criteo file), as a family: the knobs the DLRM
reference code spells as `--arch-*` flags, AUC as quality."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.models.dlrm_memory import DENSE_OPTIMIZERS, SPARSE_OPTIMIZERS
from cce_tune.tuner.arguments import positive_float, positive_int
from cce_tune.tuner.clicks import trial
from cce_tune.tuner.clicks.config import ClickDataset, CriteoOptions, DLRMTrainConfig
from cce_tune.tuner.families.base import Family, Knob

if TYPE_CHECKING:
    from cce_tune.search_spaces import SearchSpace
    from cce_tune.tuner.memory import MemoryBreakdown, MemoryProfile
    from cce_tune.tuner.run_dir import TuneSettings
    from cce_tune.tuner.trial import TrialSettings


def _arch(widths: tuple[int, ...]) -> str:
    return "-".join(map(str, widths))


KNOBS = (
    Knob("batch_size", "--batch-size", "batch_size", int),
    Knob("embedding_dim", "--arch-sparse-feature-size", "model.embedding_dim", int),
    # Spaces give the MLPs' hidden widths (`512-256`); the flags take the whole arch.
    Knob("mlp_bot", "--arch-mlp-bot", "model.bottom", str, render=_arch,
         spelled=lambda bottom: _arch(bottom[1:-1])),
    Knob("mlp_top", "--arch-mlp-top", "model.top", str, render=_arch,
         spelled=lambda top: _arch(top[:-1])),
    Knob("interaction", "--arch-interaction-op", "model.interaction", str),
    Knob("lr", "--lr", "lr", float),
    Knob("table_lr", "--table-lr", "table_lr", float),
    Knob("dense_optimizer", "--dense-optimizer", "dense_optimizer", str),
    Knob("sparse_optimizer", "--sparse-optimizer", "sparse_optimizer", str, searchable=False),
    Knob("epochs", "--epochs", "epochs", int, searchable=False),
    Knob("seed", "--seed", "seed", int, searchable=False),
)


def hidden_widths(text: str, knob: str) -> tuple[int, ...]:
    """`512-256` -> (512, 256); an empty string is no hidden layer."""
    if not text:
        return ()
    try:
        widths = tuple(int(part) for part in text.split("-"))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ValueError(f"{knob} {text!r}: hidden widths joined by '-', e.g. 512-256")
    return widths


def config_from_params(params: dict[str, Any], base: DLRMTrainConfig) -> DLRMTrainConfig:
    """The training config a sampled point describes: the embedding dimension ends the
    bottom MLP and the data's dense features start it; the top MLP ends in one logit.

    Raises ValueError for a point the model refuses.
    """
    model: DLRMConfig = base.model
    dim = params.get("embedding_dim", model.embedding_dim)
    bottom = (hidden_widths(params["mlp_bot"], "mlp_bot") if "mlp_bot" in params
              else model.bottom[1:-1])
    top = hidden_widths(params["mlp_top"], "mlp_top") if "mlp_top" in params else model.top[:-1]
    for knob, choices in (("dense_optimizer", DENSE_OPTIMIZERS),
                          ("sparse_optimizer", SPARSE_OPTIMIZERS)):
        if params.get(knob, choices[0]) not in choices:
            raise ValueError(f"{knob} {params[knob]!r}: choose one of {', '.join(choices)}")
    model = DLRMConfig(table_sizes=model.table_sizes, bottom=(model.dense_features, *bottom, dim),
                       top=(*top, 1), embedding_dim=dim,
                       interaction=params.get("interaction", model.interaction),
                       sparse=model.sparse)
    # The knobs outside the architecture set the config's field of their name.
    fields = {knob.field: params[knob.name] for knob in KNOBS
              if knob.name in params and not knob.field.startswith("model.")}
    return replace(base, model=model, **fields)


def data_argv(data: ClickDataset) -> list[str]:
    """The data flags that open `data` again (Criteo's only where they differ from the
    defaults)."""
    argv = ["--dataset", data.name]
    criteo, default = data.criteo, CriteoOptions()
    if criteo.min_frequency is not None:
        argv += ["--min-frequency", str(criteo.min_frequency)]
    elif criteo.hash_size != default.hash_size:
        argv += ["--hash-size", str(criteo.hash_size)]
    if criteo.skip_bad_rows:
        argv.append("--skip-bad-rows")
    return argv


class DLRMFamily(Family):
    name = "dlrm"
    help = "DLRM on click data (--dataset synthetic-dlrm, random-dlrm or a Criteo file)"
    quality, quality_label = trial.QUALITY, "AUC"
    second, second_label = trial.SECOND, "log loss"
    throughput = trial.THROUGHPUT
    columns = (("batch_size", "B"), ("embedding_dim", "d"), ("mlp_bot", "bottom"),
               ("mlp_top", "top"), ("lr", "lr"), ("table_lr", "table lr"))
    grid = ("batch_size", "embedding_dim")
    knobs = KNOBS
    default_space = "dlrm"

    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        from cce_tune.tuner.clicks.cli import (
            add_architecture_arguments,
            add_benchmark_arguments,
            add_click_training_arguments,
        )

        if command == "estimate":  # the paper's single-device benchmark, no data needed
            add_architecture_arguments(parser)
            add_benchmark_arguments(parser)
            parser.add_argument("--batch-size", type=positive_int, default=1024,
                                help="samples per step (default: 1024)")
            return
        parser.add_argument("--dataset", default="synthetic-dlrm",
                            help="synthetic-dlrm, synthetic-dlrm-small (a CPU's size), "
                                 "random-dlrm, or a Criteo file")
        add_click_training_arguments(parser)
        group = parser.add_argument_group("training")
        group.add_argument("--batch-size", type=positive_int, default=1024,
                           help="samples per step (default: 1024)")
        group.add_argument("--lr", type=positive_float, default=3e-3,
                           help="the MLPs' (by --dense-optimizer)")
        epochs = 1 if command == "train" else 5
        group.add_argument("--epochs", type=positive_int, default=epochs,
                           help=f"epochs; for tune, each trial's cap (default: {epochs})")

    def data_options(self, args: argparse.Namespace) -> ClickDataset:
        from cce_tune.tuner.clicks.cli import criteo_options

        return ClickDataset(args.dataset, criteo_options(args))

    def train_config(self, args: argparse.Namespace, **run: Any) -> DLRMTrainConfig:
        return self._configured(args, **run)[0]

    def run_config(self, args: argparse.Namespace) -> DLRMTrainConfig:
        return self.train_config(args, device=args.device)

    def run_train(self, args: argparse.Namespace) -> None:
        from cce_tune.tuner.clicks.cli import run_train_dlrm

        run_train_dlrm(*self._configured(args, device=args.device), args)

    def _configured(self, args: argparse.Namespace, **run: Any):
        """The config and the click source it is shaped by (the tables come from the data)."""
        from cce_tune.tuner.clicks.cli import dlrm_train_config
        from cce_tune.tuner.clicks.sources import click_source

        data = self.data_options(args)
        source = click_source(data.name, args.batch_size, args.seed, data.criteo)
        return dlrm_train_config(args, source, **run), source

    def run_estimate(self, args: argparse.Namespace) -> None:
        from cce_tune.tuner.clicks.cli import run_estimate_dlrm

        run_estimate_dlrm(args)

    def data_name(self, data: ClickDataset) -> str:
        return data.name

    def from_json(self, run: dict) -> tuple[ClickDataset, DLRMTrainConfig]:
        base, arch = run["base"], run["base"]["model"]
        model = DLRMConfig(**{**arch, **{k: tuple(arch[k])
                                         for k in ("table_sizes", "bottom", "top")}})
        # Runs written before families were plug-ins: the name under `dataset`, and
        # Criteo's options beside it.
        data = run.get("data") or {"name": run["dataset"]["dataset"],
                                   "criteo": run.get("criteo", {})}
        options = ClickDataset(data["name"], CriteoOptions(**data["criteo"]))
        return options, DLRMTrainConfig(**{**base, "model": model})

    def target(self, settings: TuneSettings, profile: MemoryProfile | None) -> DLRMTarget:
        return DLRMTarget(settings, profile)

    def config_from_params(self, params: dict[str, Any],
                           base: DLRMTrainConfig) -> DLRMTrainConfig:
        return config_from_params(params, base)

    def data_argv(self, data: ClickDataset) -> list[str]:
        return data_argv(data)


class DLRMTarget:
    """DLRM on one click dataset: what the search asks of the family during a run."""

    def __init__(self, settings: TuneSettings, profile: MemoryProfile | None) -> None:
        from cce_tune.tuner.clicks.sources import click_lookups

        self.settings, self.profile = settings, profile
        self.lookups = click_lookups(settings.data.name)

    def config(self, params: dict[str, Any]) -> DLRMTrainConfig:
        return config_from_params(params, self.settings.base)

    def estimate(self, config: DLRMTrainConfig) -> MemoryBreakdown:
        from cce_tune.tuner.clicks.memory import estimate_dlrm

        return estimate_dlrm(config.model, config.batch_size, self.lookups,
                             config.sparse_optimizer, config.dense_optimizer, self.profile,
                             cuda_graph=config.captures_step)

    def describe(self) -> str:
        model = self.settings.base.model
        return (f"{self.settings.data.name}: {len(model.table_sizes)} tables, "
                f"{sum(model.table_sizes):,} rows, {model.dense_features} dense features")

    def trainable(self, trial_settings: TrialSettings) -> Callable:
        from ray import tune as ray_tune

        return ray_tune.with_parameters(trial.run_dlrm_trial, dataset=self.settings.data,
                                        settings=trial_settings, configure=config_from_params)

    def warm(self, space: SearchSpace) -> None:
        """No Triton kernels to compile: DLRM runs on torch's own."""


FAMILY = DLRMFamily()
