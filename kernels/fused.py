"""CCE- and full-catalog CCE: the fused losses' public functions and their autograd glue.

    >>> loss = cce_minus(hidden, item_emb, targets, negatives)            # explicit ids
    >>> loss = cce_minus(hidden, item_emb, targets,
    ...                  InKernelNegatives(4095, mode="tile", tile_size=128))
    >>> loss = cce(hidden, item_emb, targets)                             # all items

Conventions are those of `kernels.reference`: hidden (tokens, d), item_emb (rows, d) whose row
0 is padding and never a class, targets (tokens,) with 0 for padding tokens. Per-token losses
come out of one kernel in float32; the reduction is plain PyTorch on them.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, replace

import torch
import triton
from torch import nn

from cce_tune.kernels import config, cublas_chunks
from cce_tune.kernels.cce_backward import (
    cce_minus_backward_hidden_kernel,
    cce_minus_backward_items_kernel,
    directions_backward_kernel,
    launch_args,
)
from cce_tune.kernels.cce_buckets import add_item_gradient
from cce_tune.kernels.cce_forward import catalog_lse_kernel, cce_minus_forward_kernel
from cce_tune.kernels.cce_scores import (
    IDS_CATALOG,
    IDS_EXPLICIT,
    IDS_RANDOM,
    draw_negatives_kernel,
    precision_for,
)
from cce_tune.kernels.compact import compact_accumulator, expand_gradient, sparse_gradient
from cce_tune.kernels.config import (
    DEFAULT_TILE_SIZE,
    NEGATIVE_MODES,
    gathers_on_tensor_cores,
    per_position_forward_tile,
    products_in_cublas,
    row_block,
)
from cce_tune.kernels.reference import check_reduction


@dataclass(frozen=True)
class InKernelNegatives:
    """Uniform negatives drawn on the GPU from a seed by a counter-based generator (Philox).

    Per position, every kernel pass regenerates each program's ids, so the (tokens x N) id
    tensor never exists (4.3 GB of int64 at 131,072 tokens and N = 4,095). In the shared
    and tile modes the table is small ((tokens / tile) x N) and is drawn once per forward
    as int32 with the same formula: regenerating it in every program of every pass measured
    slower (benchmarks/results/passes-h100.md). `seed=None` draws one from torch's
    generator on the tensors' device, so `torch.manual_seed` makes runs repeatable; the
    kernels read it from memory, so a step replayed from a CUDA graph draws anew each time.
    """

    num_negatives: int
    mode: str = "tile"
    tile_size: int = DEFAULT_TILE_SIZE
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be in [0, 2**31) (an int32 on the device), got "
                             f"{self.seed}")


# Bytes of (hidden + pipelined item) tiles a program may stage, by input element size. The
# compiler stages more than these tiles: measured on an H100 (232 KB per block), fp16 at
# 115 KB of tiles compiled; fp32 at 82 KB asked 233 KB, since tf32x3 splits each operand.
SHARED_BUDGET = {2: 140 * 1024, 4: 72 * 1024}


# Half-precision hidden states may score a float32 item table: the kernels convert its rows
# as they load them, so the table is never cast whole (kernels.losses does so for a sparse
# item gradient, whose point is to touch few rows).
HALF = (torch.float16, torch.bfloat16)

LOG2E = 1.4426950408889634
KERNELS = ("forward", "hidden", "items")  # the forward pass and the two backward passes


@dataclass(frozen=True)
class Blocks:
    """Tile shape and launch settings of one kernel."""

    # Tokens per program (forward, hidden) or per inner step (items); per position, the
    # item pass's pairs per inner step (kernels.cce_buckets).
    t: int
    # Negatives per inner step (forward, hidden; per position, of each token) or per program
    # (items; unused by the per-position item pass).
    n: int
    warps: int
    stages: int


# (BLOCK_T, BLOCK_N, warps, stages) of each kernel, fastest or within a few per cent of it at
# the points swept on an H100 (benchmarks/results/passes-h100-{full-d64,n512-d64}.md for rows
# of up to 256 bytes, -{n4095-d256,full-d256}.md for longer ones). The tile mode's hidden
# pass (and the shared mode's, when folded) also adds the negatives' gradient, once per
# program: a whole tile per program.
SHORT_ROW_BLOCKS = {"forward": Blocks(64, 128, 4, 3), "hidden": Blocks(64, 64, 4, 3),
                    "items": Blocks(64, 64, 4, 3), "hidden + items": Blocks(128, 64, 4, 2)}
LONG_ROW_BLOCKS = {"forward": Blocks(128, 32, 4, 3), "hidden": Blocks(64, 64, 4, 2),
                   "items": Blocks(64, 64, 4, 3), "hidden + items": Blocks(128, 64, 8, 2)}

# The full catalog's forward writing d(hidden)'s directions over rows of over 256 bytes: its
# float32 sum of rows is BLOCK_T x d, so 8 warps. At 51,200 x 26,744 x 256 bf16 on an H200,
# 3.65 ms against 4.05-7.35 at 4 other shapes and 13.8 at LONG_ROW_BLOCKS' (which spills)
# (benchmarks/results/passes-h200-full-d256-directions.md).
DIRECTIONS_LONG_ROW_FORWARD = Blocks(128, 64, 8, 2)

# The dense item pass (shared negatives, the full catalog) scores (items, tokens) blocks
# (cce_backward's TRANSPOSED) for rows of up to this many bytes, in these blocks: at d 64
# bf16 on an H200, 1.20 -> 0.84 ms over the full catalog at 51,200 tokens and 0.34 -> 0.24
# shared at 131,072 x 2,048; at d 256 it was slower (3.11 -> 3.28 ms, 1.01 -> 1.30, 96 ->
# 131 over 1M items), so longer rows keep (tokens, items) blocks
# (benchmarks/results/passes-h200-s19-*.md). Rows of 256 bytes were not measured.
TRANSPOSED_ITEMS_ROW_BYTES = 128
TRANSPOSED_ITEMS_BLOCKS = Blocks(128, 128, 4, 2)

# Elements of directions a program of directions_backward_kernel scales (64 tokens at d 64),
# and catalog_lse_kernel combines at a time (its float32 sums in registers).
DIRECTION_BLOCK_ELEMENTS = 4096

# Batch-shared negatives: up to this many atomic adds (token blocks x N x d) the hidden
# pass adds the negatives' gradient itself, as in the tile mode, and the item pass is not
# launched. On an H100 folding was faster at every point up to 2**25 (one launch fewer on a
# host-bound step) and slower at most points of 2**27 (benchmarks/results/shared-fold-*.md).
SHARED_FOLD_ATOMICS = 2**25


# float32 at d 256 (the one width measured) in tiles under config.CUBLAS_MIN_TILE (cuBLAS
# makes the products in the shared mode and larger tiles): tf32x3's split operands stage so
# much shared memory that no tile of 64 tokens compiles (311-459 KB asked); at 32 the tile
# mode's hidden pass took 120 ms at (32, 16) and 319 ms at (32, 32), IEEE products on the
# CUDA cores 30 ms at (32, 32). The forward stays on tf32x3 (9 ms against 36). A step at
# 131,072 x 2,048 on an H200, tile 128: 128 -> 39 ms (benchmarks/results/
# passes-h200-fp32-d256.md, kernels-h200-fp32-d256*.md); tile 16, 69.3 ms against PyTorch's
# 85.1 (kernels-h200-fp32-d256-tile16-from64.md). Other widths keep tf32x3: not measured.
CUDA_CORE_BLOCK_D = 256
CUDA_CORE_BLOCKS = Blocks(32, 32, 4, 2)

# The forward and hidden passes over products that cuBLAS made (kernels.cublas_chunks): no
# product of their own, a (tokens, negatives) block of scores read (and written) per step.
# The fastest of 5 shapes at 131,072 x 2,048 x 256 float32 on an H200, shared: forward 0.97
# -> 0.72 ms, hidden 1.03 -> 0.82 against (16, 64, 4, 2); tile 128: 1.52 -> 1.16, 1.52 ->
# 1.02 (benchmarks/results/passes-h200-fp32-d256-cublas.md). No item pass: cuBLAS makes
# the item gradient.
SCORES_GIVEN_BLOCKS = {"forward": Blocks(16, 128, 4, 2),
                       "hidden": Blocks(config.SCORES_GIVEN_TOKENS, 128, 8, 2)}


def on_cuda_cores(kernel: str, dtype: torch.dtype, block_d: int) -> bool:
    """Whether `kernel`'s products over `dtype` inputs (hidden and table alike) run as IEEE
    fp32 on the CUDA cores rather than tf32x3 on the tensor cores, in the sampled dense
    modes where cuBLAS does not make them (`config.products_in_cublas`)."""
    return kernel != "forward" and dtype == torch.float32 and block_d == CUDA_CORE_BLOCK_D


@functools.cache  # a step's host time counts at small sizes: decide once per shape
def choose_blocks(kernel: str, dtype: torch.dtype, block_d: int, gather: bool,
                  items_in_hidden: bool, tile_size: int | None,
                  cuda_cores: bool = False, tensor_gather: bool = False,
                  directions: bool = False, scores_given: bool = False) -> Blocks:
    """Block shapes of `kernel` (one of KERNELS): the measured table, shrunk to fit the
    shared-memory budget (float32 rows are twice as long) and to one tile (`tile_size`);
    CUDA_CORE_BLOCKS for products on the CUDA cores (`on_cuda_cores`), SCORES_GIVEN_BLOCKS
    for products from cuBLAS; DIRECTIONS_LONG_ROW_FORWARD for a dense forward writing
    directions over long rows."""
    if gather:  # per position: the forward and kernels.cce_buckets' item pass (no hidden pass)
        # On the CUDA cores the passes sum a register tile of gathered rows both across d
        # (the scores) and across its rows (d(hidden)'s directions; an item's gradient): one
        # warp a program keeps the rows in each thread's registers, where more warps split
        # them and summed through shared memory each step (the forward 53 -> 32 ms at d 256
        # on an H200). Tiles: the fastest of
        # benchmarks/results/passes-h200-per-position-{d256,d64,items-d256,items-d64}.md; the
        # tensor-core forward's, kernels.config's.
        if kernel == "items":  # kernels.cce_buckets: BLOCK_S pairs' hidden rows per step
            return Blocks(max(8, min(64, 2048 // block_d)), 1, 1, 2)
        tokens, negatives = per_position_forward_tile(block_d, dtype.itemsize, tensor_gather)
        return Blocks(tokens, negatives, 4 if tensor_gather else 1, 2)
    if scores_given or cuda_cores:
        fixed = SCORES_GIVEN_BLOCKS[kernel] if scores_given else CUDA_CORE_BLOCKS
        return fixed if tile_size is None else replace(fixed, t=min(fixed.t, tile_size))
    row_bytes = block_d * dtype.itemsize
    if kernel == "items" and items_transposed(block_d, dtype):
        return TRANSPOSED_ITEMS_BLOCKS
    table = SHORT_ROW_BLOCKS if row_bytes <= 256 else LONG_ROW_BLOCKS
    blocks = table["hidden + items" if items_in_hidden and kernel == "hidden" else kernel]
    if kernel == "forward" and directions and row_bytes > 256:
        blocks = DIRECTIONS_LONG_ROW_FORWARD
    if tile_size is not None:
        blocks = replace(blocks, t=min(blocks.t, tile_size))
    budget = SHARED_BUDGET[min(dtype.itemsize, 4)]
    while (blocks.t + blocks.stages * blocks.n) * row_bytes > budget:
        if blocks.stages > 2:
            blocks = Blocks(blocks.t, blocks.n, blocks.warps, blocks.stages - 1)
        elif blocks.t > 32:
            blocks = Blocks(blocks.t // 2, blocks.n, blocks.warps, blocks.stages)
        elif blocks.n > 16:  # tensor-core products need 16 rows at least
            blocks = Blocks(blocks.t, blocks.n // 2, blocks.warps, blocks.stages)
        else:
            break
    return blocks


def items_transposed(block_d: int, dtype: torch.dtype) -> bool:
    """Whether the dense item pass scores (items, tokens) blocks (TRANSPOSED_ITEMS_ROW_BYTES)."""
    return block_d * dtype.itemsize <= TRANSPOSED_ITEMS_ROW_BYTES


@dataclass(frozen=True)
class _Plan:
    """Everything the three kernels need besides tensors: modes, constants, block sizes."""

    id_source: int
    gather: bool  # per position: each token's own rows
    # The forward writes d(hidden)'s directions where hidden's gradient is wanted, and the
    # backward has no hidden pass: per position, and over the full catalog in half precision
    # (config.catalog_directions).
    forward_directions: bool
    # Float32 rows of 256 and more, shared and tile modes: products from cuBLAS, a chunk at
    # a time (config.products_in_cublas, kernels.cublas_chunks).
    cublas: bool
    tensor_gather: bool  # ... scored on the tensor cores (config.gathers_on_tensor_cores)
    tiled: bool
    tile_size: int
    items_in_hidden: bool  # the hidden pass adds the negatives' gradient; no item pass
    items_transposed: bool  # the item pass scores (items, tokens) blocks
    num_negatives: int
    num_items: int
    inv_temperature: float
    log2_others: float
    has_log_q: bool
    sampled_softmax: bool
    sparse_item_grad: bool  # the table's gradient as a sparse tensor of the touched rows
    precisions: dict[str, str]  # tl.dot's input precision, by kernel
    blocks: dict[str, Blocks]  # by kernel
    block_d: int

    @property
    def scale(self) -> float:
        """Raw dot product to score in log2 units (see kernels.cce_scores)."""
        return LOG2E * self.inv_temperature

    def programs(self, tokens: int) -> int:
        """Programs of the forward kernel: its per-program partial sums have one column each."""
        return triton.cdiv(tokens, self.blocks["forward"].t)

    def constants(self, kernel: str) -> dict:
        """Compile-time settings of `kernel`."""
        blocks = self.blocks[kernel]
        return dict(ID_SOURCE=self.id_source, HAS_LOG_Q=self.has_log_q,
                    SAMPLED_SOFTMAX=self.sampled_softmax,
                    DOT_PRECISION=self.precisions[kernel],
                    BLOCK_T=blocks.t, BLOCK_N=blocks.n, BLOCK_D=self.block_d,
                    num_warps=blocks.warps, num_stages=blocks.stages)


# Triton reads TRITON_INTERPRET as a kernel module is imported: set later, the kernels stay
# compiled ones, which CPU tensors cannot run (the launch fails deep in Triton).
_INTERPRETED_AT_IMPORT = os.environ.get("TRITON_INTERPRET") == "1"


def _cpu_refusal() -> str | None:
    """Why the kernels cannot take CPU tensors in this process, or None: they can, under
    Triton's interpreter."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return ("the fused losses run on CUDA tensors (or under TRITON_INTERPRET=1); use "
                "cce_tune.kernels.reference on the CPU")
    if not _INTERPRETED_AT_IMPORT:
        return ("TRITON_INTERPRET=1 was set after cce_tune.kernels was imported, and Triton "
                "reads it at import: set it in the environment first (TRITON_INTERPRET=1 "
                "python ...)")
    return None


def _check_inputs(hidden, item_emb, targets) -> None:
    if hidden.dim() != 2 or item_emb.dim() != 2 or hidden.shape[1] != item_emb.shape[1]:
        raise ValueError(f"hidden (tokens, d) and item_emb (rows, d) must share d; got "
                         f"{tuple(hidden.shape)} and {tuple(item_emb.shape)}")
    if targets.shape != hidden.shape[:1] or targets.dtype.is_floating_point:
        raise ValueError(f"targets must be integer ids, one per token ({hidden.shape[0]}); got "
                         f"{targets.dtype} {tuple(targets.shape)}")
    mixed = item_emb.dtype == torch.float32 and hidden.dtype in HALF
    if hidden.dtype != item_emb.dtype and not mixed:
        raise ValueError(f"hidden is {hidden.dtype} but item_emb is {item_emb.dtype}: give "
                         f"both one dtype, or a float32 item_emb with half-precision hidden")
    refusal = None if hidden.is_cuda else _cpu_refusal()
    if refusal:
        raise ValueError(refusal)
    if not hidden.is_cuda and torch.bfloat16 in (hidden.dtype, item_emb.dtype):
        # Measured: a loss of 2.2e10 where float32 and float16 give 7.96.
        raise ValueError("Triton's interpreter computes bfloat16 wrongly: on the CPU give "
                         "float32 or float16 tensors, or use cce_tune.kernels.reference")


def _plan(hidden, item_emb, *, id_source, gather, tiled, tile_size, num_negatives,
          temperature, has_log_q, sampled_softmax, sparse_item_grad=False) -> _Plan:
    block_d = row_block(hidden.shape[1])
    if tiled and (tile_size < 16 or tile_size & (tile_size - 1)):
        raise ValueError(f"tile_size must be a power of two >= 16, got {tile_size}")
    # Tiles staged by the wider of the two dtypes (a float32 table's rows beside half hidden).
    wider = max(hidden.dtype, item_emb.dtype, key=lambda dtype: dtype.itemsize)
    # (Per position there is no hidden pass: the forward and kernels.cce_buckets do its work.)
    sampled_dense = not gather and id_source != IDS_CATALOG
    cublas = sampled_dense and products_in_cublas("tile" if tiled else "shared",
                                                  hidden.dtype.itemsize, block_d, tile_size)
    cuda_cores = {kernel: sampled_dense and not cublas
                  and on_cuda_cores(kernel, hidden.dtype, block_d) for kernel in KERNELS}
    tensor_gather = gather and gathers_on_tensor_cores(wider.itemsize, block_d)
    items_in_hidden = not cublas and (tiled or (sampled_dense and _fold_shared(
        hidden.shape[0], num_negatives, block_d, wider, cuda_cores["hidden"])))
    forward_directions = gather or (id_source == IDS_CATALOG
                                    and config.catalog_directions(block_d, wider.itemsize))
    # The forward writes them where hidden's gradient will be wanted (`_graded`).
    writes_directions = (forward_directions and torch.is_grad_enabled()
                         and hidden.requires_grad)
    blocks = {kernel: choose_blocks(kernel, wider, block_d, gather, items_in_hidden,
                                    tile_size if tiled else None, cuda_cores[kernel],
                                    tensor_gather, writes_directions and not gather, cublas)
              for kernel in (tuple(SCORES_GIVEN_BLOCKS) if cublas else KERNELS)}
    for kernel in ("forward", "hidden"):
        if tiled and tile_size % blocks[kernel].t:
            raise ValueError(f"tile_size {tile_size} is not a multiple of the {kernel} "
                             f"kernel's {blocks[kernel].t}-token block")
    return _Plan(
        id_source=id_source, gather=gather, forward_directions=forward_directions,
        cublas=cublas, tensor_gather=tensor_gather, tiled=tiled,
        tile_size=tile_size, items_in_hidden=items_in_hidden,
        items_transposed=items_transposed(block_d, wider),
        num_negatives=num_negatives, num_items=item_emb.shape[0] - 1,
        inv_temperature=1.0 / temperature, log2_others=math.log2(max(1, item_emb.shape[0] - 2)),
        has_log_q=has_log_q, sampled_softmax=sampled_softmax, sparse_item_grad=sparse_item_grad,
        precisions={kernel: precision_for(hidden.dtype, cuda_cores[kernel])
                    for kernel in blocks},
        blocks=blocks, block_d=block_d,
    )


def _fold_shared(tokens: int, num_negatives: int, block_d: int, dtype: torch.dtype,
                 cuda_cores: bool) -> bool:
    """Whether batch-shared negatives' gradient is few enough atomic adds for the hidden
    pass (SHARED_FOLD_ATOMICS)."""
    blocks = choose_blocks("hidden", dtype, block_d, False, True, None, cuda_cores)
    return triton.cdiv(tokens, blocks.t) * num_negatives * block_d <= SHARED_FOLD_ATOMICS


def _output(shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Uninitialised memory for results the kernels write in full (tests poison it)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """Any row stride is fine; columns must be contiguous."""
    return t if t.stride(-1) == 1 else t.contiguous()


class _CCEMinus(torch.autograd.Function):
    """Forward and backward kernels; the reduction is inside, so autograd sees one node.

    The forward kernel writes per-token losses and per-program (loss sum, token count);
    `sum` and `mean` reduce those few partial sums, and the backward kernels read the count,
    so no elementwise pass over per-token losses runs in either direction (each was a kernel
    launch, and small steps are bound by the host's launches: benchmarks/step_time.py).
    """

    @staticmethod
    def forward(ctx, hidden, item_emb, targets, ids, seed, log_q, plan: _Plan, reduction: str):
        hidden, item_emb = _rows(hidden), _rows(item_emb)
        targets = targets.contiguous()  # the kernels index it by token
        tokens = hidden.shape[0]
        loss, lse, pos, shift = _output((4, tokens), torch.float32, hidden.device)
        partials = _output((2, plan.programs(tokens)), torch.float32, hidden.device)
        ids_arg = ids if ids is not None else targets  # unused pointer when ids are generated
        log_q_arg = log_q if log_q is not None else lse
        # Per position, and over the full catalog in half precision, the forward also writes
        # d(hidden)'s directions (kernels.cce_forward).
        directions = (_output(hidden.shape, torch.float32, hidden.device)
                      if plan.forward_directions and ctx.needs_input_grad[0] else None)
        # Per position the forward draws its ids into a scratch, a few steps' per program
        # (kernels.cce_forward).
        blocks = plan.blocks["forward"]
        drawn = (torch.empty((plan.programs(tokens), config.DRAWN_STEPS * blocks.t * blocks.n),
                             dtype=torch.int32, device=hidden.device)
                 if plan.gather and plan.id_source == IDS_RANDOM else lse)
        # Per position, where the table's gradient will be wanted, the forward counts the
        # counting sort's pairs too (kernels.cce_buckets), where that was measured faster
        # and their table is small.
        counts_here = plan.gather and ctx.needs_input_grad[1] and config.counts_in_forward(
            plan.id_source == IDS_RANDOM, plan.tensor_gather)
        count_chunks = (config.forward_count_chunks(tokens, plan.num_negatives,
                                                    item_emb.shape[0]) if counts_here else 0)
        counted = (torch.zeros((count_chunks, item_emb.shape[0]), dtype=torch.int32,
                               device=hidden.device) if count_chunks else None)
        # Over the full catalog, each token block's columns in parts where that spreads the
        # work more evenly over the multiprocessors; their running maxima and sums are
        # combined per token after (catalog_lse_kernel).
        parts = _catalog_parts(plan, tokens, hidden.shape[1], directions is not None,
                               hidden.device)
        column_blocks = triton.cdiv(plan.num_negatives, blocks.n)
        part_stats = (_output((2, parts, tokens), torch.float32, hidden.device)
                      if parts > 1 else lse)
        # ... and their softmax-weighted rows, for the directions (unused pointers: lse).
        directions_arg = directions if directions is not None else lse
        part_rows = (_output((parts, *hidden.shape), torch.float32, hidden.device)
                     if parts > 1 and directions is not None else directions_arg)
        if plan.cublas:
            cublas_chunks.forward(hidden, item_emb, targets, ids, log_q_arg, loss, lse, pos,
                                  shift, partials, plan)
        else:
            cce_minus_forward_kernel[(plan.programs(tokens), parts)](
                hidden, hidden.stride(0), item_emb, item_emb.stride(0), targets,
                ids_arg, ids_arg.stride(0) if ids_arg.dim() == 2 else 0, log_q_arg,
                loss, lse, pos, shift, partials, part_rows,
                drawn, counted if counted is not None else lse, item_emb.shape[0],
                config.pair_chunks(tokens, plan.num_negatives)[0], part_stats,
                triton.cdiv(column_blocks, parts) * blocks.n, lse, 0, partials.stride(0),
                tokens, hidden.shape[1], plan.num_negatives, plan.num_items, plan.tile_size,
                seed, plan.scale, plan.log2_others,
                GATHER=plan.gather, TENSOR_GATHER=plan.tensor_gather, TILED=plan.tiled,
                SCORES_GIVEN=False, DIRECTIONS=directions is not None,
                DRAWN_STEPS=config.DRAWN_STEPS, COUNTED=counted is not None, SPLIT=parts > 1,
                **plan.constants("forward"),
            )
        if parts > 1:
            catalog_lse_kernel[(plan.programs(tokens),)](
                part_stats, targets, pos, loss, lse, partials, partials.stride(0), part_rows,
                directions_arg,
                item_emb, item_emb.stride(0), tokens, hidden.shape[1], parts,
                DIRECTIONS=directions is not None, BLOCK_T=blocks.t,
                BLOCK_P=triton.next_power_of_2(parts),
                CHUNK_D=min(plan.block_d, DIRECTION_BLOCK_ELEMENTS // blocks.t))
        totals = None if reduction == "none" else partials.sum(1)
        ctx.save_for_backward(hidden, item_emb, targets, ids, seed, log_q, lse, pos, shift,
                              totals, directions, counted)
        ctx.plan, ctx.mean = plan, reduction == "mean"
        if reduction == "none":
            return loss
        return totals[0] / totals[1].clamp(min=1) if ctx.mean else totals[0]

    @staticmethod
    def backward(ctx, grad_loss):
        (hidden, item_emb, targets, ids, seed, log_q, lse, pos, shift, totals,
         directions, counted) = ctx.saved_tensors
        plan: _Plan = ctx.plan
        grad_loss = grad_loss.float()
        owners, d_items = None, None  # a frozen table (no gradient wanted) gets none computed
        if ctx.needs_input_grad[1]:
            owners, d_items = (compact_accumulator(targets, ids, item_emb.shape[0],
                                                   hidden.shape[1])
                               or (None, torch.zeros(item_emb.shape, dtype=torch.float32,
                                                     device=hidden.device)))
        if plan.forward_directions:
            # The item gradient first: per position its slot array is gone before d(hidden).
            if d_items is not None and plan.gather:
                add_item_gradient(hidden, item_emb, targets, ids, seed, log_q, lse, pos, shift,
                                  grad_loss, totals, d_items, owners, counted, plan=plan,
                                  mean=ctx.mean, blocks=plan.blocks["items"],
                                  processors=_processors_of(hidden.device))
            elif d_items is not None:
                _item_pass(hidden, item_emb, targets, ids, seed, log_q, lse, shift, grad_loss,
                           totals, d_items, owners, plan, ctx.mean)
            d_hidden = _from_directions(directions, hidden, targets, grad_loss, totals,
                                        d_items, owners, plan, ctx.mean)
        else:
            d_hidden = _output(hidden.shape, hidden.dtype, hidden.device)
            if plan.cublas:
                cublas_chunks.backward(hidden, item_emb, targets, ids, log_q, lse, pos, shift,
                                       grad_loss, totals, d_hidden, ctx.needs_input_grad[0],
                                       d_items, owners, plan, ctx.mean)
            else:
                _dense_backward(hidden, item_emb, targets, ids, seed, log_q, lse, pos, shift,
                                grad_loss, totals, d_hidden, d_items, owners, plan, ctx.mean)
        if d_items is not None:
            d_items = d_items.to(item_emb.dtype)  # frees the float32 rows before the table
            if plan.sparse_item_grad:
                d_items = sparse_gradient(targets, None if owners is None else ids, d_items,
                                          item_emb.shape[0])
            elif owners is not None:
                d_items = expand_gradient(owners, d_items)
        return d_hidden, d_items, None, None, None, None, None, None


def _from_directions(directions, hidden, targets, grad_loss, totals, d_items, owners,
                     plan: _Plan, mean: bool) -> torch.Tensor | None:
    """d(hidden) from the forward's directions (None: hidden is frozen, none written) and
    the upstream gradient; over the full catalog also the targets' item-gradient rows into
    `d_items` (None: a frozen table)."""
    target_rows = d_items is not None and not plan.gather
    if directions is None and not target_rows:
        return None
    unused = grad_loss  # the pointer for a tensor the kernel does not read
    args = launch_args(targets, unused, None, None, owners, totals, grad_loss)
    d_hidden = None if directions is None else _output(hidden.shape, hidden.dtype,
                                                       hidden.device)
    block_t = max(1, DIRECTION_BLOCK_ELEMENTS // plan.block_d)
    directions_backward_kernel[(triton.cdiv(hidden.shape[0], block_t),)](
        unused if directions is None else directions, hidden, hidden.stride(0), targets,
        grad_loss, args.grad_stride, args.totals, unused if d_hidden is None else d_hidden,
        0 if d_hidden is None else d_hidden.stride(0), d_items if target_rows else unused,
        d_items.stride(0) if target_rows else 0, args.owners, hidden.shape[0],
        hidden.shape[1], plan.inv_temperature, HIDDEN=d_hidden is not None,
        TARGET_ROWS=target_rows, COMPACT=target_rows and owners is not None, MEAN=mean,
        BLOCK_T=block_t, BLOCK_D=plan.block_d)
    return d_hidden


def _dense_backward(hidden, item_emb, targets, ids, seed, log_q, lse, pos, shift, grad_loss,
                    totals, d_hidden, d_items, owners, plan: _Plan, mean: bool) -> None:
    """The shared and tile modes' backward where the kernels make the products
    (`_Plan.cublas` false), and the full catalog's where the forward wrote no directions
    (`_Plan.forward_directions`): the hidden pass, and the item pass
    where the hidden pass does not add the negatives' gradient itself (`d_items` None: the
    table is frozen, no item gradient at all)."""
    tokens, dim = hidden.shape
    args = launch_args(targets, lse, ids, log_q, owners, totals, grad_loss)
    item_grad = d_items is not None
    d_items = d_items if item_grad else d_hidden  # an unused pointer when frozen
    hidden_blocks = plan.blocks["hidden"]
    cce_minus_backward_hidden_kernel[(triton.cdiv(tokens, hidden_blocks.t),)](
        hidden, hidden.stride(0), item_emb, item_emb.stride(0), targets, args.ids,
        args.ids_stride, args.log_q, lse, pos, shift, grad_loss, args.grad_stride, args.totals,
        d_hidden, d_hidden.stride(0), d_items, d_items.stride(0), args.owners, lse, 0,
        tokens, dim, plan.num_negatives, plan.num_items, plan.tile_size, seed, plan.scale,
        plan.inv_temperature, TILED=plan.tiled, ITEM_GRAD=item_grad,
        ITEMS_HERE=plan.items_in_hidden, COMPACT=owners is not None, MEAN=mean,
        SCORES_GIVEN=False, **plan.constants("hidden"),
    )
    if item_grad and not plan.items_in_hidden:
        _item_pass(hidden, item_emb, targets, ids, seed, log_q, lse, shift, grad_loss, totals,
                   d_items, owners, plan, mean)


def _item_pass(hidden, item_emb, targets, ids, seed, log_q, lse, shift, grad_loss, totals,
               d_items, owners, plan: _Plan, mean: bool) -> None:
    """The dense modes' item pass: the negatives' (or the catalog's) gradient rows added
    into `d_items` (kernels.cce_backward)."""
    tokens, dim = hidden.shape
    args = launch_args(targets, lse, ids, log_q, owners, totals, grad_loss)
    chunk, chunks = _token_chunks(plan, tokens, hidden.device)
    cce_minus_backward_items_kernel[(triton.cdiv(plan.num_negatives,
                                                 plan.blocks["items"].n), chunks)](
        hidden, hidden.stride(0), item_emb, item_emb.stride(0), targets, args.ids,
        args.ids_stride, args.log_q, lse, shift, grad_loss, args.grad_stride, args.totals,
        d_items, d_items.stride(0), args.owners, tokens, dim, plan.num_negatives,
        plan.num_items, chunk, seed, plan.scale, plan.inv_temperature,
        COMPACT=owners is not None, MEAN=mean, TRANSPOSED=plan.items_transposed,
        **plan.constants("items"),
    )


def _token_chunks(plan: _Plan, tokens: int, device: torch.device) -> tuple[int, int]:
    """(tokens per chunk, chunks) for the item-gradient grid: the tokens split only as far
    as fills the GPU evenly (config.balanced_parts), as each split costs N x d atomic adds."""
    blocks = plan.blocks["items"]
    token_blocks = triton.cdiv(tokens, blocks.t)
    chunks = config.balanced_parts(triton.cdiv(plan.num_negatives, blocks.n), token_blocks,
                                   _processors_of(device))
    chunk = triton.cdiv(token_blocks, chunks) * blocks.t
    return chunk, triton.cdiv(tokens, chunk)


def _catalog_parts(plan: _Plan, tokens: int, dim: int, directions: bool,
                   device: torch.device) -> int:
    """Parts of the full catalog per token block of the forward (1 in the sampled modes): as
    many as fill the GPU evenly (config.balanced_parts), at most
    config.catalog_part_limit."""
    if plan.id_source != IDS_CATALOG:
        return 1
    blocks = plan.blocks["forward"]
    return min(config.catalog_part_limit(tokens, dim, directions),
               config.balanced_parts(triton.cdiv(tokens, blocks.t),
                                     triton.cdiv(plan.num_negatives, blocks.n),
                                     _processors_of(device)))


def _processors_of(device: torch.device) -> int:
    """Multiprocessors of a GPU; 2 for the interpreter on the CPU (grids of a few programs)."""
    return _processors(device.index) if device.type == "cuda" else 2


@functools.cache
def _processors(device_index: int | None) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def cce_minus(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor | InKernelNegatives,
    *,
    tile_size: int | None = None,
    reduction: str = "mean",
    temperature: float = 1.0,
    log_q: torch.Tensor | None = None,
    sampled_softmax: bool = False,
    sparse_item_grad: bool = False,
) -> torch.Tensor:
    """Fused `kernels.reference.ce_minus`: same arguments, same result, no logits in memory.

    `negatives` is an id tensor, (N,) shared, (tokens, N) per position, or (tiles, N) with
    `tile_size`, or an `InKernelNegatives` to draw them inside the kernels.
    `sparse_item_grad` returns `item_emb`'s gradient as a sparse tensor (as
    `nn.Embedding(sparse=True)` does): an entry per position the batch names (targets and
    ids) where they are fewer than the table's rows, which is where it saves memory (shared
    negatives, or a catalog far larger than the batch's ids), else an entry per row. It needs
    the negatives' ids: explicit, or drawn in the shared and tile modes, not per position in
    the kernels.
    """
    _check_inputs(hidden, item_emb, targets)
    if isinstance(negatives, InKernelNegatives):
        if negatives.mode not in NEGATIVE_MODES:
            raise ValueError(f"unknown negative mode {negatives.mode!r}; choose one of "
                             f"{NEGATIVE_MODES}")
        mode, num_negatives = negatives.mode, negatives.num_negatives
        tile_size = negatives.tile_size if mode == "tile" else None
        seed = _seed(negatives.seed, hidden.device)
        if mode == "per_position":
            ids, id_source = None, IDS_RANDOM
        else:
            ids = _draw_ids(negatives, seed, hidden.shape[0], item_emb.shape[0] - 1,
                            torch.int32)
            id_source = IDS_EXPLICIT
    else:
        ids, id_source, seed = negatives, IDS_EXPLICIT, targets  # the seed is not read
        if ids.dtype.is_floating_point or ids.dim() not in (1, 2):
            raise ValueError(f"negatives must be integer ids, (N,) or (rows, N); got "
                             f"{ids.dtype} {tuple(ids.shape)}")
        num_negatives = ids.shape[-1]
        if ids.dim() == 1:
            mode = "shared"
        else:
            mode = "tile" if tile_size is not None else "per_position"
            rows = triton.cdiv(hidden.shape[0], tile_size) if tile_size else hidden.shape[0]
            if ids.shape[0] != rows:
                raise ValueError(f"{mode} negatives need {rows} rows, got {ids.shape[0]}")
        ids = _rows(ids)
    if sparse_item_grad and ids is None:
        raise ValueError("sparse_item_grad needs the negatives' ids: the shared or tile mode, "
                         "or explicit ids; per position in the kernels, no id is stored")
    if log_q is not None and log_q.shape != item_emb.shape[:1]:
        raise ValueError(f"log_q needs one value per row of item_emb ({item_emb.shape[0]}), "
                         f"got {tuple(log_q.shape)}")
    plan = _plan(hidden, item_emb, id_source=id_source, gather=mode == "per_position",
                 tiled=mode == "tile", tile_size=tile_size or 1, num_negatives=num_negatives,
                 temperature=temperature, has_log_q=log_q is not None,
                 sampled_softmax=sampled_softmax, sparse_item_grad=sparse_item_grad)
    log_q = None if log_q is None else (log_q.float() * LOG2E).contiguous()
    return _CCEMinus.apply(*_graded(hidden, item_emb), targets, ids, seed, log_q, plan,
                           check_reduction(reduction))


def cce(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    *,
    reduction: str = "mean",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Fused `kernels.reference.ce`: cross-entropy over every item, logits never stored."""
    _check_inputs(hidden, item_emb, targets)
    num_items = item_emb.shape[0] - 1
    plan = _plan(hidden, item_emb, id_source=IDS_CATALOG, gather=False, tiled=False,
                 tile_size=1, num_negatives=num_items, temperature=temperature,
                 has_log_q=False, sampled_softmax=False)
    return _CCEMinus.apply(*_graded(hidden, item_emb), targets, None, targets, None, plan,
                           check_reduction(reduction))


def _graded(hidden: torch.Tensor, item_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs as the loss's node sees them: detached under `torch.no_grad()`, so that the
    forward prepares nothing for a backward that will not run (per position: d(hidden)'s
    directions, the counting sort's counts); `needs_input_grad` follows requires_grad alone."""
    if torch.is_grad_enabled():
        return hidden, item_emb
    return hidden.detach(), item_emb.detach()


def in_kernel_ids(
    negatives: InKernelNegatives, num_tokens: int, num_items: int, device: torch.device | str
) -> torch.Tensor:
    """The ids that `negatives` (with its seed set) makes the kernels draw, as a tensor in the
    layout `cce_minus` accepts: for checking and debugging, never needed to train."""
    if negatives.seed is None:
        raise ValueError("in_kernel_ids needs InKernelNegatives with a seed")
    return _draw_ids(negatives, _seed(negatives.seed, torch.device(device)), num_tokens,
                     num_items, torch.int64)


def _seed(seed: int | None, device: torch.device) -> torch.Tensor:
    """The kernels' Philox seed as one int32 on `device`: `seed`, or drawn there from torch's
    generator (no wait for the device, and a graph replay draws anew)."""
    if seed is None:
        return torch.randint(0, 2**31 - 1, (1,), dtype=torch.int32, device=device)
    return torch.full((1,), seed, dtype=torch.int32, device=device)


def _draw_ids(negatives: InKernelNegatives, seed: torch.Tensor, num_tokens: int,
              num_items: int, dtype: torch.dtype) -> torch.Tensor:
    if negatives.mode == "shared":
        rows = 1
    elif negatives.mode == "tile":
        rows = triton.cdiv(num_tokens, negatives.tile_size)
    else:
        rows = num_tokens
    ids = _output((rows, negatives.num_negatives), dtype, seed.device)
    block_n = 64
    draw_negatives_kernel[(rows, triton.cdiv(negatives.num_negatives, block_n))](
        ids, negatives.num_negatives, num_items, seed, BLOCK_N=block_n)
    return ids[0] if negatives.mode == "shared" else ids


class CCEMinus(nn.Module):
    """`cce_minus` as a module, configured once: `CCEMinus(temperature=0.5)(h, e, t, negs)`."""

    def __init__(self, *, tile_size: int | None = None, reduction: str = "mean",
                 temperature: float = 1.0, sampled_softmax: bool = False,
                 sparse_item_grad: bool = False) -> None:
        super().__init__()
        self.options = dict(tile_size=tile_size, reduction=reduction, temperature=temperature,
                            sampled_softmax=sampled_softmax, sparse_item_grad=sparse_item_grad)

    def forward(self, hidden, item_emb, targets, negatives, log_q=None) -> torch.Tensor:
        return cce_minus(hidden, item_emb, targets, negatives, log_q=log_q, **self.options)


class CCE(nn.Module):
    """`cce` as a module: `CCE()(hidden, item_emb, targets)`."""

    def __init__(self, *, reduction: str = "mean", temperature: float = 1.0) -> None:
        super().__init__()
        self.options = dict(reduction=reduction, temperature=temperature)

    def forward(self, hidden, item_emb, targets) -> torch.Tensor:
        return cce(hidden, item_emb, targets, **self.options)
