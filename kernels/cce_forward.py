"""CCE- forward pass: per token, log-sum-exp over the positive and its negatives, online.

One program owns BLOCK_T tokens and streams the negatives in blocks of BLOCK_N, keeping a
running max and sum: the (tokens x N) score matrix exists only one register tile at a time.
Dense modes (shared, tile, full catalog) score a block with one tensor-core product; the
per-position mode gathers each token's own rows.
"""

import triton
import triton.language as tl

from kernels.cce_scores import (
    adjust_scores,
    dense_scores,
    gathered_scores,
    negative_ids,
    positive_scores,
)


@triton.jit
def cce_minus_forward_kernel(
    h_ptr, h_row_stride, e_ptr, e_row_stride, targets_ptr, ids_ptr, ids_row_stride, log_q_ptr,
    loss_ptr, lse_ptr, pos_ptr, shift_ptr,
    num_tokens, dim, num_negatives, num_items, tile_size, seed, inv_temperature, log_others,
    ID_SOURCE: tl.constexpr, GATHER: tl.constexpr, TILED: tl.constexpr,
    HAS_LOG_Q: tl.constexpr, SAMPLED_SOFTMAX: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_t = pid * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < num_tokens
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    h = tl.load(h_ptr + offs_t[:, None] * h_row_stride + offs_d[None, :],
                mask=t_mask[:, None] & d_mask[None, :], other=0.0)
    targets = tl.load(targets_ptr + offs_t, mask=t_mask, other=0).to(tl.int64)

    pos = positive_scores(h, e_ptr, targets, e_row_stride, offs_d, d_mask)[0]
    pos = pos * inv_temperature
    if HAS_LOG_Q:
        pos -= tl.load(log_q_ptr + targets)
    running_max = pos
    running_sum = tl.zeros([BLOCK_T], dtype=tl.float32)  # of exp(negative - running_max)
    kept = tl.zeros([BLOCK_T], dtype=tl.float32)
    row = 0
    if TILED:
        row = (pid * BLOCK_T) // tile_size

    for start in range(0, num_negatives, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < num_negatives
        if GATHER:
            ids = negative_ids(ids_ptr, offs_t[:, None], ids_row_stride, offs_n[None, :],
                               t_mask[:, None] & n_mask[None, :], num_negatives, num_items,
                               seed, ID_SOURCE)
            raw = gathered_scores(h, e_ptr, ids, e_row_stride, offs_d, d_mask)[0]
        else:
            ids = negative_ids(ids_ptr, row, ids_row_stride, offs_n, n_mask, num_negatives,
                               num_items, seed, ID_SOURCE)
            raw = dense_scores(h, e_ptr, ids, e_row_stride, offs_d, d_mask, DOT_PRECISION)[0]
        scores, masked = adjust_scores(raw, ids, targets, log_q_ptr, inv_temperature, HAS_LOG_Q)
        new_max = tl.maximum(running_max, tl.max(scores, axis=1))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(
            tl.exp(scores - new_max[:, None]), axis=1)
        kept += tl.sum(tl.where(masked, 0.0, 1.0), axis=1)
        running_max = new_max

    if SAMPLED_SOFTMAX:
        # exp(shift) scales every negative term: log((V - 1) / kept) added to each score.
        shift = log_others - tl.log(tl.maximum(kept, 1.0))
        running_sum = running_sum * tl.exp(shift)
        tl.store(shift_ptr + offs_t, shift, mask=t_mask)
    lse = running_max + tl.log(tl.exp(pos - running_max) + running_sum)
    tl.store(loss_ptr + offs_t, tl.where(targets != 0, lse - pos, 0.0), mask=t_mask)
    tl.store(lse_ptr + offs_t, lse, mask=t_mask)
    tl.store(pos_ptr + offs_t, pos, mask=t_mask)
