"""Training DLRM on click data: a plain loop that knows nothing of Ray, like the sequence
trainer (`tuner.sequences.train`).

Tables are updated by SGD inside the backward (`sgd`) or by row-wise Adagrad over sparse
gradients (`rowwise_adagrad`); the MLPs by Adam or SGD. On a GPU with `sgd` tables the step
is replayed from a CUDA graph (`tuner.clicks.captured_step`). Validation after each epoch: AUC,
log loss and accuracy, next to a constant predictor's log loss (the positive rate).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cce_tune.models.dlrm import DLRM
from cce_tune.tuner.clicks.batches import ClickBatch
from cce_tune.tuner.clicks.captured_step import CapturedStep
from cce_tune.tuner.clicks.config import DLRMTrainConfig
from cce_tune.tuner.clicks.rowwise_adagrad import RowWiseAdagrad
from cce_tune.tuner.sequences.train import resolve_device


@dataclass(frozen=True)
class ClickMetrics:
    auc: float
    log_loss: float
    accuracy: float
    constant_log_loss: float  # predicting the positive rate for everyone
    samples: int


@dataclass(frozen=True)
class DLRMEpoch:
    epoch: int
    loss: float
    valid: ClickMetrics
    seconds: float
    samples_per_s: float
    peak_memory_bytes: int | None


def click_metrics(logits: torch.Tensor, labels: torch.Tensor) -> ClickMetrics:
    """AUC by ranks (ties share their mean rank), log loss, accuracy at 0.5."""
    logits, labels = logits.double().cpu(), labels.double().cpu()
    order = torch.argsort(logits)
    ranks = torch.empty_like(logits)
    ranks[order] = torch.arange(1, len(logits) + 1, dtype=torch.float64)
    _, inverse = torch.unique(logits, return_inverse=True)  # average the ranks of ties
    tie_sum = torch.zeros(int(inverse.max()) + 1, dtype=torch.float64).index_add_(0, inverse,
                                                                                 ranks)
    tie_count = torch.bincount(inverse).double()
    ranks = (tie_sum / tie_count)[inverse]
    positives = labels.sum().item()
    negatives = len(labels) - positives
    auc = ((ranks[labels == 1].sum().item() - positives * (positives + 1) / 2)
           / (positives * negatives)) if positives and negatives else math.nan
    rate = min(max(positives / len(labels), 1e-7), 1 - 1e-7)
    constant = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    return ClickMetrics(auc, F.binary_cross_entropy_with_logits(logits, labels).item(),
                        ((logits > 0).double() == labels).double().mean().item(), constant,
                        len(labels))


def training_step(model: DLRM, optimizers: list[torch.optim.Optimizer]
                  ) -> Callable[[ClickBatch], torch.Tensor]:
    """One optimizer step on a batch, returning its loss (detached); capturable in a CUDA
    graph when the optimizers are."""

    def step(batch: ClickBatch) -> torch.Tensor:
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(
            model(batch.dense, batch.indices, batch.offsets), batch.labels)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return loss.detach()

    return step


def train_dlrm(config: DLRMTrainConfig, train_batches: Callable[[], Iterable[ClickBatch]],
               valid_batches: list[ClickBatch],
               on_epoch: Callable[[DLRMEpoch], None] | None = None,
               on_milestone: Callable[[str], None] | None = None) -> list[DLRMEpoch]:
    """Train and validate each epoch; `on_milestone` is called with "setup" and "first step"
    as in `tuner.sequences.train.train`."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = DLRM(config.model).to(device)
    optimizers: list[torch.optim.Optimizer] = []
    if config.sparse_optimizer == "sgd":
        model.fuse_table_sgd(config.table_lr)
    else:
        optimizers.append(RowWiseAdagrad(model.sparse_parameters(), lr=config.table_lr))
    graphed = config.captures_step and device.type == "cuda"
    if config.dense_optimizer == "adam":  # capturable: its step count lives on the device
        optimizers.append(torch.optim.Adam(model.dense_parameters(), lr=config.lr,
                                           capturable=graphed))
    else:
        optimizers.append(torch.optim.SGD(model.dense_parameters(), lr=config.lr))

    step = training_step(model, optimizers)
    run_step = CapturedStep(step) if graphed else step
    if on_milestone is not None:
        on_milestone("setup")
    epochs = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        total, steps, samples = torch.zeros((), device=device), 0, 0
        for batch in train_batches():
            total += run_step(_to(batch, device))
            steps += 1
            if on_milestone is not None and epoch == steps == 1:
                on_milestone("first step")
            samples += len(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        valid = evaluate_dlrm(model, valid_batches, device)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        epochs.append(DLRMEpoch(epoch, total.item() / max(steps, 1), valid, seconds,
                                samples / seconds, peak))
        if on_epoch is not None:
            on_epoch(epochs[-1])
    return epochs


@torch.no_grad()
def evaluate_dlrm(model: DLRM, batches: list[ClickBatch], device: torch.device) -> ClickMetrics:
    model.eval()
    logits, labels = [], []
    for batch in batches:
        batch = _to(batch, device)
        logits.append(model(batch.dense, batch.indices, batch.offsets))
        labels.append(batch.labels)
    return click_metrics(torch.cat(logits), torch.cat(labels))


def _to(batch: ClickBatch, device: torch.device) -> ClickBatch:
    if batch.dense.device == device:
        return batch
    return ClickBatch(batch.dense.to(device), [i.to(device) for i in batch.indices],
                      [o.to(device) for o in batch.offsets], batch.labels.to(device))
