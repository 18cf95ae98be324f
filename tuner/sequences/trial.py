"""One sequence-model trial: a sampled point trained by the plain trainer, each epoch reported
to Ray through `TrialRun`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.run_dir import LAST_EPOCH
from cce_tune.tuner.trial import TrialRun, TrialSettings

# What a trial reports besides the common fields; the family declares its metrics by these.
QUALITY, SECOND, THROUGHPUT = "ndcg10", "hr10", "tokens_per_s"


def run_trial(config: dict[str, Any], data: SequenceData, settings: TrialSettings,
              configure: Callable[[dict[str, Any], Any], Any]) -> None:
    """Ray Tune function trainable: train `config` (a sampled point, made a training config
    by the family's `configure`) and report every epoch."""
    from cce_tune.tuner.sequences.train import train

    run = TrialRun(config, settings)
    training = configure(config, settings.base)
    # Without a GPU the same command runs anywhere: small CPU trials, no bf16.
    training = (replace(training, device="cuda") if run.cuda
                else replace(training, bf16=False, device="cpu"))

    def on_epoch(result) -> None:
        run.report({"epoch": result.epoch, QUALITY: result.valid.ndcg10,
                    SECOND: result.valid.hr10, "loss": result.loss,
                    "epoch_seconds": result.seconds, THROUGHPUT: result.tokens_per_s,
                    "tflops": result.tflops, "eval_seconds": result.eval_seconds,
                    "converged": result.converged, LAST_EPOCH: result.converged},
                   result.peak_memory_bytes)

    train(training, data, on_epoch=on_epoch, on_milestone=run.on_milestone, final_test=False)
