"""CCE- forward pass: per token, log-sum-exp over the positive and its negatives, online.

One program owns BLOCK_T tokens and streams the negatives in blocks of BLOCK_N, keeping a
running max and sum: the (tokens x N) score matrix exists only one register tile at a time.
Dense modes (shared, tile, full catalog) score a block with one tensor-core product against
rows the block shares. The per-position mode (GATHER) gathers each token's own rows and
scores them either on the tensor cores, all of the block's rows against all of its tokens
(TENSOR_GATHER; `cce_scores.gathered_block_tensor_cores`), or on the CUDA cores, row by row
(`cce_scores.gathered_block_cuda_cores`). Each program also writes its tokens' loss sum and
count of non-padding tokens, so the mean needs no pass over per-token losses.

With DIRECTIONS (for training: per position, and over the full catalog in half precision,
`config.catalog_directions`) the pass also writes each token's hidden-state gradient
up to its upstream factor, d(loss_t)/d(h_t) = sum_j p_j e_j - e_target, from the rows it has
loaded anyway: softmax-weighted rows summed online (on the tensor cores by a second
product), rescaled with the running max as flash attention rescales its output. The
backward then has no hidden pass: per position it saves reading rows, the whole cost there
(a gather of tokens x N rows); over the full catalog, the pass's recomputed scores and
their exponentials, which bound every pass there. Over the full catalog in parts, each part
writes its weighted rows and `catalog_lse_kernel` combines them.

With SCORES_GIVEN (float32 rows of 256 and more, shared and tile modes:
`config.products_in_cublas`) the products come from cuBLAS, a chunk of tokens at a time
(`kernels.cublas_chunks`), and the pass reads them from that buffer instead of making them.

With COUNTED (per position, when the item gradient will be wanted) the pass also counts
each chunk's pairs per item for the backward's counting sort (`cce_buckets.count_own_pairs`)
from ids it holds anyway, where that was measured faster than the backward's own counting
pass (`config.counts_in_forward`): as it draws them, or in the CUDA cores' gather loop.
"""

import triton
import triton.language as tl

from cce_tune.kernels.cce_buckets import count_own_pairs, count_own_targets
from cce_tune.kernels.cce_scores import (
    adjust_scores,
    gathered_block_cuda_cores,
    gathered_block_tensor_cores,
    given_block,
    load_seed,
    negative_block,
    own_ids,
    own_layout,
    positive_scores,
    token_block,
)


@triton.jit
def _online_step(scores, masked, rows, running_max, running_sum, weighted, kept,
                 DIRECTIONS: tl.constexpr, ROW_BLOCK: tl.constexpr,
                 SAMPLED_SOFTMAX: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """A block of scores into the running max and sum, the softmax-weighted rows
    (DIRECTIONS) and the count of kept negatives (SAMPLED_SOFTMAX). With ROW_BLOCK the rows
    are one (columns, d) block that the scores' columns weigh, by a product; else
    (BLOCK_T, BLOCK_N, d), each token's own."""
    new_max = tl.maximum(running_max, tl.max(scores, axis=1))
    rescale = tl.exp2(running_max - new_max)
    terms = tl.exp2(scores - new_max[:, None])
    running_sum = running_sum * rescale + tl.sum(terms, axis=1)
    weighted = _weigh_rows(terms, rows, rescale, weighted, DIRECTIONS, ROW_BLOCK,
                           DOT_PRECISION)
    if SAMPLED_SOFTMAX:
        kept += tl.sum(tl.where(masked, 0.0, 1.0), axis=1)
    return new_max, running_sum, weighted, kept


@triton.jit
def _weigh_rows(terms, rows, rescale, weighted, DIRECTIONS: tl.constexpr,
                ROW_BLOCK: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """The softmax-weighted rows, rescaled to the new running max, plus this block's."""
    if DIRECTIONS and ROW_BLOCK:  # terms (BLOCK_T, columns) weigh rows (columns, d)
        weighted = weighted * rescale[:, None] + tl.dot(
            terms.to(rows.dtype), rows, input_precision=DOT_PRECISION)
    elif DIRECTIONS:  # rows (BLOCK_T, BLOCK_N, BLOCK_D)
        weighted = weighted * rescale[:, None] + tl.sum(
            terms[:, :, None] * rows.to(tl.float32), axis=1)
    return weighted


@triton.jit
def _catalog_step(raw, rows, scale, running_max, running_sum, weighted,
                  DIRECTIONS: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """`_online_step` over raw products none of which is masked: the max taken over the
    products and scaled once a token (the scale is positive), each score's scale and shift
    one multiply-add inside the exponential (four operations a score: max, multiply-add,
    exponential, sum), and with DIRECTIONS the rows weighed by a second product."""
    new_max = tl.maximum(running_max, tl.max(raw, axis=1) * scale)
    rescale = tl.exp2(running_max - new_max)
    terms = tl.exp2(raw * scale - new_max[:, None])
    running_sum = running_sum * rescale + tl.sum(terms, axis=1)
    weighted = _weigh_rows(terms, rows, rescale, weighted, DIRECTIONS, True, DOT_PRECISION)
    return new_max, running_sum, weighted


@triton.jit
def _gathered_block(h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d, d_mask, scale,
                    ID_SOURCE: tl.constexpr, HAS_LOG_Q: tl.constexpr,
                    DOT_PRECISION: tl.constexpr, TENSOR_GATHER: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):
    """Per position: a step of each token's own negatives `ids` (laid out by
    `own_layout`) scored on the tensor cores or on the CUDA cores."""
    if TENSOR_GATHER:  # one return after the branch: see cce_scores.own_layout
        scores, masked, rows = gathered_block_tensor_cores(
            h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d, d_mask, scale, ID_SOURCE,
            HAS_LOG_Q, DOT_PRECISION, BLOCK_T, BLOCK_N)
    else:
        scores, masked, rows = gathered_block_cuda_cores(
            h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d, d_mask, scale, ID_SOURCE,
            HAS_LOG_Q)
    return scores, masked, rows


# Not specialised on a value: each epoch has a ragged last batch (and chunk_tokens is the
# batch's tokens where one chunk holds them all).
@triton.jit(do_not_specialize=["num_tokens", "chunk_tokens", "partial_stride"])
def cce_minus_forward_kernel(
    h_ptr, h_row_stride, e_ptr, e_row_stride, targets_ptr, ids_ptr, ids_row_stride, log_q_ptr,
    loss_ptr, lse_ptr, pos_ptr, shift_ptr, partial_ptr, direction_ptr, drawn_ptr,
    counts_ptr, counts_row_stride, chunk_tokens, part_ptr, columns_per_part, raw_ptr,
    raw_row_stride, partial_stride,
    num_tokens, dim, num_negatives, num_items, tile_size, seed_ptr, scale, log2_others,
    ID_SOURCE: tl.constexpr, GATHER: tl.constexpr, TENSOR_GATHER: tl.constexpr,
    TILED: tl.constexpr, SCORES_GIVEN: tl.constexpr,
    HAS_LOG_Q: tl.constexpr, SAMPLED_SOFTMAX: tl.constexpr, DOT_PRECISION: tl.constexpr,
    DIRECTIONS: tl.constexpr, DRAWN_STEPS: tl.constexpr, COUNTED: tl.constexpr,
    SPLIT: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    seed = load_seed(seed_ptr, ID_SOURCE)
    offs_t, t_mask, offs_d, d_mask, h, targets = token_block(
        h_ptr, h_row_stride, targets_ptr, pid * BLOCK_T, num_tokens, dim, BLOCK_T, BLOCK_D)

    if COUNTED:  # per position, the item gradient's counting sort starts here
        count_own_targets(counts_ptr, counts_row_stride, chunk_tokens, offs_t, t_mask, targets)
    pos, e_pos = positive_scores(h, e_ptr, targets, e_row_stride, offs_d, d_mask)
    pos *= scale
    if HAS_LOG_Q:
        pos -= tl.load(log_q_ptr + targets)
    running_max = pos
    running_sum = tl.zeros([BLOCK_T], dtype=tl.float32)  # of exp2(negative - running_max)
    kept = tl.zeros([BLOCK_T], dtype=tl.float32)
    weighted = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)  # sum exp2(s - max) e, DIRECTIONS
    row = 0
    if TILED:
        row = (pid * BLOCK_T) // tile_size

    if GATHER and ID_SOURCE == 2:
        # Ids drawn here, DRAWN_STEPS steps' at a time into this program's scratch, each id
        # once, and counted (COUNTED), then read back as ids in memory are. Drawn where they
        # are used, each was drawn again by every lane that reads its row (across d) and on
        # the tensor cores by the scores' every token (that forward 14.5 ms, 6.5 with ids
        # read, at 131,072 x N 511 on an H200); drawn a step at a time through the scratch,
        # the gather lost its pipelining.
        token, negative = own_layout(BLOCK_T, BLOCK_N, TENSOR_GATHER)
        step_offs = token * BLOCK_N + negative  # an id's place in its step of the scratch
        drawn_ptr += pid.to(tl.int64) * (DRAWN_STEPS * BLOCK_T * BLOCK_N)
        for round_start in range(0, num_negatives, DRAWN_STEPS * BLOCK_N):
            for step in tl.static_range(DRAWN_STEPS):
                ids = own_ids(ids_ptr, ids_row_stride, pid * BLOCK_T, num_tokens,
                              round_start + step * BLOCK_N, num_negatives, num_items, seed,
                              ID_SOURCE, BLOCK_T, BLOCK_N, TENSOR_GATHER)
                tl.store(drawn_ptr + step * (BLOCK_T * BLOCK_N) + step_offs, ids.to(tl.int32))
                if COUNTED:
                    count_own_pairs(counts_ptr, counts_row_stride, chunk_tokens, ids,
                                    targets_ptr, pid * BLOCK_T, num_tokens, BLOCK_T, BLOCK_N,
                                    TENSOR_GATHER)
            tl.debug_barrier()
            round_end = tl.minimum(round_start + DRAWN_STEPS * BLOCK_N, num_negatives)
            for start in range(round_start, round_end, BLOCK_N):
                ids = tl.load(drawn_ptr + (start - round_start) // BLOCK_N * (BLOCK_T * BLOCK_N)
                              + step_offs).to(tl.int64)
                scores, masked, rows = _gathered_block(
                    h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d, d_mask, scale,
                    ID_SOURCE, HAS_LOG_Q, DOT_PRECISION, TENSOR_GATHER, BLOCK_T, BLOCK_N)
                running_max, running_sum, weighted, kept = _online_step(
                    scores, masked, rows, running_max, running_sum, weighted, kept,
                    DIRECTIONS, TENSOR_GATHER, SAMPLED_SOFTMAX, DOT_PRECISION)
            tl.debug_barrier()  # read by every thread before the next round overwrites them
    elif ID_SOURCE == 1:
        # The whole catalog (no log-Q, nothing sampled), or with SPLIT this program's part of
        # it: only the catalog's last block has columns past it, so the others are neither
        # masked nor scaled score by score (`_catalog_step`).
        tl.static_assert(not HAS_LOG_Q and not SAMPLED_SOFTMAX)
        first_column = tl.program_id(1) * columns_per_part
        last_column = tl.minimum(first_column + columns_per_part, num_negatives)
        whole_blocks_end = first_column + (last_column - first_column) // BLOCK_N * BLOCK_N
        for start in range(first_column, whole_blocks_end, BLOCK_N):
            raw, _ids, rows = negative_block(
                h, e_ptr, e_row_stride, ids_ptr, ids_row_stride, row, start, num_negatives,
                num_items, seed, offs_d, d_mask, ID_SOURCE, DOT_PRECISION, BLOCK_N)
            running_max, running_sum, weighted = _catalog_step(
                raw, rows, scale, running_max, running_sum, weighted, DIRECTIONS, DOT_PRECISION)
        if whole_blocks_end < last_column:
            raw, ids, rows = negative_block(
                h, e_ptr, e_row_stride, ids_ptr, ids_row_stride, row, whole_blocks_end,
                num_negatives, num_items, seed, offs_d, d_mask, ID_SOURCE, DOT_PRECISION,
                BLOCK_N)
            scores, masked = adjust_scores(raw * scale, ids, targets[:, None],
                                           log_q_ptr, ID_SOURCE, HAS_LOG_Q)
            running_max, running_sum, weighted, kept = _online_step(
                scores, masked, rows, running_max, running_sum, weighted, kept, DIRECTIONS,
                ROW_BLOCK=True, SAMPLED_SOFTMAX=SAMPLED_SOFTMAX, DOT_PRECISION=DOT_PRECISION)
    else:
        for start in range(0, num_negatives, BLOCK_N):
            if GATHER:
                ids = own_ids(ids_ptr, ids_row_stride, pid * BLOCK_T, num_tokens, start,
                              num_negatives, num_items, seed, ID_SOURCE, BLOCK_T, BLOCK_N,
                              TENSOR_GATHER)
                if COUNTED:  # ids read, on the CUDA cores (config.counts_in_forward)
                    count_own_pairs(counts_ptr, counts_row_stride, chunk_tokens, ids,
                                    targets_ptr, pid * BLOCK_T, num_tokens, BLOCK_T, BLOCK_N,
                                    TENSOR_GATHER)
                scores, masked, rows = _gathered_block(
                    h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d, d_mask, scale,
                    ID_SOURCE, HAS_LOG_Q, DOT_PRECISION, TENSOR_GATHER, BLOCK_T, BLOCK_N)
            else:
                if SCORES_GIVEN:  # products from cuBLAS (kernels.cublas_chunks): no rows
                    raw, ids, _pointers, _mask = given_block(
                        raw_ptr, raw_row_stride, offs_t, t_mask, ids_ptr, ids_row_stride, row,
                        start, num_negatives, BLOCK_N)
                    rows = raw
                else:
                    raw, ids, rows = negative_block(
                        h, e_ptr, e_row_stride, ids_ptr, ids_row_stride, row, start,
                        num_negatives, num_items, seed, offs_d, d_mask, ID_SOURCE,
                        DOT_PRECISION, BLOCK_N)
                scores, masked = adjust_scores(raw * scale, ids, targets[:, None],
                                               log_q_ptr, ID_SOURCE, HAS_LOG_Q)
            running_max, running_sum, weighted, kept = _online_step(
                scores, masked, rows, running_max, running_sum, weighted, kept, DIRECTIONS,
                ROW_BLOCK=TENSOR_GATHER or not GATHER, SAMPLED_SOFTMAX=SAMPLED_SOFTMAX,
                DOT_PRECISION=DOT_PRECISION)

    if SPLIT:  # the parts' running maxima and sums, combined by catalog_lse_kernel
        part_stats = part_ptr + tl.program_id(1) * num_tokens + offs_t
        tl.store(part_stats, running_max, mask=t_mask)
        tl.store(part_stats + tl.num_programs(1) * num_tokens, running_sum, mask=t_mask)
        tl.store(pos_ptr + offs_t, pos, mask=t_mask)
        if DIRECTIONS:  # this part's softmax-weighted rows, relative to its running max
            _store_rows(direction_ptr + tl.program_id(1).to(tl.int64) * num_tokens * dim,
                        offs_t, offs_d, dim, weighted, t_mask, t_mask, d_mask)
    else:
        shift = tl.zeros([BLOCK_T], dtype=tl.float32)
        if SAMPLED_SOFTMAX:
            # exp2(shift) scales every negative term: log((V - 1) / kept) added to each score.
            shift = log2_others - tl.log2(tl.maximum(kept, 1.0))
            running_sum = running_sum * tl.exp2(shift)
            tl.store(shift_ptr + offs_t, shift, mask=t_mask)
        if ID_SOURCE == 1:  # the whole catalog: the target was one of the columns
            lse = running_max + tl.log2(running_sum)
        else:
            lse = running_max + tl.log2(tl.exp2(pos - running_max) + running_sum)
        valid = _store_losses(loss_ptr, lse_ptr, pos_ptr, partial_ptr, partial_stride, offs_t,
                              t_mask, targets, lse, pos)
        if DIRECTIONS:  # p_n = exp2(s_n - max) exp2(max + shift - lse); p_target - 1 on e_target
            direction = weighted * tl.exp2(running_max + shift - lse)[:, None]
            if ID_SOURCE == 1:  # the target's term is among the columns' already
                direction -= e_pos.to(tl.float32)
            else:
                direction += (tl.exp2(pos - lse) - 1.0)[:, None] * e_pos.to(tl.float32)
            _store_rows(direction_ptr, offs_t, offs_d, dim, direction, valid, t_mask, d_mask)


@triton.jit
def _store_rows(ptr, offs_t, offs_d, dim, rows, valid, t_mask, d_mask):
    """(BLOCK_T, BLOCK_D) float32 rows into a contiguous (tokens, d) tensor of the caller's
    (directions): zeros for tokens not `valid` (padding's gradient), nothing past `t_mask`."""
    tl.store(ptr + offs_t[:, None].to(tl.int64) * dim + offs_d[None, :],
             tl.where(valid[:, None], rows, 0.0), mask=t_mask[:, None] & d_mask[None, :])


@triton.jit
def _store_losses(loss_ptr, lse_ptr, pos_ptr, partial_ptr, partial_stride, offs_t, t_mask,
                  targets, lse, pos):
    """Each token's loss, log-sum-exp and positive score (log2 units), and the program's
    (loss sum, count of non-padding tokens) into columns of a (2, programs) tensor of row
    stride `partial_stride`, so the mean needs no pass over per-token losses. Returns which
    tokens are not padding."""
    valid = t_mask & (targets != 0)
    loss = tl.where(valid, (lse - pos) * 0.6931471805599453, 0.0)  # log2 units to natural
    tl.store(loss_ptr + offs_t, loss, mask=t_mask)
    tl.store(lse_ptr + offs_t, lse, mask=t_mask)
    tl.store(pos_ptr + offs_t, pos, mask=t_mask)
    pid = tl.program_id(0)
    tl.store(partial_ptr + pid, tl.sum(loss, axis=0))
    tl.store(partial_ptr + partial_stride + pid, tl.sum(valid.to(tl.float32), axis=0))
    return valid


# Not specialised on a value: each epoch has a ragged last batch.
@triton.jit(do_not_specialize=["num_tokens", "partial_stride"])
def catalog_lse_kernel(part_ptr, targets_ptr, pos_ptr, loss_ptr, lse_ptr, partial_ptr,
                       partial_stride, part_rows_ptr, direction_ptr, e_ptr, e_row_stride,
                       num_tokens, dim, parts, DIRECTIONS: tl.constexpr, BLOCK_T: tl.constexpr,
                       BLOCK_P: tl.constexpr, CHUNK_D: tl.constexpr):
    """The full catalog in parts (`cce_minus_forward_kernel` with SPLIT): each token's
    parts' running maxima and sums into its log-sum-exp, loss and the per-program sums, and
    with DIRECTIONS the parts' weighted rows into its direction, CHUNK_D columns at a time,
    as the unsplit forward writes them (programs of the forward's BLOCK_T tokens)."""
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < num_tokens
    offs_p = tl.arange(0, BLOCK_P)
    stats = part_ptr + offs_p[:, None] * num_tokens + offs_t[None, :]
    mask = (offs_p < parts)[:, None] & t_mask[None, :]
    maxima = tl.load(stats, mask=mask, other=float("-inf"))
    sums = tl.load(stats + parts * num_tokens, mask=mask, other=0.0)
    running_max = tl.max(maxima, axis=0)
    lse = running_max + tl.log2(tl.sum(sums * tl.exp2(maxima - running_max[None, :]), axis=0))
    targets = tl.load(targets_ptr + offs_t, mask=t_mask, other=0)
    pos = tl.load(pos_ptr + offs_t, mask=t_mask, other=0.0)
    valid = _store_losses(loss_ptr, lse_ptr, pos_ptr, partial_ptr, partial_stride, offs_t,
                          t_mask, targets, lse, pos)
    for first_d in range(0, dim if DIRECTIONS else 0, CHUNK_D):
        # sum over parts of exp2(part max - lse) x its weighted rows, - e_target
        offs_d = first_d + tl.arange(0, CHUNK_D)
        d_mask = offs_d < dim
        rows_mask = t_mask[:, None] & d_mask[None, :]
        direction = -tl.load(e_ptr + targets[:, None].to(tl.int64) * e_row_stride
                             + offs_d[None, :],
                             mask=rows_mask, other=0.0).to(tl.float32)
        for part in range(parts):
            part_max = tl.load(part_ptr + part * num_tokens + offs_t, mask=t_mask, other=0.0)
            weighted = tl.load(part_rows_ptr + (part * num_tokens + offs_t[:, None]).to(tl.int64)
                               * dim + offs_d[None, :], mask=rows_mask, other=0.0)
            direction += weighted * tl.exp2(part_max - lse)[:, None]
        _store_rows(direction_ptr, offs_t, offs_d, dim, direction, valid, t_mask, d_mask)
