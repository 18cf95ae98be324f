"""Per-position item gradient without an atomic add per (token, negative, d): pairs bucketed
by item.

Per position every token has its own N rows, so adding each pair's p * h into the item
gradient as it comes is tokens x N x d atomic adds (17 G at 131,072 tokens, N = 511, d = 256:
18 ms on an H200, more than the forward's whole gather; benchmarks/per_position_floor.py).
Instead a counting sort groups the batch's (token, item) pairs by item, and one pass walks
them in that order: a run of one item's pairs sums its gradient in registers and adds it
once, reading each pair's hidden row (a gather, the forward's traffic) where the atomics
wrote a row.

1. `count_kernel`: pairs per item, one int32 atomic per pair. Accidental hits, padding ids
   and padding tokens make no pair; each kept target is a pair too, flagged. Where the
   forward pass counted them already (`count_own_pairs`, `config.counts_in_forward`, into a
   (chunks, items) table that `config.forward_count_chunks` admits), this pass is not
   launched.
2. Each item's first slot: an exclusive prefix sum (torch.cumsum).
3. `place_kernel`: each pair claims a slot of its item (an int32 atomic) and writes itself
   there, packed in one int64 (`_packed`): its token, the target flag and its item.
4. `items_kernel`: programs over equal ranges of slots, so a popular item's long run is
   shared, whatever the skew of the ids: a block of slots of one item adds into registers,
   flushed by one atomic add per run; a block that straddles items adds row by row.

Tokens are taken in chunks so that the slot array stays under `MAX_SLOTS` pairs. Nothing waits
for the GPU (the pair count is read on the device), so a CUDA graph can capture it all.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cce_tune.kernels import config
from cce_tune.kernels.cce_backward import (
    launch_args,
    upstream_factor,
    upstream_gradient,
)
from cce_tune.kernels.cce_scores import gradient_rows, load_seed, negative_ids, own_layout

PAIR_BLOCK = (16, 64)  # (tokens, negatives) per program of the counting and placing passes
# Programs of the item pass per multiprocessor, each over an equal range of slots. 8 to 64
# measured alike on an H200: the pass's registers (over 200 a thread) hold about 9 of its
# one-warp programs a multiprocessor whatever the grid
# (benchmarks/results/passes-h200-per-position-item-programs-*.md).
ITEM_PROGRAMS_PER_PROCESSOR = 8


@triton.jit
def _kept(ids, targets):
    """Which negatives `ids` of tokens with `targets` (broadcast alike) make pairs: not
    padding ids, not accidental hits, not of padding tokens."""
    return (targets != 0) & (ids != 0) & (ids.to(tl.int32) != targets.to(tl.int32))


@triton.jit
def count_own_pairs(counts_ptr, counts_row_stride, chunk_tokens, ids, targets_ptr, first,
                    num_tokens, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr,
                    FLAT: tl.constexpr):
    """The counting pass's work done by the per-position forward (its COUNTED): a step's
    pairs (`ids` of the BLOCK_T tokens from `first`, laid out by `own_layout`) counted into
    row `token // chunk_tokens` of the (chunks, items) counts, as `count_kernel` counts
    them."""
    token, _negative = own_layout(BLOCK_T, BLOCK_N, FLAT)
    tokens = first + token
    targets = tl.load(targets_ptr + tokens, mask=tokens < num_tokens, other=0)
    rows = (tokens // chunk_tokens).to(tl.int64) * counts_row_stride
    tl.atomic_add(counts_ptr + rows + ids, tl.full(ids.shape, 1, tl.int32),
                  mask=_kept(ids, targets), sem="relaxed")


@triton.jit
def count_own_targets(counts_ptr, counts_row_stride, chunk_tokens, offs_t, t_mask, targets):
    """`count_own_pairs`'s share of the targets: one pair each, of every real token."""
    rows = (offs_t // chunk_tokens).to(tl.int64) * counts_row_stride
    tl.atomic_add(counts_ptr + rows + targets, tl.full(targets.shape, 1, tl.int32),
                  mask=t_mask & (targets != 0), sem="relaxed")


@triton.jit
def _pairs(ids_ptr, ids_row_stride, targets_ptr, first_token, last_token, num_negatives,
           num_items, seed, ID_SOURCE: tl.constexpr, BLOCK_T: tl.constexpr,
           BLOCK_N: tl.constexpr):
    """This program's tokens, their targets (int64), its (BLOCK_T, BLOCK_N) negative ids as
    the forward pass drew them, which of those are pairs, and which targets are."""
    offs_t = first_token + tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < last_token
    targets = tl.load(targets_ptr + offs_t, mask=t_mask, other=0).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ids = negative_ids(ids_ptr, offs_t[:, None].to(tl.int64), ids_row_stride, offs_n[None, :],
                       t_mask[:, None] & (offs_n < num_negatives)[None, :], num_negatives,
                       num_items, seed, ID_SOURCE)
    valid = t_mask & (targets != 0)
    kept = t_mask[:, None] & _kept(ids, targets[:, None])
    # Targets once, by the first block of negatives (a tensor comparison: a boolean tensor
    # and a scalar condition combine to int32 in Triton 3.9's interpreter).
    first_block = (offs_t * 0 + tl.program_id(1)) == 0
    return offs_t, targets, ids, kept, valid & first_block


@triton.jit
def count_kernel(ids_ptr, ids_row_stride, targets_ptr, first_token, last_token, num_negatives,
                 num_items, seed_ptr, counts_ptr, ID_SOURCE: tl.constexpr,
                 BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):
    seed = load_seed(seed_ptr, ID_SOURCE)
    _tokens, targets, ids, kept, target_kept = _pairs(
        ids_ptr, ids_row_stride, targets_ptr, first_token, last_token, num_negatives,
        num_items, seed, ID_SOURCE, BLOCK_T, BLOCK_N)
    tl.atomic_add(counts_ptr + ids, tl.full(ids.shape, 1, tl.int32), mask=kept, sem="relaxed")
    tl.atomic_add(counts_ptr + targets, tl.full(targets.shape, 1, tl.int32), mask=target_kept,
                  sem="relaxed")


@triton.jit
def _packed(tokens, items, TARGET: tl.constexpr):
    """Pairs as one int64 each, so that placing one is one scattered store: token << 33 |
    TARGET << 32 | item (an item below 2^32, a token below 2^30)."""
    return (tokens.to(tl.int64) << 33) | (TARGET << 32) | items.to(tl.int64)


@triton.jit
def _unpacked(pairs):
    """`_packed`'s (token, is target, item), int64."""
    return pairs >> 33, ((pairs >> 32) & 1) == 1, pairs & 0xFFFFFFFF


@triton.jit
def place_kernel(ids_ptr, ids_row_stride, targets_ptr, first_token, last_token, num_negatives,
                 num_items, seed_ptr, cursor_ptr, pair_ptr,
                 ID_SOURCE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):
    seed = load_seed(seed_ptr, ID_SOURCE)
    tokens, targets, ids, kept, target_kept = _pairs(
        ids_ptr, ids_row_stride, targets_ptr, first_token, last_token, num_negatives,
        num_items, seed, ID_SOURCE, BLOCK_T, BLOCK_N)
    slots = tl.atomic_add(cursor_ptr + ids, tl.full(ids.shape, 1, tl.int32), mask=kept,
                          sem="relaxed")
    tl.store(pair_ptr + slots, _packed(tokens[:, None], ids, 0), mask=kept)
    slots = tl.atomic_add(cursor_ptr + targets, tl.full(targets.shape, 1, tl.int32),
                          mask=target_kept, sem="relaxed")
    tl.store(pair_ptr + slots, _packed(tokens, targets, 1), mask=target_kept)


@triton.jit
def _pair_weights(h, rows, items, tokens, is_target, mask, lse_ptr, pos_ptr, shift_ptr,
                  grad_ptr, grad_stride, totals_ptr, log_q_ptr, scale, inv_temperature,
                  MEAN: tl.constexpr, HAS_LOG_Q: tl.constexpr, SAMPLED_SOFTMAX: tl.constexpr):
    """d(loss)/d(score) of each pair: g (p - 1) for a target, g p for a negative, 0 off
    `mask`. `rows` (one row, or one per pair) are the items' embeddings."""
    g = upstream_gradient(grad_ptr, grad_stride, tokens, mask,
                          upstream_factor(totals_ptr, inv_temperature, MEAN))
    lse = tl.load(lse_ptr + tokens, mask=mask, other=0.0)
    scores = tl.sum(h * rows.to(tl.float32), axis=1) * scale
    if HAS_LOG_Q:
        scores -= tl.load(log_q_ptr + items, mask=mask, other=0.0)
    if SAMPLED_SOFTMAX:
        scores += tl.load(shift_ptr + tokens, mask=mask, other=0.0)
    pos = tl.load(pos_ptr + tokens, mask=mask & is_target, other=0.0)
    p = tl.where(is_target, tl.exp2(pos - lse) - 1.0, tl.exp2(scores - lse))
    return tl.where(mask, g * p, 0.0)


@triton.jit
def _add_run(de_ptr, de_row_stride, owner_ptr, item, offs_d, summed, mask,
             COMPACT: tl.constexpr):
    """Adds a run's summed gradient into its item's accumulator row, atomically: another
    program may hold the same item's run on either side of its slot range."""
    tl.atomic_add(de_ptr + gradient_rows(item, owner_ptr, COMPACT) * de_row_stride + offs_d,
                  summed, mask=mask, sem="relaxed")


# Not specialised on values: the slots per program change with every batch's shape.
@triton.jit(do_not_specialize=["slots_per_program"])
def items_kernel(pair_ptr, total_ptr, slots_per_program, h_ptr, h_row_stride,
                 e_ptr, e_row_stride, log_q_ptr, lse_ptr, pos_ptr, shift_ptr, grad_ptr,
                 grad_stride, totals_ptr, de_ptr, de_row_stride, owner_ptr, dim, scale,
                 inv_temperature, COMPACT: tl.constexpr, MEAN: tl.constexpr,
                 HAS_LOG_Q: tl.constexpr, SAMPLED_SOFTMAX: tl.constexpr,
                 BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    first = tl.program_id(0) * slots_per_program
    last = tl.minimum(first + slots_per_program, tl.load(total_ptr))
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    # The item of the run (int64, as every id the shared helpers take).
    current = _unpacked(tl.load(pair_ptr + first, mask=first < last, other=0))[2]
    row = tl.load(e_ptr + current * e_row_stride + offs_d, mask=d_mask, other=0.0)
    summed = tl.zeros([BLOCK_D], dtype=tl.float32)
    offs = first + tl.arange(0, BLOCK_S)
    mask = offs < last
    pairs = tl.load(pair_ptr + offs, mask=mask, other=0)
    for _ in range(first, last, BLOCK_S):
        tokens, is_target, items = _unpacked(pairs)
        h = tl.load(h_ptr + tokens[:, None] * h_row_stride + offs_d[None, :],
                    mask=mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
        # The next step's slots, read while this step's rows come in: read at the step's
        # start, each step waited for its slots and then for their rows, two round trips
        # with 9 one-warp programs a multiprocessor (their registers' limit): 17.3 -> 15.6
        # ms at d 256 N 511, 10.8 -> 8.1 at d 64 N 1,511 on an H200.
        next_offs = offs + BLOCK_S
        next_mask = next_offs < last
        next_pairs = tl.load(pair_ptr + next_offs, mask=next_mask, other=0)
        low = tl.min(tl.where(mask, items, 2**31 - 1), axis=0)
        high = tl.max(tl.where(mask, items, -1), axis=0)
        if low == high:  # one item: into the run's registers
            if low != current:
                _add_run(de_ptr, de_row_stride, owner_ptr, current, offs_d, summed, d_mask,
                         COMPACT)
                summed = tl.zeros([BLOCK_D], dtype=tl.float32)
                current = low
                row = tl.load(e_ptr + current * e_row_stride + offs_d, mask=d_mask, other=0.0)
            weights = _pair_weights(h, row[None, :], items, tokens, is_target, mask, lse_ptr,
                                    pos_ptr, shift_ptr, grad_ptr, grad_stride, totals_ptr,
                                    log_q_ptr, scale, inv_temperature, MEAN, HAS_LOG_Q,
                                    SAMPLED_SOFTMAX)
            summed += tl.sum(weights[:, None] * h, axis=0)
        else:  # a block across items: row by row
            rows = tl.load(e_ptr + items[:, None] * e_row_stride + offs_d[None, :],
                           mask=mask[:, None] & d_mask[None, :], other=0.0)
            weights = _pair_weights(h, rows, items, tokens, is_target, mask, lse_ptr, pos_ptr,
                                    shift_ptr, grad_ptr, grad_stride, totals_ptr, log_q_ptr,
                                    scale, inv_temperature, MEAN, HAS_LOG_Q, SAMPLED_SOFTMAX)
            targets = gradient_rows(items, owner_ptr, COMPACT)
            tl.atomic_add(de_ptr + targets[:, None] * de_row_stride + offs_d[None, :],
                          weights[:, None] * h, mask=mask[:, None] & d_mask[None, :],
                          sem="relaxed")
        offs, mask, pairs = next_offs, next_mask, next_pairs
    _add_run(de_ptr, de_row_stride, owner_ptr, current, offs_d, summed,
             d_mask & (offs_d * 0 + first < last), COMPACT)  # a tensor condition: see _pairs


def add_item_gradient(hidden: torch.Tensor, item_emb: torch.Tensor, targets: torch.Tensor,
                      ids: torch.Tensor | None, seed: torch.Tensor, log_q: torch.Tensor | None,
                      lse: torch.Tensor, pos: torch.Tensor, shift: torch.Tensor,
                      grad_loss: torch.Tensor, totals: torch.Tensor | None,
                      d_items: torch.Tensor, owners: torch.Tensor | None,
                      counted: torch.Tensor | None, *, plan, mean: bool, blocks,
                      processors: int) -> None:
    """Adds the per-position loss's item-table gradient into `d_items` (float32; the table's
    rows, or with `owners` the compact accumulator's), chunk by chunk of tokens. `counted`:
    each chunk's pairs per item as the forward counted them (`count_own_pairs`), or None to
    count them here. `plan` and `blocks` are `kernels.fused`'s (the loss's settings, this
    pass's tile)."""
    tokens, dim = hidden.shape
    device = hidden.device
    pairs_per_token = plan.num_negatives + 1  # at most: the negatives and the target
    chunk, capacity = config.pair_chunks(tokens, plan.num_negatives)
    if counted is not None and len(counted) != triton.cdiv(tokens, chunk):
        raise RuntimeError(f"the forward counted {len(counted)} chunks of pairs, the backward "
                           f"takes {triton.cdiv(tokens, chunk)}: kernels.config.MAX_SLOTS "
                           "changed between the two")
    # Table-sized int32 arrays reused by every chunk: the counts unless counted, each item's
    # end and its next free slot (the memory model counts them).
    rows = torch.empty((2 if counted is not None else 3, item_emb.shape[0]), dtype=torch.int32,
                       device=device)
    ends, cursor = rows[0], rows[1]
    pair_slots = torch.empty(capacity, dtype=torch.int64, device=device)  # kernels' _packed
    args = launch_args(targets, lse, ids, log_q, owners, totals, grad_loss)
    block_t, block_n = PAIR_BLOCK
    for index, first in enumerate(range(0, tokens, chunk)):
        last = min(first + chunk, tokens)
        # A column of programs at least: the first places the targets, negatives or none.
        pair_grid = (triton.cdiv(last - first, block_t),
                     max(1, triton.cdiv(plan.num_negatives, block_n)))
        pair_args = (args.ids, args.ids_stride, targets, first, last, plan.num_negatives,
                     plan.num_items, seed)
        if counted is not None:
            counts = counted[index]  # the forward's chunks are these (config.pair_chunks)
        else:
            counts = rows[2]
            counts.zero_()
            count_kernel[pair_grid](*pair_args, counts, ID_SOURCE=plan.id_source,
                                    BLOCK_T=block_t, BLOCK_N=block_n)
        torch.cumsum(counts, 0, dtype=torch.int32, out=ends)
        torch.sub(ends, counts, out=cursor)  # each item's first slot, then its next free one
        place_kernel[pair_grid](*pair_args, cursor, pair_slots,
                                ID_SOURCE=plan.id_source, BLOCK_T=block_t, BLOCK_N=block_n)
        # ITEM_PROGRAMS_PER_PROCESSOR over this chunk's pairs at most, in whole blocks of
        # slots (a short last chunk spreads as wide as the others).
        pairs = (last - first) * pairs_per_token
        programs = ITEM_PROGRAMS_PER_PROCESSOR * processors
        per_program = triton.cdiv(triton.cdiv(pairs, programs), blocks.t) * blocks.t
        items_kernel[(triton.cdiv(pairs, per_program),)](
            pair_slots, ends[-1:], per_program, hidden, hidden.stride(0),
            item_emb, item_emb.stride(0), args.log_q, lse, pos, shift, grad_loss,
            args.grad_stride, args.totals, d_items, d_items.stride(0), args.owners, dim,
            plan.scale, plan.inv_temperature, COMPACT=owners is not None, MEAN=mean,
            HAS_LOG_Q=log_q is not None, SAMPLED_SOFTMAX=plan.sampled_softmax,
            BLOCK_S=blocks.t, BLOCK_D=plan.block_d, num_warps=blocks.warps,
            num_stages=blocks.stages)
