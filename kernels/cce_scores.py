"""Shared Triton building blocks: where a block of negatives comes from, and its scores.

Negative ids come from one of three sources (`ID_SOURCE`): an explicit id tensor, the whole
catalog in order (full-catalog CE), or Philox random numbers regenerated from a seed, so
that neither the forward nor the backward pass needs a tokens x N id tensor. The seed is read
from device memory, not passed by value: a training step replayed from a CUDA graph then
draws new negatives each time (a value would be frozen into the graph).

Scores, log-sum-exps and log-Q values inside the kernels are in log2 units (natural log
times log2(e)): `tl.exp2` is the hardware's exponential, and folding log2(e) into the
temperature's scale saves a multiply per score in every pass.
"""

import triton
import triton.language as tl

IDS_EXPLICIT = 0
IDS_CATALOG = 1
IDS_RANDOM = 2


@triton.jit
def token_block(h_ptr, h_row_stride, targets_ptr, first, num_tokens, dim,
                BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    """Tokens first..first+BLOCK_T: offsets, masks, hidden rows and targets (int64)."""
    offs_t = first + tl.arange(0, BLOCK_T)
    t_mask = offs_t < num_tokens
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    h = tl.load(h_ptr + offs_t[:, None] * h_row_stride + offs_d[None, :],
                mask=t_mask[:, None] & d_mask[None, :], other=0.0)
    targets = tl.load(targets_ptr + offs_t, mask=t_mask, other=0).to(tl.int64)
    return offs_t, t_mask, offs_d, d_mask, h, targets


@triton.jit
def negative_ids(ids_ptr, ids_row, ids_row_stride, offs_n, n_mask, num_negatives, num_items,
                 seed, ID_SOURCE: tl.constexpr):
    """Ids (int64) of negatives `offs_n` in row `ids_row` (a tensor for per-position rows).

    Masked-off lanes get id 0, which every pass treats as "no negative".
    """
    if ID_SOURCE == 0:
        ids = tl.load(ids_ptr + ids_row * ids_row_stride + offs_n, mask=n_mask, other=0)
    elif ID_SOURCE == 1:
        ids = offs_n + 1 + ids_row * 0
    else:
        counter = (ids_row * num_negatives + offs_n).to(tl.uint32)
        # floor(r * V / 2^32) for a uniform 32-bit r: uniform over 0..V-1 (bias < V / 2^32),
        # with a multiply instead of a 64-bit division.
        ids = 1 + tl.umulhi(tl.randint(seed, counter), num_items.to(tl.uint32)).to(tl.int64)
    return tl.where(n_mask, ids.to(tl.int64), 0)


@triton.jit
def load_seed(seed_ptr, ID_SOURCE: tl.constexpr):
    """The Philox seed (one int32 in memory) when ids are random, else 0 (nothing read)."""
    seed = 0
    if ID_SOURCE == 2:
        seed = tl.load(seed_ptr)
    return seed


@triton.jit
def draw_negatives_kernel(out_ptr, num_negatives, num_items, seed_ptr,
                          BLOCK_N: tl.constexpr):
    """Writes row `program_id(0)` of the ids that IDS_RANDOM makes the loss kernels draw."""
    seed = tl.load(seed_ptr)
    row = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < num_negatives
    ids = negative_ids(out_ptr, row, 0, offs_n, n_mask, num_negatives, num_items, seed, 2)
    tl.store(out_ptr + row * num_negatives + offs_n, ids, mask=n_mask)


@triton.jit
def gradient_rows(ids, owner_ptr, COMPACT: tl.constexpr):
    """Rows of the item-gradient accumulator: the ids themselves, or with COMPACT their
    owners' rows in an accumulator that holds only the rows this batch touches
    (kernels.compact)."""
    if COMPACT:
        return tl.load(owner_ptr + ids).to(tl.int64)
    return ids


@triton.jit
def adjust_scores(scores, ids, targets, log_q_ptr, ID_SOURCE: tl.constexpr,
                  HAS_LOG_Q: tl.constexpr):
    """Scores in log2 units (raw dot products times `scale` = log2(e) / temperature, plus any
    per-token term of the caller's) log-Q corrected, with masked entries at -inf. Returns
    (scores, mask).

    Masked: id 0 (padding, or past the last negative) and, for sampled ids, accidental hits.
    Over the whole catalog (ID_SOURCE 1) the target is one of the columns by design, so only
    the columns past the catalog are masked: no per-score id comparison at all.
    `ids` and `targets` come shaped to broadcast against `scores`: ids (N,) and
    targets[:, None] for a block of tokens against columns they share (per position on the
    tensor cores each token's own are among them, the rest masked by the caller), (T, N) ids
    for each token's own, and ids[:, None], targets[None, :] for the item pass's transposed
    block (items, tokens). (Shared ids given as ids[None, :] made Triton draw in-kernel ids
    again in the scores' layout: the tile mode's forward 2.5 times as long in machine code.)
    """
    if HAS_LOG_Q:
        scores -= tl.load(log_q_ptr + ids)
    if ID_SOURCE == 1:
        masked = (ids == 0) & tl.full(scores.shape, True, tl.int1)
    else:
        masked = (ids.to(tl.int32) == targets.to(tl.int32)) | (ids == 0)
    return tl.where(masked, float("-inf"), scores), masked


@triton.jit
def probabilities(scores, ids, targets, log_q_ptr, ID_SOURCE: tl.constexpr,
                  HAS_LOG_Q: tl.constexpr):
    """The backward's softmax probabilities, exp2 of scores that already hold the shift
    minus the log-sum-exp (`adjust_scores`' arguments), masked entries 0. Over the whole
    catalog nothing is masked: a column past the catalog (id 0) meets a zero row in the
    hidden pass (`item_rows` with ZERO_PADDING) and its gradient row is dropped in the item
    pass, so the select is saved on every score."""
    if ID_SOURCE != 1 or HAS_LOG_Q:
        scores = adjust_scores(scores, ids, targets, log_q_ptr, ID_SOURCE, HAS_LOG_Q)[0]
    return tl.exp2(scores)


@triton.jit
def item_rows(e_ptr, ids, e_row_stride, offs_d, d_mask, dtype: tl.constexpr,
              ZERO_PADDING: tl.constexpr = False):
    """(rows, BLOCK_D) item rows `ids` in the hidden states' `dtype`, for a tensor-core
    product with them (a float32 table beside half-precision hidden states is converted
    here, row by row); id 0 reads padding, or with ZERO_PADDING zeros, so that a product with
    a score's row adds nothing whatever the score (`probabilities`). The rows a token block
    shares, or per position (`gathered_block_tensor_cores`) each token's own, side by side."""
    mask = d_mask[None, :]
    if ZERO_PADDING:
        mask = mask & (ids != 0)[:, None]
    return tl.load(e_ptr + ids[:, None] * e_row_stride + offs_d[None, :], mask=mask,
                   other=0.0).to(dtype)


@triton.jit
def positive_scores(h, e_ptr, targets, e_row_stride, offs_d, d_mask):
    """(BLOCK_T,) score of each token against its own target row, and that row."""
    e = tl.load(e_ptr + targets[:, None] * e_row_stride + offs_d[None, :],
                mask=d_mask[None, :], other=0.0)
    return tl.sum(h.to(tl.float32) * e.to(tl.float32), axis=1), e


@triton.jit
def negative_block(h, e_ptr, e_row_stride, ids_ptr, ids_row_stride, row, start, num_negatives,
                   num_items, seed, offs_d, d_mask, ID_SOURCE: tl.constexpr,
                   DOT_PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                   ZERO_PADDING: tl.constexpr = False):
    """Raw dot products of a token block with the negatives start..start+BLOCK_N of row
    `row` of the ids (shared by the block): one tensor-core product. Returns (products, ids,
    item rows (`item_rows`)); the caller scales the products and masks them
    (`adjust_scores`) or takes their probabilities (`probabilities`)."""
    offs_n = start + tl.arange(0, BLOCK_N)
    n_mask = offs_n < num_negatives
    ids = negative_ids(ids_ptr, row, ids_row_stride, offs_n, n_mask, num_negatives,
                       num_items, seed, ID_SOURCE)
    e = item_rows(e_ptr, ids, e_row_stride, offs_d, d_mask, h.dtype, ZERO_PADDING)
    return tl.dot(h, tl.trans(e), input_precision=DOT_PRECISION), ids, e


@triton.jit
def given_block(raw_ptr, raw_row_stride, offs_t, t_mask, ids_ptr, ids_row_stride, row, start,
                num_negatives, BLOCK_N: tl.constexpr):
    """`negative_block`'s products made outside the kernels (`kernels.cublas_chunks`: cuBLAS
    in float32), read from a (tokens, N) buffer: (products, ids, their pointers and mask,
    where the backward writes the score gradients over them). Ids come from memory."""
    offs_n = start + tl.arange(0, BLOCK_N)
    n_mask = offs_n < num_negatives
    ids = negative_ids(ids_ptr, row, ids_row_stride, offs_n, n_mask, num_negatives, 0, 0,
                       0)  # IDS_EXPLICIT
    pointers = raw_ptr + offs_t[:, None].to(tl.int64) * raw_row_stride + offs_n[None, :]
    mask = t_mask[:, None] & n_mask[None, :]
    return tl.load(pointers, mask=mask, other=0.0), ids, pointers, mask


@triton.jit
def own_layout(BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, FLAT: tl.constexpr):
    """(token within the block, negative within the step) of each id of a per-position
    step: flat for the tensor cores (`gathered_block_tensor_cores`: element t * BLOCK_N + n
    is token t's negative n), (BLOCK_T, BLOCK_N) for the CUDA cores."""
    # One return after a static branch: compiled, Triton takes the statements after a
    # returning branch too, and two returns of other shapes do not compile.
    if FLAT:
        offs = tl.arange(0, BLOCK_T * BLOCK_N)
        token, negative = offs // BLOCK_N, offs % BLOCK_N
    else:
        token, negative = tl.arange(0, BLOCK_T)[:, None], tl.arange(0, BLOCK_N)[None, :]
    return token, negative


@triton.jit
def own_ids(ids_ptr, ids_row_stride, first, num_tokens, start, num_negatives, num_items, seed,
            ID_SOURCE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr,
            FLAT: tl.constexpr):
    """Per position: the ids (int64) of the BLOCK_T tokens from `first`, negatives
    start..start+BLOCK_N of each, laid out by `own_layout`."""
    token, negative = own_layout(BLOCK_T, BLOCK_N, FLAT)
    row_tokens = first + token
    offs_n = start + negative
    return negative_ids(ids_ptr, row_tokens.to(tl.int64), ids_row_stride, offs_n,
                        (row_tokens < num_tokens) & (offs_n < num_negatives), num_negatives,
                        num_items, seed, ID_SOURCE)


@triton.jit
def gathered_block_tensor_cores(h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d,
                                d_mask, scale, ID_SOURCE: tl.constexpr,
                                HAS_LOG_Q: tl.constexpr, DOT_PRECISION: tl.constexpr,
                                BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):
    """Per position: a block of BLOCK_T tokens against their own negatives `ids` (laid out
    by `own_layout`, flat), on the tensor cores.

    Each token's rows are gathered into one (BLOCK_T * BLOCK_N, d) block and the block is
    scored against every token of the program: (BLOCK_T, BLOCK_T * BLOCK_N) products of which
    a token keeps its own BLOCK_N, the others masked like accidental hits. BLOCK_T times the
    products needed, but on the tensor cores, where summing each row on the CUDA cores (a
    shuffle across the warp per row) made the pass twice as slow at d 256
    (`gathered_block_cuda_cores`). The rows come back for the caller's second product (the
    forward's softmax-weighted rows: scores as weights). Returns (scores in log2 units with
    masked entries at -inf, the mask, the rows).
    """
    e = item_rows(e_ptr, ids, e_row_stride, offs_d, d_mask, h.dtype)
    raw = tl.dot(h, tl.trans(e), input_precision=DOT_PRECISION)
    scores, masked = adjust_scores(raw * scale, ids, targets[:, None], log_q_ptr,
                                   ID_SOURCE, HAS_LOG_Q)
    owner, _negative = own_layout(BLOCK_T, BLOCK_N, True)  # each row's token in the block
    masked = masked | (owner[None, :] != tl.arange(0, BLOCK_T)[:, None])
    return tl.where(masked, float("-inf"), scores), masked, e


@triton.jit
def gathered_block_cuda_cores(h, e_ptr, e_row_stride, ids, targets, log_q_ptr, offs_d, d_mask,
                              scale, ID_SOURCE: tl.constexpr, HAS_LOG_Q: tl.constexpr):
    """Per position on the CUDA cores: each token's own negatives `ids` (BLOCK_T, BLOCK_N),
    gathered into a (BLOCK_T, BLOCK_N, d) tile and scored row by row (a sum across d) in
    float32. No product is wasted, which wins over `gathered_block_tensor_cores` where the
    rows are short or the products are float32. Returns (scores, mask, rows) as there, the
    rows (T, N, d)."""
    e = tl.load(e_ptr + ids[:, :, None] * e_row_stride + offs_d[None, None, :],
                mask=d_mask[None, None, :], other=0.0)
    raw = tl.sum(h[:, None, :].to(tl.float32) * e.to(tl.float32), axis=2)
    scores, masked = adjust_scores(raw * scale, ids, targets[:, None], log_q_ptr, ID_SOURCE,
                                   HAS_LOG_Q)
    return scores, masked, e


def precision_for(dtype, cuda_cores: bool = False) -> str:
    """fp32 inputs: three TF32 tensor-core products per product ("tf32x3"), about fp32
    accuracy (users choosing fp32 want fp32) at tensor-core speed; or, with `cuda_cores`,
    IEEE fp32 products on the CUDA cores, where tf32x3's split operands leave tiles too
    small (kernels.fused.on_cuda_cores). Products that cuBLAS makes instead
    (kernels.cublas_chunks) follow PyTorch's float32 matmul precision, as the model's own
    layers do: IEEE unless the user allows TF32. Half precision: tensor cores as they are."""
    if dtype.itemsize != 4:
        return "tf32"
    return "ieee" if cuda_cores else "tf32x3"
