"""CCE- backward passes: gradients recomputed block by block from the saved log-sum-exp.

d(loss_t)/d(score) is p - 1 for the positive and p for each kept negative, p being the softmax
probability exp(score - lse_t). Scores are recomputed, never stored (with SCORES_GIVEN, cuBLAS
recomputes them a chunk at a time: `kernels.cublas_chunks`). The upstream gradient is
per token, or one value for a summed or (MEAN) averaged loss (`grad_stride` 0).

- `cce_minus_backward_hidden_kernel`: one program per token block; d(hidden) accumulates in
  registers, and with ITEM_GRAD (not for a frozen table) the positive rows' d(item_emb) goes
  out by atomic adds. With ITEMS_HERE the negatives' d(item_emb) goes out here too, as P^T H
  per (tile, negative block): one score recompute serves both gradients. With SCORES_GIVEN
  (`kernels.cublas_chunks`) cuBLAS made the products: the pass overwrites them with their
  gradients, which cuBLAS multiplies on, and writes only the positives' d(hidden) terms.
- `cce_minus_backward_items_kernel` (shared and full-catalog modes): one program per
  (negative block, chunk of tokens) accumulates P^T H for its negative rows over the chunk
  (with TRANSPOSED, scores computed as (items, tokens): faster for short rows), then adds it
  atomically; tokens are split only far enough to fill the GPU evenly
  (`config.balanced_parts`), so atomics stay few.

The per-position mode has neither: its forward writes d(hidden) up to the upstream factor,
and its item gradient goes through `kernels.cce_buckets`. Over the full catalog in half
precision the forward writes d(hidden)'s directions too, and only the item pass runs.
`directions_backward_kernel` scales the directions (and over the full catalog adds the
targets' item-gradient rows).
"""

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from cce_tune.kernels.cce_scores import (
    given_block,
    gradient_rows,
    item_rows,
    load_seed,
    negative_block,
    negative_ids,
    positive_scores,
    probabilities,
    token_block,
)


class LaunchArgs(NamedTuple):
    """The backward kernels' optional tensors and their strides. An absent tensor's stand-in
    (targets or lse) is never read, a constexpr says so, but a launch needs a pointer."""

    ids: torch.Tensor
    ids_stride: int  # 0 for batch-shared ids
    log_q: torch.Tensor
    owners: torch.Tensor
    totals: torch.Tensor  # read only for the mean
    grad_stride: int  # 0 for one upstream value (a summed or averaged loss)


def launch_args(targets, lse, ids, log_q, owners, totals, grad_loss) -> LaunchArgs:
    """`LaunchArgs` of a backward pass: each optional tensor, or its stand-in."""
    ids = ids if ids is not None else targets
    return LaunchArgs(ids=ids, ids_stride=ids.stride(0) if ids.dim() == 2 else 0,
                      log_q=log_q if log_q is not None else lse,
                      owners=owners if owners is not None else targets,
                      totals=totals if totals is not None else lse,
                      grad_stride=grad_loss.stride(0) if grad_loss.dim() else 0)


@triton.jit
def upstream_factor(totals_ptr, inv_temperature, MEAN: tl.constexpr):
    """What every token's upstream gradient is multiplied by: the temperature's chain-rule
    factor, over the count of non-padding tokens for the mean (totals: loss sum, count).
    Computed once a program: per token in the item pass's transposed block, it was computed
    for each of a thread's columns, division included."""
    factor = inv_temperature
    if MEAN:
        factor = factor / tl.maximum(tl.load(totals_ptr + 1), 1.0)
    return factor


@triton.jit
def upstream_gradient(grad_ptr, grad_stride, offs_t, valid, factor):
    """d(loss)/d(token loss) times `upstream_factor`; 0 on padding."""
    return tl.load(grad_ptr + offs_t * grad_stride, mask=valid, other=0.0) * factor


# Not specialised on a value: each epoch has a ragged last batch.
@triton.jit(do_not_specialize=["num_tokens"])
def cce_minus_backward_hidden_kernel(
    h_ptr, h_row_stride, e_ptr, e_row_stride, targets_ptr, ids_ptr, ids_row_stride, log_q_ptr,
    lse_ptr, pos_ptr, shift_ptr, grad_ptr, grad_stride, totals_ptr, dh_ptr, dh_row_stride,
    de_ptr, de_row_stride, owner_ptr, raw_ptr, raw_row_stride,
    num_tokens, dim, num_negatives, num_items, tile_size, seed_ptr, scale, inv_temperature,
    ID_SOURCE: tl.constexpr, TILED: tl.constexpr, ITEM_GRAD: tl.constexpr,
    ITEMS_HERE: tl.constexpr, COMPACT: tl.constexpr, MEAN: tl.constexpr,
    SCORES_GIVEN: tl.constexpr,
    HAS_LOG_Q: tl.constexpr, SAMPLED_SOFTMAX: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    seed = load_seed(seed_ptr, ID_SOURCE)
    offs_t, t_mask, offs_d, d_mask, h, targets = token_block(
        h_ptr, h_row_stride, targets_ptr, pid * BLOCK_T, num_tokens, dim, BLOCK_T, BLOCK_D)
    valid = t_mask & (targets != 0)
    lse = tl.load(lse_ptr + offs_t, mask=t_mask, other=0.0)
    g = upstream_gradient(grad_ptr, grad_stride, offs_t, valid,
                          upstream_factor(totals_ptr, inv_temperature, MEAN))
    if SAMPLED_SOFTMAX:
        shift = tl.load(shift_ptr + offs_t, mask=t_mask, other=0.0)
    else:
        shift = tl.zeros([BLOCK_T], dtype=tl.float32)

    pos = tl.load(pos_ptr + offs_t, mask=t_mask, other=0.0)
    e_pos = positive_scores(h, e_ptr, targets, e_row_stride, offs_d, d_mask)[1]
    # Over the whole catalog the target's p comes with the other columns: only the -1 here.
    d_pos = -g if ID_SOURCE == 1 else g * (tl.exp2(pos - lse) - 1.0)
    dh = d_pos[:, None] * e_pos.to(tl.float32)
    if ITEM_GRAD:
        target_rows = gradient_rows(targets, owner_ptr, COMPACT)
        tl.atomic_add(de_ptr + target_rows[:, None] * de_row_stride + offs_d[None, :],
                      d_pos[:, None] * h.to(tl.float32), mask=valid[:, None] & d_mask[None, :],
                      sem="relaxed")
    row = 0
    if TILED:
        row = (pid * BLOCK_T) // tile_size
    if SCORES_GIVEN:  # complete: stored now, its registers freed for the loop
        _store_hidden_gradient(dh_ptr, dh_row_stride, offs_t, t_mask, offs_d, d_mask, dh)

    offset = shift - lse  # then exp2 of a score is its probability
    for start in range(0, num_negatives, BLOCK_N):
        if SCORES_GIVEN:  # cuBLAS's products, overwritten by their gradients for cuBLAS
            raw, ids, pointers, mask = given_block(
                raw_ptr, raw_row_stride, offs_t, t_mask, ids_ptr, ids_row_stride, row, start,
                num_negatives, BLOCK_N)
        else:
            raw, ids, e = negative_block(
                h, e_ptr, e_row_stride, ids_ptr, ids_row_stride, row, start, num_negatives,
                num_items, seed, offs_d, d_mask, ID_SOURCE, DOT_PRECISION, BLOCK_N,
                ZERO_PADDING=ID_SOURCE == 1)
        d_scores = probabilities(raw * scale + offset[:, None], ids, targets[:, None],
                                 log_q_ptr, ID_SOURCE, HAS_LOG_Q) * g[:, None]
        if SCORES_GIVEN:
            tl.store(pointers, d_scores, mask=mask)
        else:
            dh += tl.dot(d_scores.to(e.dtype), e, input_precision=DOT_PRECISION)
            if ITEM_GRAD and ITEMS_HERE:
                d_items = tl.dot(tl.trans(d_scores.to(h.dtype)), h,
                                 input_precision=DOT_PRECISION)
                rows = gradient_rows(ids, owner_ptr, COMPACT)
                tl.atomic_add(de_ptr + rows[:, None] * de_row_stride + offs_d[None, :],
                              d_items, mask=(ids != 0)[:, None] & d_mask[None, :],
                              sem="relaxed")
    if not SCORES_GIVEN:
        _store_hidden_gradient(dh_ptr, dh_row_stride, offs_t, t_mask, offs_d, d_mask, dh)


@triton.jit
def _store_hidden_gradient(dh_ptr, dh_row_stride, offs_t, t_mask, offs_d, d_mask, dh):
    tl.store(dh_ptr + offs_t[:, None] * dh_row_stride + offs_d[None, :],
             dh.to(dh_ptr.dtype.element_ty), mask=t_mask[:, None] & d_mask[None, :])


# Not specialised on a value: each epoch has a ragged last batch.
@triton.jit(do_not_specialize=["num_tokens"])
def cce_minus_backward_items_kernel(
    h_ptr, h_row_stride, e_ptr, e_row_stride, targets_ptr, ids_ptr, ids_row_stride, log_q_ptr,
    lse_ptr, shift_ptr, grad_ptr, grad_stride, totals_ptr, de_ptr, de_row_stride, owner_ptr,
    num_tokens, dim, num_negatives, num_items, tokens_per_chunk, seed_ptr, scale,
    inv_temperature,
    ID_SOURCE: tl.constexpr, COMPACT: tl.constexpr, MEAN: tl.constexpr,
    HAS_LOG_Q: tl.constexpr,
    SAMPLED_SOFTMAX: tl.constexpr, DOT_PRECISION: tl.constexpr, TRANSPOSED: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    chunk = tl.program_id(1)
    seed = load_seed(seed_ptr, ID_SOURCE)
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < num_negatives
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    ids = negative_ids(ids_ptr, 0, ids_row_stride, offs_n, n_mask, num_negatives, num_items,
                       seed, ID_SOURCE)
    # The same rows for every token.
    e = item_rows(e_ptr, ids, e_row_stride, offs_d, d_mask, h_ptr.dtype.element_ty)
    d_items = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    factor = upstream_factor(totals_ptr, inv_temperature, MEAN)
    first = chunk * tokens_per_chunk
    last = tl.minimum(first + tokens_per_chunk, num_tokens)
    for start in range(first, last, BLOCK_T):
        offs_t = start + tl.arange(0, BLOCK_T)
        t_mask = offs_t < last
        h = tl.load(h_ptr + offs_t[:, None] * h_row_stride + offs_d[None, :],
                    mask=t_mask[:, None] & d_mask[None, :], other=0.0)
        targets = tl.load(targets_ptr + offs_t, mask=t_mask, other=0).to(tl.int64)
        g = upstream_gradient(grad_ptr, grad_stride, offs_t, t_mask & (targets != 0), factor)
        offset = -tl.load(lse_ptr + offs_t, mask=t_mask, other=0.0)
        if SAMPLED_SOFTMAX:
            offset += tl.load(shift_ptr + offs_t, mask=t_mask, other=0.0)
        if TRANSPOSED:
            # Scores as (items, tokens): E is the products' first operand for the whole loop,
            # and the gradient's product takes the probabilities as they are, beside H from
            # the same shared memory as H^T.
            raw = tl.dot(e, tl.trans(h), input_precision=DOT_PRECISION)
            d_scores = probabilities(raw * scale + offset[None, :], ids[:, None],
                                     targets[None, :], log_q_ptr, ID_SOURCE,
                                     HAS_LOG_Q) * g[None, :]
            d_items += tl.dot(d_scores.to(h.dtype), h, input_precision=DOT_PRECISION)
        else:
            raw = tl.dot(h, tl.trans(e), input_precision=DOT_PRECISION)
            d_scores = probabilities(raw * scale + offset[:, None], ids[None, :],
                                     targets[:, None], log_q_ptr, ID_SOURCE,
                                     HAS_LOG_Q) * g[:, None]
            d_items += tl.dot(tl.trans(d_scores.to(h.dtype)), h, input_precision=DOT_PRECISION)
    rows = gradient_rows(ids, owner_ptr, COMPACT)
    tl.atomic_add(de_ptr + rows[:, None] * de_row_stride + offs_d[None, :], d_items,
                  mask=(ids != 0)[:, None] & d_mask[None, :], sem="relaxed")


# Not specialised on a value: each epoch has a ragged last batch.
@triton.jit(do_not_specialize=["num_tokens"])
def directions_backward_kernel(
    directions_ptr, h_ptr, h_row_stride, targets_ptr, grad_ptr, grad_stride, totals_ptr,
    dh_ptr, dh_row_stride, de_ptr, de_row_stride, owner_ptr, num_tokens, dim, inv_temperature,
    HIDDEN: tl.constexpr, TARGET_ROWS: tl.constexpr, COMPACT: tl.constexpr,
    MEAN: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """With HIDDEN, d(hidden): the forward's directions (kernels.cce_forward's DIRECTIONS)
    times each token's upstream gradient, in the hidden states' dtype without a float32
    product in memory. With TARGET_ROWS (over the full catalog, whose item pass takes no
    target apart) the targets' item-gradient rows, -g h each (per position the item pass
    adds them)."""
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_mask = offs_t < num_tokens
    offs_d = tl.arange(0, BLOCK_D)
    mask = t_mask[:, None] & (offs_d < dim)[None, :]
    targets = tl.load(targets_ptr + offs_t, mask=t_mask, other=0).to(tl.int64)
    valid = t_mask & (targets != 0)
    g = upstream_gradient(grad_ptr, grad_stride, offs_t, valid,
                          upstream_factor(totals_ptr, inv_temperature, MEAN))
    if HIDDEN:
        directions = tl.load(directions_ptr + offs_t[:, None].to(tl.int64) * dim
                             + offs_d[None, :], mask=mask, other=0.0)
        tl.store(dh_ptr + offs_t[:, None] * dh_row_stride + offs_d[None, :],
                 (directions * g[:, None]).to(dh_ptr.dtype.element_ty), mask=mask)
    if TARGET_ROWS:
        h = tl.load(h_ptr + offs_t[:, None] * h_row_stride + offs_d[None, :], mask=mask,
                    other=0.0)
        rows = gradient_rows(targets, owner_ptr, COMPACT)
        tl.atomic_add(de_ptr + rows[:, None] * de_row_stride + offs_d[None, :],
                      -g[:, None] * h.to(tl.float32), mask=mask & valid[:, None],
                      sem="relaxed")
