"""The grids of configurations that `verify-memory` measures, importable without torch."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from cce_tune.kernels.config import LOSSES as ALL_LOSSES
from cce_tune.kernels.config import NEGATIVE_MODES, SINGLE_NEGATIVE, LossConfig
from cce_tune.tuner.memory import DatasetShape
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig


@dataclass(frozen=True)
class GridPoint:
    loss: str
    batch_size: int
    negatives: int
    max_len: int
    hidden: int
    num_items: int
    bf16: bool
    negative_mode: str = "shared"
    in_kernel: bool = False
    mask_prob: float | None = None  # BERT4Rec's point (the cloze task), else SASRec's
    batches: str = "length"  # packed: every user's full window packed, B x L + 1 tokens
    cuda_graphs: bool = False
    tile_size: int = 128  # what the committed grids were measured at
    sparse_item_grad: bool = False

    def config(self) -> TrainConfig:
        negatives = 1 if self.loss in SINGLE_NEGATIVE else self.negatives
        config = TrainConfig(loss=LossConfig(self.loss, num_negatives=negatives,
                                             negative_mode=self.negative_mode,
                                             tile_size=self.tile_size,
                                             in_kernel_negatives=self.in_kernel,
                                             sparse_item_grad=self.sparse_item_grad),
                             batch_size=self.batch_size, max_len=self.max_len,
                             hidden=self.hidden, bf16=self.bf16, device="cuda",
                             batches=self.batches, cuda_graphs=self.cuda_graphs)
        if self.mask_prob is None:
            return config
        return ClozeConfig(**{f.name: getattr(config, f.name) for f in fields(config)},
                           mask_prob=self.mask_prob)

    def shape(self) -> DatasetShape:
        # Enough users for a full batch and an evaluation pass; the data term stays small.
        return DatasetShape(num_users=2 * self.batch_size, num_items=self.num_items)

    def group(self) -> str:
        """The memory-model branch this point exercises: loss, negative layout, id source
        (and the model, for BERT4Rec's points)."""
        group = memory_group(self.loss, self.negative_mode, self.in_kernel)
        if self.sparse_item_grad:
            group += " sparse"
        if self.batches == "packed":
            group += " packed"
        if self.cuda_graphs:
            group += " graphs"
        return group if self.mask_prob is None else f"bert4rec {group}"


def memory_group(loss: str, negative_mode: str, in_kernel: bool) -> str:
    """A name per distinct memory declaration: 'ce_minus per_position', 'cce_minus tile
    in-kernel', 'bce', 'ce'. Losses without negatives (or with a fixed layout) have one."""
    if loss in ("ce", "cce"):
        return loss
    if loss == "bce":  # one negative per position, whatever the mode says
        return "bce"
    return f"{loss} {negative_mode}" + (" in-kernel" if in_kernel else "")


def sparse_groups() -> set[tuple[str, bool]]:
    """Every (group, bf16) a run with a sparse item gradient can be configured into, that
    the memory model describes: the fused loss's shared and tile modes (its per-position
    mode draws ids in the kernels, or names every row; the references cast the table)."""
    return {(memory_group("cce_minus", mode, in_kernel) + " sparse", bf16)
            for mode, in_kernel, bf16 in itertools.product(("shared", "tile"), (False, True),
                                                           (False, True))}


def launchable_groups() -> set[tuple[str, bool]]:
    """Every (group, bf16) a training run can be configured into: what verification must
    cover before the tuner may trust the model for it."""
    groups = {memory_group(loss, mode, in_kernel)
              for loss, mode, in_kernel in itertools.product(ALL_LOSSES, NEGATIVE_MODES,
                                                             (False, True))
              if not in_kernel or loss == "cce_minus"}
    return {(group, bf16) for group in groups for bf16 in (False, True)}


def default_grid() -> list[GridPoint]:
    """The shared-negative grid of 56 points, then every other negative layout and id source.

    On the MovieLens-20M catalog, 8 (B, L, d, N) shapes x the 4 losses, bf16 on every other
    shape; on a 1M-item catalog the same shapes for the sampled losses, and 4 shapes of few
    tokens for the full-catalog ones (the fused full CE over 1M items and 100k tokens is
    minutes of compute per step, and the reference's logits exceed any GPU). Then per-position
    and tile points for the reference and fused losses, bce and gbce, fp32 and bf16, up to
    about 105 GB (per-position references gather tokens x N x d rows)."""
    points = []
    for loss, (index, (b, length, d, n)) in itertools.product(LOSSES, enumerate(SHAPES)):
        points.append(GridPoint(loss, b, n, length, d, 26_744, bf16=index % 2 == 1))
    for loss, (index, (b, length, d, n)) in itertools.product(("ce_minus", "cce_minus"),
                                                             enumerate(SHAPES)):
        points.append(GridPoint(loss, b, n, length, d, 1_000_000, bf16=index % 2 == 1))
    for loss, (b, length, d, bf16) in itertools.product(("ce", "cce"), FEW_TOKENS):
        points.append(GridPoint(loss, b, 1, length, d, 1_000_000, bf16))
    for (loss, mode, in_kernel), shapes in LAYOUTS.items():
        for b, length, d, n, items, bf16 in shapes:
            points.append(GridPoint(loss, b, n, length, d, items, bf16, mode, in_kernel))
    return points


LOSSES = ("ce", "ce_minus", "cce", "cce_minus")
SHAPES = [  # batch, max_len, hidden, negatives
    (64, 50, 64, 128), (256, 200, 64, 512), (128, 400, 128, 2048), (512, 100, 256, 8192),
    (2048, 50, 128, 1024), (1024, 200, 256, 4096), (256, 400, 256, 256), (2048, 100, 64, 8192),
]
FEW_TOKENS = [(64, 50, 64, False), (64, 50, 128, True), (64, 50, 256, True),
              (128, 50, 64, True)]  # batch, max_len, hidden, bf16

# Per-position references hold tokens x N x d gathered rows: the four shapes issue 20 measured
# (up to 105 GB), and small ones.
_PER_POSITION_REFERENCE = [  # batch, max_len, hidden, negatives, catalog, bf16
    (64, 200, 128, 512, 26_744, True), (128, 100, 64, 1024, 26_744, False),
    (32, 512, 256, 1512, 26_744, True), (64, 512, 256, 1512, 26_744, True),
    (64, 50, 64, 128, 26_744, False), (256, 100, 64, 64, 1_000_000, False),
]
_TILE = [
    (256, 200, 128, 4096, 26_744, True), (1024, 200, 256, 4096, 26_744, True),
    (2048, 50, 128, 1024, 26_744, False), (64, 50, 64, 128, 26_744, False),
    (512, 100, 256, 2048, 1_000_000, True), (256, 400, 64, 512, 1_000_000, False),
]
_FUSED_PER_POSITION = [
    (256, 512, 256, 511, 26_744, True), (512, 200, 64, 2048, 26_744, False),
    (128, 400, 128, 4095, 26_744, True), (64, 50, 64, 128, 26_744, False),
    (512, 100, 256, 1024, 1_000_000, True), (256, 200, 64, 511, 1_000_000, False),
]
_FUSED_TILE = [
    (256, 200, 256, 4095, 26_744, True), (1024, 200, 128, 8192, 26_744, False),
    (2048, 50, 64, 1024, 26_744, True), (64, 50, 64, 128, 26_744, False),
    (512, 100, 256, 2048, 1_000_000, True), (256, 400, 64, 512, 1_000_000, False),
]
_FUSED_SHARED = [
    (256, 200, 256, 4095, 26_744, True), (2048, 100, 64, 8192, 26_744, False),
    (64, 50, 64, 128, 26_744, False), (512, 100, 256, 2048, 1_000_000, True),
]
_BCE = [
    (256, 200, 64, 1, 26_744, True), (1024, 200, 256, 1, 26_744, False),
    (64, 50, 64, 1, 26_744, False), (512, 100, 128, 1, 1_000_000, True),
]
_GBCE_SHARED = [
    (256, 200, 64, 512, 26_744, True), (512, 100, 256, 8192, 26_744, False),
    (64, 50, 64, 128, 26_744, False), (512, 100, 128, 2048, 1_000_000, True),
]
LAYOUTS: dict[tuple[str, str, bool], list[tuple]] = {
    ("ce_minus", "per_position", False): _PER_POSITION_REFERENCE,
    ("ce_minus", "tile", False): _TILE,
    ("gbce", "per_position", False): _PER_POSITION_REFERENCE[:3] + _PER_POSITION_REFERENCE[4:],
    ("gbce", "tile", False): _TILE,
    ("gbce", "shared", False): _GBCE_SHARED,
    ("bce", "per_position", False): _BCE,
    ("cce_minus", "per_position", False): _FUSED_PER_POSITION,
    ("cce_minus", "per_position", True): _FUSED_PER_POSITION,
    ("cce_minus", "tile", False): _FUSED_TILE,
    ("cce_minus", "tile", True): _FUSED_TILE,
    ("cce_minus", "shared", True): _FUSED_SHARED,
}


def tiny_grid() -> list[GridPoint]:
    """A handful of small points: checks the command end to end in seconds."""
    return [GridPoint(loss, 32, 64, 20, 32, 1_000, bf16=False)
            for loss in ("ce", "ce_minus", "cce", "cce_minus")]


def bert4rec_grid() -> list[GridPoint]:
    """BERT4Rec (the cloze task, mask_prob 0.15 to 0.4): 43 points, the default grid's
    shapes for the shared-negative losses and each layout of the sampled ones, fp32 and
    bf16; the loss's tokens are the masked ones, about mask_prob of B x L."""
    points = []
    probs = (0.15, 0.2, 0.3, 0.4)
    for loss, (index, (b, length, d, n)) in itertools.product(LOSSES, enumerate(SHAPES)):
        points.append(GridPoint(loss, b, n, length, d, 26_744, bf16=index % 2 == 1,
                                mask_prob=probs[index % 4]))
    for (loss, mode, in_kernel), shapes in LAYOUTS.items():
        b, length, d, n, items, bf16 = shapes[0]
        points.append(GridPoint(loss, b, n, length, d, items, bf16, mode, in_kernel,
                                mask_prob=0.2))
    return points


def packed_grid() -> list[GridPoint]:
    """SASRec's packed step (`--batches packed`, bf16, where the variable-length kernel runs):
    the default grid's points in bf16, then a point of each loss group and two shapes
    replayed from CUDA graphs, whose pool holds the step's memory between replays."""
    points = list(dict.fromkeys(replace(point, bf16=True, batches="packed")
                                for point in default_grid()))
    graphed = [point for point in points if point.num_items < 1_000_000
               and point.batch_size * point.max_len <= 256 * 400]
    return points + [replace(point, cuda_graphs=True)
                     for point in list({p.group(): p for p in graphed}.values())]


def packed_graphs_grid() -> list[GridPoint]:
    """The packed grid's points replayed from CUDA graphs alone: seconds, not minutes."""
    return [point for point in packed_grid() if point.cuda_graphs]


def per_position_grid() -> list[GridPoint]:
    """The default grid's per-position points alone (references and fused, every id
    source): what a change to those losses' declarations is checked on, in minutes."""
    return [point for point in default_grid() if point.negative_mode == "per_position"]


def full_catalog_grid() -> list[GridPoint]:
    """The default grid's fused full-catalog points alone (12: bf16 at d 64 has the forward
    write d(hidden)'s directions, the others the hidden pass)."""
    return [point for point in default_grid() if point.loss == "cce"]


# batch, max_len, hidden, negatives, catalog, bf16, negative mode, in-kernel ids
_SPARSE = [
    (256, 200, 256, 4095, 26_744, True, "shared", False),
    (64, 50, 64, 128, 26_744, False, "shared", False),
    (512, 100, 256, 2048, 1_000_000, True, "shared", False),
    (2048, 50, 64, 1024, 1_000_000, False, "shared", True),
    (1024, 128, 256, 4095, 10_000_000, True, "shared", True),  # issue 19's bar shape
    (256, 200, 256, 4095, 26_744, True, "tile", False),  # more positions than rows
    (512, 100, 256, 2048, 1_000_000, True, "tile", False),
    (128, 200, 64, 8192, 10_000_000, False, "tile", False),
    (256, 200, 128, 512, 1_000_000, False, "tile", True),
    (1024, 128, 256, 4095, 10_000_000, True, "tile", True),
    # Measured after SparseAdam's arrays were counted on the ten above: held out.
    (512, 200, 128, 1024, 1_000_000, True, "shared", False),
    (128, 400, 64, 4095, 500_000, True, "shared", True),
    (256, 100, 256, 8192, 2_000_000, False, "tile", False),
    (2048, 50, 128, 2048, 5_000_000, True, "tile", True),
]


def sparse_grid() -> list[GridPoint]:
    """`--sparse-item-grad` with the fused loss: each group of `sparse_groups`, catalogs of
    26,744 to 10 M items, compact and whole-table accumulators (14 points)."""
    return [GridPoint("cce_minus", b, n, length, d, items, bf16, mode, in_kernel,
                      sparse_item_grad=True)
            for b, length, d, n, items, bf16, mode, in_kernel in _SPARSE]


# batch, max_len, negatives, catalog, negative mode, in-kernel ids, sparse item gradient
_CUBLAS = [
    (256, 400, 256, 26_744, "shared", False, False),  # the default grid's
    (1024, 128, 2048, 26_744, "shared", True, False),  # issue 19's fp32 bar shape
    (256, 128, 512, 1_000_000, "shared", False, False),  # a compact accumulator
    (1024, 128, 2048, 26_744, "tile", False, False),
    (256, 128, 512, 1_000_000, "tile", True, False),  # compact
    (100, 37, 300, 26_744, "tile", False, False),  # a ragged last tile (3,700 tokens)
    (512, 100, 2048, 1_000_000, "tile", False, True),
    (256, 100, 8192, 2_000_000, "tile", False, True),  # the sparse grid's
    # Few tokens of many negatives: the chunk's buffers set the step's peak.
    (64, 64, 8192, 26_744, "tile", False, False),
    (64, 64, 8192, 26_744, "shared", True, False),
]


def cublas_grid() -> list[GridPoint]:
    """Float32 at d 256 in the shared and tile modes, whose products cuBLAS makes a chunk at
    a time (kernels.cublas_chunks): 10 points, ids read and drawn, dense, compact and
    sparse item gradients, two where the chunk's buffers set the step's peak."""
    return [GridPoint("cce_minus", b, n, length, 256, items, False, mode, in_kernel,
                      sparse_item_grad=sparse)
            for b, length, n, items, mode, in_kernel, sparse in _CUBLAS]


GRIDS: dict[str, Callable[[], list[GridPoint]]] = {
    "default": default_grid, "tiny": tiny_grid, "bert4rec": bert4rec_grid,
    "packed": packed_grid, "packed-graphs": packed_graphs_grid,
    "per-position": per_position_grid, "sparse": sparse_grid,
    "full-catalog": full_catalog_grid, "cublas": cublas_grid}
