"""The peak-memory model: whether a training configuration fits a GPU, before launching it.

    >>> from cce_tune.tuner.memory import DatasetShape, estimate
    >>> shape = DatasetShape(num_users=138_493, num_items=26_744)
    >>> breakdown = estimate(TrainConfig(batch_size=256, max_len=200), shape)
    >>> print(breakdown.table())

Each part declares its own bytes next to its code (`models.sasrec_memory`,
`models.bert4rec_memory`, `kernels.memory`); this module adds them up over the moments of a
step where memory peaks:
the forward, the backward, the optimizer step, and evaluation. Above the tensors sit the
allocator's slack and the CUDA context, which `max_memory_allocated` does not see but a GPU
budget does. The coefficients of `MemoryProfile` are what `verify-memory --calibrate` fits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cce_tune.kernels.memory import (
    allocation,
    compact_positions,
    loss_memory,
    sparse_item_gradient,
)
from cce_tune.models import bert4rec_memory
from cce_tune.models.bert4rec_config import BERT4RecConfig, masked_capacity
from cce_tune.models.sasrec_config import SASRecConfig
from cce_tune.models.sasrec_memory import (
    ActivationMemory,
    activation_memory,
    inference_extra,
    packed_activation_memory,
    parameter_bytes,
)
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.sequences.config import (
    ClozeConfig,
    TrainConfig,
    users_per_batch,
    variable_length_attention,
)
from cce_tune.tuner.sequences.token_bound import packed_tokens, token_cap
from cce_tune.tuner.units import format_bytes

if TYPE_CHECKING:
    from cce_tune.tuner.data.sequences import SequenceData

MiB = 1 << 20


@dataclass(frozen=True)
class DatasetShape:
    """What the memory model needs of a dataset: its user and item counts, and for packed
    batches how long its users' training inputs are."""

    num_users: int
    num_items: int
    # (items, users) pairs: how many users' training inputs (the items before the validation
    # item, less the last, which only is a target) hold each count of items, uncut. Empty
    # when not known: a packed batch is then sized by its users' full windows.
    length_counts: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, data: SequenceData) -> DatasetShape:
        inputs = np.maximum(data.history_end("train") - data.offsets[:-1] - 1, 0)
        lengths, users = np.unique(inputs, return_counts=True)
        return cls(data.num_users, data.num_items,
                   tuple(zip(lengths.tolist(), users.tolist(), strict=True)))

    def token_cap(self, batch_size: int, max_len: int) -> int:
        """The most real items a packed batch of `batch_size` users at `max_len` may hold
        (`token_bound.token_cap`; the batcher splits a batch past it): its users' full
        windows when the lengths are not known."""
        if not self.length_counts:
            return batch_size * max_len
        lengths, users = np.array(self.length_counts, dtype=np.int64).T
        return token_cap(np.minimum(lengths, max_len), users, batch_size, max_len)

    def packed_tokens(self, batch_size: int, max_len: int) -> int:
        """The tokens of the widest packed batch: the cap, rounded up as the batcher rounds
        (`packed_tokens`)."""
        return packed_tokens(self.token_cap(batch_size, max_len), batch_size, max_len)


@dataclass(frozen=True)
class MemoryProfile:
    """The model's free coefficients. The defaults are the uncalibrated model's.

    `activation_scale` and `loss_scale` multiply the model's and the loss's terms,
    `workspace_bytes` covers cuBLAS / cuDNN workspaces taken through the allocator,
    `fragmentation` is reserved over allocated at the peak, `context_bytes` is the CUDA
    context and kernel images outside the allocator.
    """

    activation_scale: float = 1.0
    loss_scale: float = 1.0
    workspace_bytes: int = 65 * MiB  # measured: H100, torch 2.11 (cuBLAS and cuBLASLt)
    # Reserved over allocated at the peak, with expandable segments (`tuner.allocator`):
    # up to 1.38 on an H200 over the default grid's points above 1 GiB (1.74 with the
    # allocator's default setting); `benchmarks/results/memory-h200*.md`.
    fragmentation: float = 0.40
    context_bytes: int = 2 << 30  # measured: up to 1.91 GB beside the allocator on an H100
    gpu: str = "uncalibrated"
    torch: str = ""
    points: int = 0

    @classmethod
    def load(cls, path: Path) -> MemoryProfile:
        try:
            fields = json.loads(Path(path).read_text())
            return cls(**fields)
        except FileNotFoundError:
            raise CceTuneError(f"--memory-profile {path}: no such file") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise CceTuneError(
                f"--memory-profile {path}: not a profile written by verify-memory --calibrate "
                f"({error})") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass(frozen=True)
class MemoryBreakdown:
    """Named terms of the peak, for the moment of the step that peaks."""

    terms: dict[str, int]  # sum to `peak_allocated`
    phase: str  # the moment that peaks: forward, backward, optimizer step or evaluation
    phases: dict[str, int]  # allocated bytes at each moment's peak
    peak_allocated: int  # what torch.cuda.max_memory_allocated should read
    peak_reserved: int  # with the allocator's slack
    total: int  # with the CUDA context: what the GPU must have free

    def fits(self, budget_bytes: float) -> bool:
        return self.total <= budget_bytes

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = [(name, size) for name, size in self.terms.items()]
        rows += [("= peak allocated", self.peak_allocated),
                 ("+ allocator slack", self.peak_reserved - self.peak_allocated),
                 ("+ CUDA context", self.total - self.peak_reserved),
                 ("= total on the GPU", self.total)]
        width = max(len(name) for name, _ in rows)
        lines = [f"peak at: {self.phase}"]
        lines += [f"{name:<{width}}  {format_bytes(size):>11}" for name, size in rows]
        lines.append("phases: " + ", ".join(f"{name} {format_bytes(size)}"
                                            for name, size in self.phases.items()))
        return "\n".join(lines)


def model_config(config: TrainConfig, shape: DatasetShape) -> SASRecConfig:
    return SASRecConfig(num_items=shape.num_items, max_len=config.max_len, hidden=config.hidden,
                        num_blocks=config.num_blocks, num_heads=config.num_heads,
                        dropout=config.dropout)


def dataset_bytes(shape: DatasetShape, max_len: int) -> int:
    """`tuner.sequences.train.Setup`'s device arrays: training windows (L + 1 wide, int64), targets,
    validation and test histories, plus an epoch's permutation or a split's targets."""
    users = shape.num_users
    return (allocation(users * (max_len + 1), 8) + 3 * allocation(users * max_len, 8)
            + allocation(users, 8))


@dataclass(frozen=True)
class ModelTerms:
    """What a sequence model declares for one training step of a config: its parameters,
    the dataset's and the batch's device arrays, its activations, the loss's token count
    and item table, and its no-grad forward over `users` sequences (evaluation)."""

    params: int
    dataset: int
    batch_ids: int
    activations: ActivationMemory
    loss_tokens: int
    table_rows: int  # of the item table, whose gradient is a parameter's
    # Beside the loss's own backward: BERT4Rec scores a slice of its table (without the mask
    # token's row), whose backward expands the loss's item gradient to a full table.
    loss_backward_extra: int
    inference_extra: Callable[[int], int]  # users -> bytes of their no-grad forward


PACKED_IDS = 5  # int64 values per packed token beside the activations


def packs(config: TrainConfig) -> bool:
    """Whether the model describes `config`'s step as packed: packed batches on the
    variable-length kernel, which runs in bfloat16 on torch >= 2.10 (elsewhere attention runs
    on a padded layout, `models.packing`, which it does not describe)."""
    return config.batches == "packed" and config.bf16 and variable_length_attention()


def _sasrec_terms(config: TrainConfig, shape: DatasetShape, batch: int) -> ModelTerms:
    model = model_config(config, shape)
    if packs(config):
        tokens = shape.packed_tokens(batch, config.max_len)
        # Items, targets and positions, and the layout's segment and offset per token.
        batch_ids = PACKED_IDS * allocation(tokens, 8)
        activations = packed_activation_memory(model, tokens, config.bf16)
    else:
        tokens = batch * config.max_len
        batch_ids = 2 * allocation(tokens, 8)  # the batch's inputs and targets
        activations = activation_memory(model, batch, config.bf16)
    return ModelTerms(
        params=parameter_bytes(model),
        dataset=dataset_bytes(shape, config.max_len),
        batch_ids=batch_ids, activations=activations,
        loss_tokens=tokens, table_rows=shape.num_items + 1, loss_backward_extra=0,
        inference_extra=lambda users: inference_extra(model, users, config.bf16))


def _bert4rec_terms(config: ClozeConfig, shape: DatasetShape, batch: int) -> ModelTerms:
    model = BERT4RecConfig(num_items=shape.num_items, max_len=config.max_len,
                           hidden=config.hidden, num_blocks=config.num_blocks,
                           num_heads=config.num_heads, dropout=config.dropout)
    masked = masked_capacity(batch, config.max_len, config.mask_prob)
    rows = bert4rec_memory.table_rows(model)
    users, length = shape.num_users, config.max_len
    return ModelTerms(
        params=bert4rec_memory.parameter_bytes(model),
        # Training windows, validation and test histories (each L wide, int64), and an
        # epoch's permutation or a split's targets.
        dataset=3 * allocation(users * length, 8) + allocation(users, 8),
        batch_ids=bert4rec_memory.batch_bytes(batch, length, masked),
        activations=bert4rec_memory.activation_memory(model, batch, masked, config.bf16),
        loss_tokens=masked, table_rows=rows,
        loss_backward_extra=allocation(rows * config.hidden, 4),
        inference_extra=lambda users: bert4rec_memory.inference_extra(model, users, config.bf16))


# The sequence models by `TrainConfig.model`: what each declares for a step.
MODEL_TERMS = {"sasrec": _sasrec_terms, "bert4rec": _bert4rec_terms}


def check_described(config: TrainConfig) -> None:
    """Raises ValueError, saying why, for a step this model does not describe or training
    refuses (a caller must not trust, or launch, an estimate of it)."""
    loss = config.loss
    if not loss.sparse_item_grad:
        return
    if loss.name != "cce_minus":
        raise ValueError(f"--sparse-item-grad with --loss {loss.name}: the memory model "
                         "describes sparse item gradients with the fused loss only (the "
                         "PyTorch references cast the whole table); use --loss cce_minus")
    if loss.negative_mode == "per_position":
        raise ValueError("--sparse-item-grad per position: the memory model describes sparse "
                         "item gradients in the shared and tile modes (measured there); use "
                         "--negative-mode shared or tile")
    if config.batches == "packed":
        raise ValueError("--sparse-item-grad with --batches packed: the memory model "
                         "describes sparse item gradients over length or random batches "
                         "(measured there); leave --batches to auto")


def estimate(config: TrainConfig, shape: DatasetShape,
             profile: MemoryProfile | None = None, gpus: int = 1) -> MemoryBreakdown:
    """Peak GPU memory of training `config` on a dataset of `shape`, in closed form; the
    config's `model` (SASRec, BERT4Rec) says whose terms. With `gpus` > 1, the peak of one
    GPU of a data-parallel run (`tuner.sequences.data_parallel`): its share of each batch
    (the largest, ceil(B / gpus) users), the whole model, and DistributedDataParallel's
    gradient buckets (a copy of the gradients it reduces through)."""
    profile = profile or DEFAULT_PROFILE
    autocast = config.bf16
    batch = -(-min(config.batch_size, shape.num_users) // gpus)
    model = MODEL_TERMS[config.model](config, shape, batch)

    params = model.params
    persistent = {
        "parameters": params,
        "Adam state": 2 * params,
        "dataset on device": model.dataset,
        # Steps replayed from CUDA graphs, and evaluation beside them, run on a capture stream
        # whose cuBLAS workspace stands in for the default stream's (measured: 15 graphed
        # points of `verify-memory --grid packed-graphs`).
        "library workspaces": profile.workspace_bytes,
    }
    if gpus > 1:
        persistent["gradient buckets"] = params
    base = sum(persistent.values())
    activations = model.activations
    loss = loss_memory(config.loss, model.loss_tokens, shape.num_items, config.hidden, autocast)
    act_scale, loss_scale = profile.activation_scale, profile.loss_scale
    saved = act_scale * activations.saved + loss_scale * loss.saved
    item_grad = allocation(model.table_rows * config.hidden, 4)
    if config.loss.sparse_item_grad:
        table = _sparse_table_step(config, model, shape.num_items)
        loss_gradient = table.loss
        at_the_end = table.end + (params - item_grad)
        gradients = {"gradients": params - item_grad + table.summed,
                     "SparseAdam scratch": table.scratch}
    else:
        loss_gradient = item_grad
        # The embedding lookup's dense gradient added to the table's: two tables beside the
        # other parameters' gradients, once the activations are gone.
        at_the_end = 2 * item_grad + (params - item_grad)
        gradients = {"gradients": params}  # Adam is fused on the GPU: no temporaries

    moments = {
        "forward": {
            "batch ids": model.batch_ids,
            "saved activations": act_scale * activations.saved,
            "loss saved": loss_scale * loss.saved,
            "forward temporaries": max(act_scale * activations.forward_extra,
                                       loss_scale * loss.forward_extra),
        },
        "backward": {
            "batch ids": model.batch_ids,
            "saved activations": act_scale * activations.saved,
            "loss saved": loss_scale * loss.saved,
            "gradients in flight": max(
                loss_scale * loss.backward_extra + model.loss_backward_extra,
                loss_gradient + act_scale * activations.backward_extra
                - loss_scale * loss.saved,
                at_the_end - saved,
            ),
        },
        "optimizer step": gradients,
        "evaluation": _evaluation(config, model.inference_extra, shape, autocast, act_scale),
    }
    phases = {name: base + int(sum(terms.values())) for name, terms in moments.items()}
    phase = max(phases, key=phases.get)
    terms = {**persistent, **{name: int(v) for name, v in moments[phase].items()}}
    peak = phases[phase]
    reserved = int(peak * (1 + profile.fragmentation))
    return MemoryBreakdown(terms, phase, phases, peak, reserved, reserved + profile.context_bytes)


@dataclass(frozen=True)
class SparseTableStep:
    """The item table's sparse gradient over a step (`--sparse-item-grad`, `cce_minus`)."""

    loss: int  # the loss's gradient (kernels.memory.sparse_item_gradient)
    end: int  # the backward's end: the lookup's gradient made, then summed with the loss's
    summed: int  # the table's gradient for the optimizer: autograd concatenates the two
    scratch: int  # SparseAdam's: the sum coalesced, and its moments' arrays of that shape


# SparseAdam's float32 arrays of the coalesced gradient's shape alive at once beside it
# (torch.optim._functional.sparse_adam: the moments' old values and their updates, and the
# coalesced copy of an update it adds): 5 fits the H200's sparse grid within 0.3 %, where 4
# and 6 are up to 7 % off (benchmarks/results/memory-h200-sparse.md).
SPARSE_ADAM_ARRAYS = 5


def expected_distinct(draws: int, rows: int) -> int:
    """Distinct rows among `draws` uniform draws of `rows`, on average: the most that any
    sampling gives (uniform maximises it), so a bound for popularity-skewed targets too."""
    return min(draws, math.ceil(-rows * math.expm1(draws * math.log1p(-1 / rows))))


def _sparse_table_step(config: TrainConfig, model: ModelTerms,
                       num_items: int) -> SparseTableStep:
    dim, tokens, rows = config.hidden, model.loss_tokens, num_items + 1
    positions = compact_positions(config.loss, tokens, num_items)
    loss = sparse_item_gradient(config.loss, tokens, num_items, dim)
    # nn.Embedding(sparse=True, padding_idx=0)'s backward: beside its incoming float32
    # gradient, the non-padding rows (at most every token) copied out with their ids.
    lookup = allocation(tokens * dim, 4) + allocation(tokens, 8)
    summed_rows = (positions or rows) + tokens
    summed = allocation(summed_rows * dim, 4) + allocation(summed_rows, 8)
    end = loss + lookup + max(allocation(tokens * dim, 4) + allocation(tokens, 1), summed)
    # Coalescing sorts the sum's row ids (keys and order) and sums repeated rows: a row per
    # table row when the loss's gradient names every one, else the positions' distinct rows
    # (the lookup's inputs are the targets shifted by one: no more rows).
    unique = rows if positions is None else expected_distinct(positions, rows)
    coalesced = allocation(unique * dim, 4) + allocation(unique, 8)
    scratch = (coalesced + 2 * allocation(summed_rows, 8)
               + SPARSE_ADAM_ARRAYS * allocation(unique * dim, 4))
    return SparseTableStep(loss, end, summed, scratch)


def _evaluation(config: TrainConfig, inference: Callable[[int], int], shape: DatasetShape,
                autocast: bool, act_scale: float) -> dict[str, int]:
    """Full ranking, one batch of users at a time: first their forward, then their scores
    over the whole catalog in float32 (under autocast beside the bf16 ones they are cast
    from, or the bf16 table copy that made those) and the top 11's workspace, about 4 bytes per
    catalog item (traced on an H200 at 1M items)."""
    users = min(users_per_batch(config.eval_batch_size, shape.num_items), shape.num_users)
    rows = shape.num_items + 1
    scores = allocation(users * rows, 4)
    if autocast:
        low = allocation(users * rows, 2)
        scores = max(scores + low, low + allocation(rows * config.hidden, 2))
    # The seen items' (row, column) pairs that are masked: at most a window per user.
    seen = 2 * allocation(users * config.max_len, 8)
    ranking = scores + allocation(rows, 4) + seen
    return {
        "evaluation batch": allocation(users * config.max_len, 8),
        "evaluation forward or scores": max(
            int(act_scale * inference(users)), ranking),
    }


DEFAULT_PROFILE = MemoryProfile()

SOLVE_LIMIT = 1 << 22  # the largest value --solve tries
# The share of its budget under which a tuning run launches a trial's estimate (`--margin`'s
# default): the rest covers the estimate's error.
LAUNCH_MARGIN = 0.9
SOLVABLE = {"batch-size": "batch_size", "max-len": "max_len", "negatives": "num_negatives"}


def with_knob(config: TrainConfig, knob: str, value: int) -> TrainConfig:
    """`config` with one solvable knob (batch-size, max-len or negatives) set to `value`."""
    if knob == "negatives":
        return replace(config, loss=replace(config.loss, num_negatives=value))
    return replace(config, **{SOLVABLE[knob]: value})


def solve(config: TrainConfig, shape: DatasetShape, budget_bytes: float, knob: str,
          profile: MemoryProfile | None = None, upper: int = SOLVE_LIMIT) -> int:
    """The largest value of `knob` (batch-size, max-len or negatives) that fits the budget,
    the others fixed: a binary search, as every term grows with each knob."""
    if knob not in SOLVABLE:
        raise CceTuneError(f"--solve {knob!r}: choose one of {', '.join(SOLVABLE)}")

    def fits(value: int) -> bool:
        return estimate(with_knob(config, knob, value), shape, profile).fits(budget_bytes)

    if not fits(1):
        smallest = estimate(with_knob(config, knob, 1), shape, profile)
        raise CceTuneError(f"even {knob} 1 needs {format_bytes(smallest.total)}, over the "
                           f"budget of {format_bytes(budget_bytes)}")
    low, high = 1, upper
    if fits(high):
        return high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


