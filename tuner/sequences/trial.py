"""One sequence-model trial: a sampled point trained by the plain trainer, each epoch reported
to Ray through `TrialRun`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.run_dir import LAST_EPOCH
from cce_tune.tuner.trial import TrialRun, TrialSettings, data_parallel_workers

# What a trial reports besides the common fields; the family declares its metrics by these.
QUALITY, SECOND, THROUGHPUT = "ndcg10", "hr10", "tokens_per_s"


def run_trial(config: dict[str, Any], data: SequenceData, settings: TrialSettings,
              configure: Callable[[dict[str, Any], Any], Any]) -> None:
    """Ray Tune function trainable: train `config` (a sampled point, made a training config
    by the family's `configure`) and report every epoch; over several GPUs with
    `--gpus-per-trial` of 2 or more (`tuner.sequences.parallel_trial`)."""
    workers = data_parallel_workers(settings.gpus_per_trial)
    if workers > 1:
        from cce_tune.tuner.sequences.parallel_trial import run_parallel_trial

        run_parallel_trial(config, data, settings, configure, workers, train_and_report)
        return
    train_and_report(TrialRun(config, settings), config, data, settings, configure)


def train_and_report(run: TrialRun, config: dict[str, Any], data: SequenceData,
                     settings: TrialSettings,
                     configure: Callable[[dict[str, Any], Any], Any]) -> None:
    """`config` trained by the plain trainer (on each rank of a data-parallel trial),
    every epoch reported through `run`."""
    from cce_tune.tuner.sequences.data_parallel import world_size
    from cce_tune.tuner.sequences.train import train

    training = configure(config, settings.base)
    # Without a GPU the same command runs anywhere: small CPU trials, no bf16.
    training = (replace(training, device="cuda") if run.cuda
                else replace(training, bf16=False, device="cpu"))

    def on_epoch(result) -> None:
        run.report({"epoch": result.epoch, QUALITY: result.valid.ndcg10,
                    SECOND: result.valid.hr10, "loss": result.loss,
                    "epoch_seconds": result.seconds, THROUGHPUT: result.tokens_per_s,
                    "tflops": result.tflops, "eval_seconds": result.eval_seconds,
                    "converged": result.converged, LAST_EPOCH: result.converged,
                    "ranks": world_size()},
                   result.peak_memory_bytes)

    train(training, data, on_epoch=on_epoch, on_milestone=run.on_milestone, final_test=False)
