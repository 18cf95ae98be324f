"""One DLRM tuning trial: a sampled point of a `model: dlrm` space, trained by `train_dlrm`.

The click data is built inside the trial from its name, on the trial's device: generated
sets cost less to draw there than to ship, and a Criteo file loads from the cache that the
driver's first load wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from models.dlrm_config import DLRMConfig
from models.dlrm_memory import DENSE_OPTIMIZERS
from tuner.trial import TrialRun, TrialSettings

if TYPE_CHECKING:
    from tuner.ctr.criteo import CriteoOptions


@dataclass(frozen=True)
class ClickDataset:
    """How a trial builds its click data: a preset's name or a Criteo file, and options."""

    name: str
    criteo: CriteoOptions
    seed: int = 0


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


def dlrm_config_from_params(params: dict[str, Any], base):
    """The `DLRMTrainConfig` a sampled point describes: the embedding dimension ends the
    bottom MLP and the data's dense features start it; the top MLP ends in one logit.

    Raises ValueError for a point the model refuses.
    """
    model: DLRMConfig = base.model
    dim = params.get("embedding_dim", model.embedding_dim)
    bottom = (hidden_widths(params["mlp_bot"], "mlp_bot") if "mlp_bot" in params
              else model.bottom[1:-1])
    top = hidden_widths(params["mlp_top"], "mlp_top") if "mlp_top" in params else model.top[:-1]
    dense_optimizer = params.get("dense_optimizer", base.dense_optimizer)
    if dense_optimizer not in DENSE_OPTIMIZERS:
        raise ValueError(f"dense_optimizer {dense_optimizer!r}: choose one of "
                         f"{', '.join(DENSE_OPTIMIZERS)}")
    model = DLRMConfig(table_sizes=model.table_sizes, bottom=(model.dense_features, *bottom, dim),
                       top=(*top, 1), embedding_dim=dim,
                       interaction=params.get("interaction", model.interaction),
                       sparse=model.sparse)
    return replace(base, model=model, batch_size=params.get("batch_size", base.batch_size),
                   lr=params.get("lr", base.lr), table_lr=params.get("table_lr", base.table_lr),
                   dense_optimizer=dense_optimizer)


def run_dlrm_trial(config: dict[str, Any], dataset: ClickDataset,
                   settings: TrialSettings) -> None:
    """Ray Tune function trainable: train DLRM on `dataset` and report every epoch."""
    from tuner.ctr.sources import click_source
    from tuner.train_dlrm import train_dlrm

    run = TrialRun(config, settings)
    training = dlrm_config_from_params(config, settings.base)
    device = "cuda" if run.cuda else "cpu"
    training = replace(training, device=device)
    source = click_source(dataset.name, training.batch_size, dataset.seed, dataset.criteo,
                          device=device)

    def on_epoch(epoch) -> None:
        run.report({"epoch": epoch.epoch, "auc": epoch.valid.auc,
                    "log_loss": epoch.valid.log_loss, "loss": epoch.loss,
                    "epoch_seconds": epoch.seconds, "samples_per_s": epoch.samples_per_s},
                   epoch.peak_memory_bytes)

    train_dlrm(training, source.train, source.valid, on_epoch=on_epoch,
               on_milestone=run.on_milestone)
