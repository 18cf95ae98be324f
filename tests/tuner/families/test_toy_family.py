"""A third model family plugged in from outside: registered here, tuned on the CPU for two
trials, reported, with no edit to cce-tune's own code. The toy is logistic regression on
points drawn around two centres; its knobs are the batch size and the learning rate."""

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pytest

from cce_tune.tuner.cli import main
from cce_tune.tuner.families import Family, Knob, register
from cce_tune.tuner.memory import MemoryBreakdown
from cce_tune.tuner.trial import TrialRun


@dataclass(frozen=True)
class ToyData:
    name: str = "two-blobs"
    points: int = 512


@dataclass(frozen=True)
class ToyConfig:
    batch_size: int = 32
    lr: float = 0.1
    epochs: int = 2
    seed: int = 0


KNOBS = (Knob("batch_size", "--batch-size", "batch_size", int),
         Knob("lr", "--lr", "lr", float),
         Knob("epochs", "--epochs", "epochs", int, searchable=False),
         Knob("seed", "--seed", "seed", int, searchable=False))


def toy_config(params: dict[str, Any], base: ToyConfig) -> ToyConfig:
    return replace(base, **{k.field: params[k.name] for k in KNOBS if k.name in params})


def train_toy(config: ToyConfig, data: ToyData, on_epoch) -> None:
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    labels = torch.randint(0, 2, (data.points,), generator=generator)
    x = torch.randn(data.points, 2, generator=generator) + 2.0 * labels[:, None]
    weights = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([weights], lr=config.lr)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        for start in range(0, data.points, config.batch_size):
            batch = slice(start, start + config.batch_size)
            logits = x[batch] @ weights - 2.0
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels[batch].float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy = ((x @ weights > 2.0) == labels.bool()).float().mean().item()
        on_epoch(epoch, loss.item(), accuracy, time.perf_counter() - started)


def run_toy_trial(config: dict[str, Any], data: ToyData, settings) -> None:
    run = TrialRun(config, settings)
    training = toy_config(config, settings.base)

    def on_epoch(epoch, loss, accuracy, seconds):
        run.report({"epoch": epoch, "accuracy": accuracy, "misclassified": 1 - accuracy,
                    "loss": loss, "epoch_seconds": seconds,
                    "points_per_s": data.points / seconds}, None)

    train_toy(training, data, on_epoch)


class ToyTarget:
    def __init__(self, settings) -> None:
        self.settings = settings

    def config(self, params):
        return toy_config(params, self.settings.base)

    def estimate(self, config: ToyConfig) -> MemoryBreakdown:
        size = 4 * 2 * config.batch_size
        return MemoryBreakdown({"batch": size}, "step", {"step": size}, size, size, size)

    def describe(self) -> str:
        return f"{self.settings.data.name}: {self.settings.data.points} points"

    def trainable(self, trial_settings):
        from ray import tune

        return tune.with_parameters(run_toy_trial, data=self.settings.data,
                                    settings=trial_settings)

    def warm(self, space) -> None:
        """Nothing to compile."""


class ToyFamily(Family):
    name = "toy"
    help = "logistic regression on two blobs (a test's)"
    quality, quality_label = "accuracy", "accuracy"
    second, second_label = "misclassified", "misclassified"
    throughput = "points_per_s"
    columns = (("batch_size", "B"), ("lr", "lr"))
    grid = ("batch_size", "lr")
    knobs = KNOBS
    default_space = "toy"

    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        parser.add_argument("--dataset", default="two-blobs")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=0.1)
        parser.add_argument("--epochs", type=int, default=2)

    def data_options(self, args):
        return ToyData(args.dataset)

    def train_config(self, args, **run):
        return ToyConfig(args.batch_size, args.lr, args.epochs, **run)

    def run_config(self, args):
        return self.train_config(args, seed=args.seed)

    def run_train(self, args) -> None:
        train_toy(self.run_config(args), self.data_options(args),
                  lambda epoch, loss, accuracy, seconds: print(f"epoch {epoch} accuracy "
                                                               f"{accuracy:.3f}"))

    def run_estimate(self, args) -> None:
        print(ToyTarget(None).estimate(self.train_config(args)).table())

    def data_name(self, data: ToyData) -> str:
        return data.name

    def from_json(self, run: dict):
        return ToyData(**run["data"]), ToyConfig(**run["base"])

    def target(self, settings, profile):
        return ToyTarget(settings)

    def config_from_params(self, params, base: ToyConfig) -> ToyConfig:
        return toy_config(params, base)

    def data_argv(self, data: ToyData) -> list[str]:
        return ["--dataset", data.name]


@pytest.mark.slow
def test_a_family_registered_from_outside_tunes_and_reports(tmp_path, capsys, monkeypatch):
    import ray.cloudpickle

    from cce_tune.tuner import families

    # Ray's workers cannot import this test module: its trial function travels by value
    # (which is why that function touches no class with abstract methods: cloudpickle
    # rebuilds such a class with its abstract set stale).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(families, "_registered", dict(families._registered))  # undone after
    register(ToyFamily())
    space, run_dir = tmp_path / "toy.yaml", tmp_path / "run"
    space.write_text("model: toy\nparams:\n  batch_size: {choices: [16, 64]}\n"
                     "  lr: {log_uniform: [0.01, 0.5]}\n")
    assert main(["--model", "toy", "--space", str(space), "--trials", "2", "--epochs", "2",
                 "--gpu-mem", "1GB", "--no-dashboard", "--out", str(run_dir)]) == 0
    trials = pd.read_csv(run_dir / "report" / "trials.csv")
    assert len(trials) == 2 and trials["status"].isin(["completed", "stopped early"]).all()
    assert trials["accuracy"].between(0, 1).all()
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "validation accuracy" in summary and "cce-tune train --model toy" in summary
    command = next(line for line in summary.splitlines() if line.startswith("cce-tune "))
    capsys.readouterr()
    assert main(shlex.split(command)[1:]) == 0
    assert "epoch 2 accuracy" in capsys.readouterr().out
    assert (run_dir / "report" / "report.html").is_file()


def test_a_family_the_reports_could_not_show_is_refused():
    class Clashing(ToyFamily):
        name, second = "clashing", "error"

    class Unknown(ToyFamily):
        name, grid = "unknown", ("batch_size", "momentum")

    with pytest.raises(ValueError, match="'error' names a column the reports write"):
        register(Clashing())
    with pytest.raises(ValueError, match="grid knob 'momentum' is none of its searchable"):
        register(Unknown())
    with pytest.raises(ValueError, match="model 'sasrec' is registered already"):
        register(type("Again", (ToyFamily,), {"name": "sasrec"})())
