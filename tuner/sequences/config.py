"""What one training run is: plain data, importable without torch (the memory model reads it)."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

from cce_tune.kernels.config import LossConfig

# How users are put in batches (`--batches`, `tuner.sequences.batching`).
ORDERS = ("length", "random", "packed")
# The command line's default: the fastest step the run can take (`resolve_auto`).
AUTO = "auto"


def check_batches(batches: str, auto: bool = True) -> None:
    """Raises ValueError unless `batches` is one of ORDERS (or, with `auto`, AUTO), naming
    them."""
    allowed = (*ORDERS, AUTO) if auto else ORDERS
    if batches not in allowed:
        raise ValueError(f"--batches {batches}: choose one of {', '.join(allowed)}")


@dataclass(frozen=True)
class TrainConfig:
    """SASRec's run: next-item prediction at every position."""

    # The sequence model it trains (`tuner.sequences.objectives` builds it, `tuner.memory`
    # sizes it); a class attribute, so a run's JSON does not carry it.
    model: ClassVar[str] = "sasrec"

    loss: LossConfig = field(default_factory=LossConfig)
    batch_size: int = 128
    max_len: int = 50
    hidden: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    lr: float = 1e-3
    epochs: int = 5  # the cap
    # Stop once validation NDCG@10 has not improved for this many epochs (0: train every
    # epoch); the model of the best epoch is the one tested.
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    # Which users share a batch and how it is laid out, one of ORDERS:
    # "length", users of similar length; "random"; "packed", random users' real items end to
    # end (SASRec). Each batch is cut to its longest sequence, or packed, and weighted by its
    # tokens. Or AUTO, which the trainer makes concrete (`resolve_auto`).
    batches: str = "length"
    # The encoder compiled by torch.compile (norms, dropout and element-wise work fused, far
    # fewer launches; the first step waits for the compile). The memory model describes
    # the eager step.
    compile: bool = False
    # Steps replayed from CUDA graphs, one per batch shape (`tuner.sequences.graphed_steps`):
    # the host launches a whole step at once. SASRec on a GPU.
    cuda_graphs: bool = False
    exclude_seen: bool = True
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        check_batches(self.batches)
        if self.cuda_graphs and self.loss.sparse_item_grad:
            raise ValueError("--cuda-graphs and --sparse-item-grad do not combine: SparseAdam "
                             "counts the touched rows on the host, which a graph cannot replay")


@functools.cache
def variable_length_attention() -> bool:
    """Whether the installed torch has FlashAttention's variable-length kernel
    (`torch.nn.attention.varlen`, torch >= 2.10), on which packed batches are fast and which
    the memory model describes; read from torch's version, without importing it."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    found = re.match(r"(\d+)\.(\d+)", version)
    return found is not None and tuple(map(int, found.groups())) >= (2, 10)


def resolve_auto(config: TrainConfig, data_parallel: bool = False) -> TrainConfig:
    """`config` with `batches` "auto" made concrete: SASRec in bf16 (which needs a CUDA GPU)
    packs its batches and replays its steps from CUDA graphs, the fastest step measured
    (benchmarks/results/step-h200.md), unless data parallel or with a sparse item gradient,
    which neither combines with, or on a torch without the variable-length kernel; anything
    else is grouped by length. Other values stay."""
    if config.batches != AUTO:
        return config
    fast = (config.model == "sasrec" and config.bf16 and not data_parallel
            and not config.loss.sparse_item_grad and variable_length_attention())
    return replace(config, batches="packed" if fast else "length",
                   cuda_graphs=config.cuda_graphs or fast)


def data_parallel_refusal(config: TrainConfig, where: str) -> str | None:
    """Why data-parallel training (`where`: the flag or launcher that makes it so) cannot
    train `config`, or None. NCCL reduces no sparse gradient, a rank's share of a packed
    batch would be cut by width, and graphs are captured per process: one home for the
    refusal that `estimate`, `tune` and `train` each make."""
    refused = [why for why, on in (
        ("--sparse-item-grad (NCCL reduces no sparse gradient)", config.loss.sparse_item_grad),
        ("--batches packed (a rank's share would be cut by width)", config.batches == "packed"),
        ("--cuda-graphs (graphs are captured per process)", config.cuda_graphs)) if on]
    if not refused:
        return None
    return (f"data-parallel training ({where}) takes none of {', '.join(refused)}: leave "
            f"{'it' if len(refused) == 1 else 'them'} out (--batches auto neither packs nor "
            "graphs there)")


CLOZE_GRAPHS = ("--cuda-graphs: BERT4Rec's step has not been replayed from graphs on a GPU "
                "yet (its masking no longer waits for the device, but nothing has checked it "
                "there); use it with --model sasrec")


@dataclass(frozen=True)
class ClozeConfig(TrainConfig):
    """BERT4Rec's run: the cloze task, each real item of a training sequence masked with
    probability `mask_prob` (at least one a sequence) and predicted from both sides; with
    probability `last_item_prob` a sequence instead has only its last item masked, the
    paper's extra samples that train the task evaluation asks (the next item, from the left
    alone)."""

    model: ClassVar[str] = "bert4rec"

    mask_prob: float = 0.2
    last_item_prob: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cuda_graphs:
            raise ValueError(CLOZE_GRAPHS)
        if self.batches == "packed":
            raise ValueError("--batches packed: BERT4Rec's bidirectional attention is not "
                             "packed yet; use length or random with --model bert4rec")
        if self.loss.sparse_item_grad:
            raise ValueError("--sparse-item-grad: not for BERT4Rec yet (its item table is "
                             "scored without the mask token's row, a slice whose backward "
                             "takes no sparse gradient); use it with --model sasrec")
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask probability must be in (0, 1), got {self.mask_prob}")
        if not 0 <= self.last_item_prob <= 1:
            raise ValueError(
                f"last-item probability must be in [0, 1], got {self.last_item_prob}")


# Users per evaluation batch shrink so that a batch's (users x catalog) scores stay under
# this many elements: evaluation memory stays bounded at any catalog size.
MAX_SCORES = 2**27


def users_per_batch(batch_size: int, num_items: int) -> int:
    return max(1, min(batch_size, MAX_SCORES // (num_items + 1)))
