"""Training a sequence model (SASRec, BERT4Rec) with a chosen loss: a plain loop that knows
nothing of Ray.

`cce-tune train` runs it directly; a tuning trial runs the same function and forwards each
`EpochResult` to its scheduler through `on_epoch`. What differs between the models (which
module, what a batch feeds it, what it ranks from) is their objective
(`tuner.sequences.objectives`), chosen by the config's `model`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist

from cce_tune.kernels.losses import make_loss
from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.memory import DatasetShape
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.config import TrainConfig, data_parallel_refusal, resolve_auto
from cce_tune.tuner.sequences.data_parallel import rank_share, replicate, world_size
from cce_tune.tuner.sequences.device_windows import DeviceSequences
from cce_tune.tuner.sequences.evaluate import RankingMetrics, evaluate, popularity_scorer
from cce_tune.tuner.sequences.graphed_steps import GraphedSteps, check_graphable
from cce_tune.tuner.sequences.objectives import OBJECTIVES


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    loss: float
    valid: RankingMetrics
    seconds: float  # training only, evaluation excluded
    sequences_per_s: float
    tokens_per_s: float
    tflops: float  # model FLOPs (`tuner.sequences.flops`) per training second, in 1e12
    eval_seconds: float  # the validation that followed
    # torch.cuda.max_memory_allocated over the epoch's training and validation (since
    # training began, with CUDA graphs, which keep their memory): what a budget must hold
    peak_memory_bytes: int | None
    # The last epoch because validation stopped improving for `patience` epochs.
    converged: bool = False


@dataclass
class TrainResult:
    config: TrainConfig
    dataset: str
    device: str
    epochs: list[EpochResult]
    test: RankingMetrics | None
    popularity_valid: RankingMetrics | None
    popularity_test: RankingMetrics | None
    tested_epoch: int | None = None  # whose weights were tested: the best one with patience

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


class Setup:
    """Model, loss, optimizer and the dataset's arrays on the device: what one training step
    touches. `cce-tune train` loops over its steps; `verify-memory` measures them one by one.
    """

    def __init__(self, config: TrainConfig, data: SequenceData) -> None:
        self.config = config = resolve_auto(config, data_parallel=world_size() > 1)
        self.device = device = resolve_device(config.device)
        if config.bf16 and not (device.type == "cuda" and torch.cuda.is_bf16_supported()):
            raise CceTuneError("--bf16 needs a CUDA GPU with bfloat16 support")
        if config.cuda_graphs:
            check_graphable(device)
        torch.manual_seed(config.seed)
        objective = OBJECTIVES[config.model]
        self.model = objective.build_model(config, data.num_items).to(device)
        if config.compile:
            # In place, so state_dict keys stay the module's; dynamic, so batch widths and
            # sizes share one compiled graph.
            self.model.compile(dynamic=True)
        self.loss_fn = make_loss(config.loss, data.num_items)
        self.optimizer = _optimizer(self.model, config, device)
        # The batch builder: the dataset's training arrays and a batch's loss.
        self.batches = objective(config, DeviceSequences(data, device))
        # Real items and loss tokens per user, on the host: batch widths and weights
        # without a wait for the GPU.
        self.lengths = self.batches.lengths.cpu().numpy()
        self.loss_tokens = self.batches.loss_tokens.cpu().numpy()
        # The most real items a packed batch may hold: what the memory model sizes it by.
        self.token_cap = (DatasetShape.of(data).token_cap(config.batch_size, config.max_len)
                          if config.batches == "packed" else None)
        self.scorers = {split: _model_scorer(self.model, self.batches.histories[split])
                        for split in ("valid", "test")}
        # What a training step calls: the model, or its data-parallel replica
        # (`tuner.sequences.data_parallel`).
        self.step_model: torch.nn.Module = self.model
        # No cache of cast weights under capture: a graph must not keep a cast from its warm-up.
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.bf16,
                                       cache_enabled=not config.cuda_graphs)

    def forward(self, batch: torch.Tensor, width: int | None = None,
                weight: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The loss of the users in `batch` times `weight`, with the graph for its
        backward; their windows cut to their last `width` columns, or packed into `width`
        tokens (`tuner.sequences.batching`; all columns by default, the widest step, which
        the memory model describes). A tensor `weight` is read on the device (a graph's
        input)."""
        self.optimizer.zero_grad(set_to_none=True)  # before the forward: no stale gradients
        with self.autocast:
            loss = self.batches.loss(self.step_model, self.loss_fn, batch, width)
        return loss * weight if torch.is_tensor(weight) or weight != 1.0 else loss

    def step(self, batch: torch.Tensor, width: int | None = None,
             weight: float | torch.Tensor = 1.0) -> torch.Tensor:
        """One optimizer step on `batch`; returns the loss, detached."""
        loss = self.forward(batch, width, weight)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def evaluate(self, split: str, data: SequenceData) -> RankingMetrics:
        # The last step's gradients are not needed to rank: free them (a table's worth).
        self.optimizer.zero_grad(set_to_none=True)
        self.model.eval()
        with self.autocast:
            return evaluate(self.scorers[split], data, split,
                            exclude_seen=self.config.exclude_seen,
                            batch_size=self.config.eval_batch_size, device=self.device)


def _optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device):
    """Adam, fused on the GPU: one kernel for every parameter instead of a dozen launches per
    tensor, which once a step is cut to its real tokens the host could not keep up with;
    capturable (its step count on the device) for a step replayed from a CUDA graph. With a
    sparse item gradient, SparseAdam steps the item table (only the rows a batch touched)."""
    adam = functools.partial(torch.optim.Adam, lr=config.lr, fused=device.type == "cuda",
                             capturable=config.cuda_graphs)
    if not config.loss.sparse_item_grad:
        return adam(model.parameters())
    table = model.item_emb.weight
    return TableApart(torch.optim.SparseAdam([table], lr=config.lr),
                      adam([p for p in model.parameters() if p is not table]))


class TableApart:
    """One optimizer's interface over two: the item table's and every other parameter's."""

    def __init__(self, table: torch.optim.Optimizer, others: torch.optim.Optimizer) -> None:
        self.parts = (table, others)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()


def train(
    config: TrainConfig,
    data: SequenceData,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_milestone: Callable[[str], None] | None = None,
    final_test: bool = True,
) -> TrainResult:
    """Adam on the config's objective; validation after each epoch, test at the end.

    Training stops at `config.epochs`, or earlier once validation NDCG@10 has not improved
    for `config.patience` epochs; with patience, the best epoch's weights are the ones
    tested. Patience counts only once the model clearly beats the popularity ranking on
    validation (`clear_of`): sampled losses often start on a plateau at or below it for
    several epochs (up to 13 at ml-1m shape on the H200), BERT4Rec on one a hair above it,
    before they learn anything else, and a stall there is not convergence.

    `on_milestone` is called with "setup" once model, optimizer and data are on the device,
    and with "first step" once the first optimizer step is queued (tuning times the way
    from one trial's end to the next one's first step). Without `final_test` (tuning, which
    selects on validation), test and popularity metrics are left out. Called on every rank
    of a process group of several ranks, each trains its share of every batch
    (`tuner.sequences.data_parallel`).
    """
    setup = Setup(config, data)
    config = setup.config  # --batches auto made concrete
    world = world_size()  # with a process group of several ranks: data parallel
    if world > 1:
        refusal = data_parallel_refusal(config, "torchrun")
        if refusal:
            raise CceTuneError(refusal)
        setup.step_model = replicate(setup.model, setup.device)
    # What trains and evaluates: the setup, or its steps replayed from CUDA graphs.
    runner = GraphedSteps(setup) if config.cuda_graphs else setup
    if on_milestone is not None:
        on_milestone("setup")
    device = setup.device
    rng = np.random.default_rng(config.seed)
    tokens_per_epoch = setup.batches.tokens_per_epoch

    epochs = []
    best = _BestEpoch(setup.model, keep=final_test and config.patience > 0)
    # Popularity on validation: the floor patience waits for, and (with a test) the baseline.
    popular = _popularity(data, config, device) if config.patience else None
    floor = popular.ndcg10 if popular is not None else 0.0
    for epoch in range(1, config.epochs + 1):
        setup.model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
            # Graphs hold their memory from their capture on: their peak is the one since
            # training began.
            if epoch == 1 or not config.cuda_graphs:
                torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        batches = epoch_batches(setup.lengths, config.batch_size, rng, config.batches,
                                config.max_len, device, setup.loss_tokens, setup.token_cap)
        total_loss = torch.zeros((), device=device)
        steps = 0
        for batch in batches:
            if world > 1:
                batch = rank_share(batch, setup.lengths, setup.loss_tokens, dist.get_rank(),
                                   world, config.max_len)
                if batch is None:
                    continue
            total_loss += runner.step(batch.users, batch.width, batch.weight)
            steps += 1
            if on_milestone is not None and epoch == steps == 1:
                on_milestone("first step")
        if world > 1:  # the shares' weighted losses add up to the batches'
            dist.all_reduce(total_loss)
            total_loss /= world
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        valid = runner.evaluate("valid", data)
        eval_seconds = time.perf_counter() - started - seconds
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        stalled = best.update(epoch, valid.ndcg10)
        converged = 0 < config.patience <= stalled and clear_of(floor, best.ndcg10)
        result = EpochResult(epoch, total_loss.item() / steps, valid, seconds,
                             data.num_users / seconds, tokens_per_epoch / seconds,
                             setup.batches.flops_per_epoch / seconds / 1e12, eval_seconds,
                             peak, converged)
        epochs.append(result)
        if on_epoch is not None:
            on_epoch(result)
        if converged:
            break

    if not final_test:
        return TrainResult(config, data.name, str(device), epochs, None, None, None)
    best.restore()
    test = runner.evaluate("test", data)
    baseline = {"valid": popular or _popularity(data, config, device),
                "test": _popularity(data, config, device, "test")}
    return TrainResult(config, data.name, str(device), epochs, test, baseline["valid"],
                       baseline["test"], best.epoch if best.keep else epochs[-1].epoch)


# How far above popularity's validation NDCG@10 a model must be before patience counts: on
# the H200, BERT4Rec runs sat 0.4 % above it (0.0249 against 0.0248) and were "converged".
CLEAR_OF_POPULARITY = 1.1


def clear_of(popularity: float, ndcg10: float) -> bool:
    """Whether `ndcg10` is clearly above the popularity ranking's: off the plateau."""
    return ndcg10 > CLEAR_OF_POPULARITY * popularity


def _popularity(data: SequenceData, config: TrainConfig, device: torch.device,
                split: str = "valid") -> RankingMetrics:
    return evaluate(popularity_scorer(data, device), data, split,
                    exclude_seen=config.exclude_seen, batch_size=config.eval_batch_size,
                    device=device)


class _BestEpoch:
    """The epoch with the best validation NDCG@10 so far, and (with `keep`) a host copy of
    its weights: GPU memory is what the budget holds, so the copy is not kept there."""

    def __init__(self, model: torch.nn.Module, keep: bool) -> None:
        self.model, self.keep = model, keep
        self.epoch, self.ndcg10, self.state = 0, -1.0, None

    def update(self, epoch: int, ndcg10: float) -> int:
        """Record `epoch`; returns how many epochs have passed since the best one."""
        if ndcg10 > self.ndcg10:
            self.epoch, self.ndcg10 = epoch, ndcg10
            if self.keep:
                self.state = {name: value.detach().to("cpu", copy=True)
                              for name, value in self.model.state_dict().items()}
        return epoch - self.epoch

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _model_scorer(model: torch.nn.Module, histories: torch.Tensor):
    """Scores of every item from the hidden state at each user's last history position."""

    def score(users: torch.Tensor) -> torch.Tensor:
        last = model(histories[users])[:, -1, :]
        return last @ model.output_embedding.T

    return score
