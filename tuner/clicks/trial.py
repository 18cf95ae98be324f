"""One DLRM tuning trial: a sampled point of a `model: dlrm` space, trained by `train_dlrm`.

The click data is built inside the trial from its name, on the trial's device: generated
sets cost less to draw there than to ship, and a Criteo file loads from the cache that the
driver's first load wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cce_tune.tuner.clicks.config import ClickDataset, DLRMTrainConfig
from cce_tune.tuner.trial import TrialRun, TrialSettings

# What a trial reports besides the common fields; the family declares its metrics by these.
QUALITY, SECOND, THROUGHPUT = "auc", "log_loss", "samples_per_s"


def run_dlrm_trial(config: dict[str, Any], dataset: ClickDataset, settings: TrialSettings,
                   configure: Callable[[dict[str, Any], Any], DLRMTrainConfig]) -> None:
    """Ray Tune function trainable: train DLRM on `dataset` and report every epoch."""
    from cce_tune.tuner.clicks.sources import click_source
    from cce_tune.tuner.clicks.train import train_dlrm

    run = TrialRun(config, settings)
    training = configure(config, settings.base)
    device = "cuda" if run.cuda else "cpu"
    training = replace(training, device=device)
    source = click_source(dataset.name, training.batch_size, training.seed, dataset.criteo,
                          device=device)

    def on_epoch(epoch) -> None:
        run.report({"epoch": epoch.epoch, QUALITY: epoch.valid.auc,
                    SECOND: epoch.valid.log_loss, "loss": epoch.loss,
                    "epoch_seconds": epoch.seconds, THROUGHPUT: epoch.samples_per_s},
                   epoch.peak_memory_bytes)

    train_dlrm(training, source.train, source.valid, on_epoch=on_epoch,
               on_milestone=run.on_milestone)
