"""Training SASRec with a chosen loss: a plain loop that knows nothing of Ray.

`cce-tune train` runs it directly; a tuning trial runs the same function and forwards each
`EpochResult` to its scheduler through `on_epoch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from kernels import LossConfig, make_loss
from models import SASRec, SASRecConfig
from tuner.data.sequences import SequenceData
from tuner.errors import CceTuneError
from tuner.evaluate import RankingMetrics, evaluate, popularity_scorer


@dataclass(frozen=True)
class TrainConfig:
    loss: LossConfig = field(default_factory=LossConfig)
    batch_size: int = 128
    max_len: int = 50
    hidden: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    lr: float = 1e-3
    epochs: int = 5
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    exclude_seen: bool = True
    eval_batch_size: int = 1024


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    loss: float
    valid: RankingMetrics
    seconds: float
    sequences_per_s: float
    tokens_per_s: float
    peak_memory_bytes: int | None  # torch.cuda.max_memory_allocated during the epoch


@dataclass
class TrainResult:
    config: TrainConfig
    dataset: str
    device: str
    epochs: list[EpochResult]
    test: RankingMetrics
    popularity_valid: RankingMetrics
    popularity_test: RankingMetrics

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CceTuneError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise CceTuneError(f"--device {name!r}: choose cpu, cuda or auto")
    return torch.device(name)


def train(
    config: TrainConfig,
    data: SequenceData,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> TrainResult:
    """Adam on next-item prediction; validation after each epoch, test at the end."""
    device = resolve_device(config.device)
    if config.bf16 and not (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        raise CceTuneError("--bf16 needs a CUDA GPU with bfloat16 support")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = SASRec(SASRecConfig(
        num_items=data.num_items, max_len=config.max_len, hidden=config.hidden,
        num_blocks=config.num_blocks, num_heads=config.num_heads, dropout=config.dropout,
    )).to(device)
    loss_fn = make_loss(config.loss, data.num_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    windows = torch.as_tensor(data.windows("train", config.max_len + 1), device=device)
    inputs = windows[:, :-1]
    targets = torch.where(inputs == 0, 0, windows[:, 1:])  # the first item predicts nothing
    tokens_per_epoch = int((targets != 0).sum())
    scorers = {split: _model_scorer(model, data, split, config.max_len, device)
               for split in ("valid", "test")}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.bf16)

    epochs = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        order = torch.as_tensor(rng.permutation(data.num_users), device=device)
        total_loss = torch.zeros((), device=device)
        steps = 0
        for first in range(0, data.num_users, config.batch_size):
            batch = order[first:first + config.batch_size]
            batch_targets = targets[batch].reshape(-1)
            with autocast:
                hidden = model(inputs[batch])
                loss = loss_fn(hidden.reshape(-1, config.hidden), model.output_embedding,
                               batch_targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach()
            steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        model.eval()
        with autocast:
            valid = evaluate(scorers["valid"], data, "valid", exclude_seen=config.exclude_seen,
                             batch_size=config.eval_batch_size, device=device)
        result = EpochResult(epoch, total_loss.item() / steps, valid, seconds,
                             data.num_users / seconds, tokens_per_epoch / seconds, peak)
        epochs.append(result)
        if on_epoch is not None:
            on_epoch(result)

    model.eval()
    with autocast:
        test = evaluate(scorers["test"], data, "test", exclude_seen=config.exclude_seen,
                        batch_size=config.eval_batch_size, device=device)
    popularity = popularity_scorer(data, device)
    baseline = {split: evaluate(popularity, data, split, exclude_seen=config.exclude_seen,
                                batch_size=config.eval_batch_size, device=device)
                for split in ("valid", "test")}
    return TrainResult(config, data.name, str(device), epochs, test, baseline["valid"],
                       baseline["test"])


def _model_scorer(model: SASRec, data: SequenceData, split: str, max_len: int,
                  device: torch.device):
    """Scores of every item from the hidden state at each user's last history position."""
    histories = torch.as_tensor(data.windows(split, max_len), device=device)

    def score(users: torch.Tensor) -> torch.Tensor:
        last = model(histories[users])[:, -1, :]
        return last @ model.output_embedding.T

    return score
