"""What each loss holds in GPU memory over a training step, in closed form.

The tuner's memory model adds these to the model's and optimizer's bytes to decide, before
launching, whether a configuration fits. Every count follows the code it describes
(`kernels.reference`, `kernels.fused`, `kernels.losses`): which tensors autograd saves, which
temporaries a line makes while they are alive, and what the backward allocates. Scores are
the term that matters: tokens x negatives (or x catalog) float32 for the references, nothing
for the fused kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from cce_tune.kernels import config as kernel_config
from cce_tune.kernels.config import (
    FUSED_LOSSES,
    LossConfig,
    catalog_directions,
    catalog_part_limit,
    counts_in_forward,
    cublas_groups,
    forward_count_chunks,
    gathers_on_tensor_cores,
    negatives_shape,
    pair_chunks,
    per_position_forward_tile,
    products_in_cublas,
    row_block,
)

# The CUDA caching allocator hands out blocks in multiples of 512 bytes.
GRANULE = 512


def allocation(numel: int, element_size: int) -> int:
    """Bytes one tensor of `numel` elements takes from the allocator."""
    return -(-numel * element_size // GRANULE) * GRANULE


@dataclass(frozen=True)
class LossMemory:
    """A loss's bytes by when they are live, on top of its inputs (hidden, item_emb, targets).

    `saved` lives from the loss's forward until its backward runs. `forward_extra` and
    `backward_extra` are the most bytes alive on top of `saved` at any moment of the forward
    and of the backward (the gradients it returns included, the item-embedding gradient
    excepted: the trainer counts that one as a parameter gradient).
    """

    saved: int
    forward_extra: int
    backward_extra: int


def loss_memory(config: LossConfig, tokens: int, num_items: int, dim: int,
                autocast: bool) -> LossMemory:
    """Bytes of `config`'s loss over `tokens` hidden states of width `dim` (float32, as the
    model's final norm returns them), a catalog of `num_items`, matmuls in bfloat16 under
    `autocast`."""
    if config.name in FUSED_LOSSES:
        return _fused(config, tokens, num_items, dim, autocast)
    if config.name == "ce":
        return _reference_full(tokens, num_items, dim, autocast)
    return _reference_sampled(config, tokens, num_items, dim, autocast)


def _reduction(tokens: int) -> int:  # of the references
    """`reference.reduce` with mean: a masked copy of the per-token losses and a mask."""
    return allocation(tokens, 4) + 2 * allocation(tokens, 1)


def negative_rows(mode: str, tokens: int, tile_size: int) -> int:
    """Rows of the negative-id table: 1 shared, one per tile, or one per token."""
    shape = negatives_shape(mode, tokens, 1, tile_size)
    return shape[0] if len(shape) == 2 else 1


def _id_count(config: LossConfig, tokens: int) -> int | None:
    """Negative ids a fused loss's table holds (None: the full catalog, no ids)."""
    if config.name == "cce":
        return None
    return negative_rows(config.negative_mode, tokens, config.tile_size) * config.num_negatives


def compact_positions(config: LossConfig, tokens: int, num_items: int) -> int | None:
    """Rows of a fused loss's compact item-gradient accumulator (`kernels.compact`): a row
    per position (target or id) where those are fewer than the table's rows and the ids
    exist; else None, a dense accumulator of the whole table."""
    id_count = _id_count(config, tokens)
    drawn_per_position = config.in_kernel_negatives and config.negative_mode == "per_position"
    if id_count is None or drawn_per_position or tokens + id_count >= num_items + 1:
        return None
    return tokens + id_count


def sparse_item_gradient(config: LossConfig, tokens: int, num_items: int, dim: int) -> int:
    """Bytes of the sparse item gradient a fused loss returns (`sparse_item_grad`,
    `kernels.compact.sparse_gradient`): the float32 accumulator as its values, and an int64
    row id per value row."""
    rows = compact_positions(config, tokens, num_items) or num_items + 1
    return allocation(rows * dim, 4) + allocation(rows, 8)


def _cublas_scratch(config: LossConfig, tokens: int, dim: int,
                    compact: bool) -> tuple[int, int] | None:
    """(forward, backward) scratch of the cuBLAS products' path (`kernels.cublas_chunks`)
    for float32 inputs, or None where it is not taken: the largest chunk's float32 products,
    its negatives' rows (gathered once, shared) and in the backward their gradient rows, and
    over a `compact` accumulator the rows those add into (two int32 and a mask per row)."""
    mode, negatives = config.negative_mode, config.num_negatives
    if (config.name != "cce_minus" or mode == "per_position"
            or not products_in_cublas(mode, 4, row_block(dim), config.tile_size)):
        return None
    groups = cublas_groups(mode, tokens, negatives, dim, config.tile_size)
    scores = allocation(max((tiles * tile_tokens for _, tiles, tile_tokens in groups),
                            default=0) * negatives, 4)
    tiles = max((tiles for _, tiles, _ in groups), default=0)
    rows = allocation(tiles * negatives * dim, 4)
    index = 2 * allocation(tiles * negatives, 4) + allocation(tiles * negatives, 1)
    return scores + rows, scores + 2 * rows + (index if compact else 0)


def _fused(config: LossConfig, tokens: int, num_items: int, dim: int,
           autocast: bool) -> LossMemory:
    rows = num_items + 1
    element = 2 if autocast else 4
    sparse = config.sparse_item_grad
    # Under autocast the trainer's selector casts hidden and the table, and both are saved;
    # with a sparse item gradient the kernels read the float32 table's rows as they are.
    table_cast = 0 if sparse else allocation(rows * dim, 2)
    casts = allocation(tokens * dim, 2) + table_cast if autocast else 0
    id_count = _id_count(config, tokens)
    if id_count is None:
        ids = 0
    elif config.in_kernel_negatives:  # int32, and not even that per position
        ids = 0 if config.negative_mode == "per_position" else allocation(id_count, 4)
    else:
        ids = allocation(id_count, 8)
    per_token_results = allocation(4 * tokens, 4)  # loss, lse, positive, shift
    totals = allocation(2, 4)  # loss sum and token count, for the mean
    # Per position, and over the full catalog in half precision, the forward writes d(hidden)'s
    # float32 directions (kernels.cce_forward). Per position it also counts the counting
    # sort's pairs per chunk and table row, where that was measured faster and their table
    # is small. Its kernels take rows of the wider of hidden's and the table's elements: a
    # sparse item gradient leaves the table float32.
    gather = config.name == "cce_minus" and config.negative_mode == "per_position"
    block_d = row_block(dim)
    rows_element = 4 if sparse else element
    writes_directions = gather or (id_count is None
                                   and catalog_directions(block_d, rows_element))
    directions = allocation(tokens * dim, 4) if writes_directions else 0
    tensor_cores = gathers_on_tensor_cores(rows_element, block_d)
    counts_here = gather and counts_in_forward(config.in_kernel_negatives, tensor_cores)
    count_chunks = (forward_count_chunks(tokens, config.num_negatives, rows)
                    if counts_here else 0)
    counts = allocation(count_chunks * rows, 4)
    saved = casts + ids + per_token_results + totals + directions + counts
    # Per-program partial sums: at most one program per token, and the scalar result.
    forward_extra = allocation(2 * tokens, 4) + allocation(1, 4)
    # Over the full catalog in parts, each part's running max and sum per token, and with
    # directions its float32 weighted rows (kernels.fused._catalog_parts: as many parts as
    # even out the GPU's rounds, at most catalog_part_limit: counted at that bound, none
    # where it is one part).
    parts = catalog_part_limit(tokens, dim, writes_directions) if id_count is None else 1
    if parts > 1:
        forward_extra += allocation(2 * parts * tokens, 4)
        if writes_directions:
            forward_extra += allocation(parts * tokens * dim, 4)
    if gather and config.in_kernel_negatives:
        # The forward's drawn ids, a few steps' per program (int32).
        step_tokens, step_negatives = per_position_forward_tile(block_d, rows_element,
                                                                tensor_cores)
        programs = -(-tokens // step_tokens)
        forward_extra += allocation(
            programs * kernel_config.DRAWN_STEPS * step_tokens * step_negatives, 4)

    d_hidden = allocation(tokens * dim, element)
    if gather:
        # Beside the float32 item accumulator: first kernels.cce_buckets' table-sized
        # counters (the counts too, unless the forward's) and slot array, then d(hidden)
        # scaled from the directions.
        capacity = pair_chunks(tokens, config.num_negatives)[1]
        buckets = (2 if count_chunks else 3) * allocation(rows, 4) + allocation(capacity, 8)
        during = max(buckets, d_hidden)
    else:
        during = d_hidden  # the hidden pass (or the directions' scaling) writes it
    positions = compact_positions(config, tokens, num_items)
    cublas = None if autocast else _cublas_scratch(config, tokens, dim, positions is not None)
    if cublas:  # beside d(hidden), which the hidden pass and cuBLAS write
        forward_extra += cublas[0]
        during += cublas[1]
    if positions is not None:
        # kernels.compact: an int32 owner per table row and one float32 accumulator row per
        # position (target or id). Dense: its cast to the table's dtype, then the table-sized
        # gradient expanded from that, beside it (in float32 too: traced on an H200).
        # Sparse: the accumulator is the gradient's values, beside an id per position.
        owners = allocation(rows, 4)
        accumulator = allocation(positions * dim, 4)
        if sparse:
            in_kernels = owners + accumulator + max(during, d_hidden + allocation(positions, 8))
        else:
            cast = allocation(positions * dim, element) if element != 4 else 0
            expanded = allocation(rows * dim, element)
            in_kernels = owners + max(accumulator + max(during, d_hidden + cast),
                                      d_hidden + (cast or accumulator) + expanded)
    else:
        # Under autocast the item gradient comes back in bf16 beside the float32 accumulator
        # (then autograd casts it for the float32 table); in float32 it is the accumulator.
        # Sparse: the float32 accumulator with an id per table row.
        if sparse:
            returned = allocation(rows, 8)
        else:
            returned = allocation(rows * dim, element) if element != 4 else 0
        accumulator = allocation(rows * dim, 4)
        in_kernels = max(accumulator + during, d_hidden + accumulator + returned)

    # Autocast's cast back to float32: both gradients in float32 beside their bf16 originals,
    # once the kernels' saved bf16 copies (and directions) are freed (measured on an H100 at
    # 1M items); a sparse item gradient is float32 already, so only d(hidden)'s.
    if sparse:
        item_gradient = sparse_item_gradient(config, tokens, num_items, dim)
    else:
        item_gradient = allocation(rows * dim, 2) + allocation(rows * dim, 4)
    cast_back = (d_hidden + allocation(tokens * dim, 4) + item_gradient - casts - directions
                 if autocast else 0)
    return LossMemory(saved, forward_extra, max(in_kernels, cast_back))


def _reference_full(tokens: int, num_items: int, dim: int, autocast: bool) -> LossMemory:
    """`reference.ce`: logits over the whole catalog, then logsumexp and a gather."""
    scores = tokens * num_items
    raw = allocation(scores, 2 if autocast else 4)
    logits = allocation(scores, 4)
    casts = allocation(tokens * dim, 2) + allocation(num_items * dim, 2) if autocast else 0
    saved = logits + allocation(tokens, 4) + casts  # logsumexp keeps its input and result
    # The matmul's output, its float32 copy (autocast) and the scaled logits coexist once.
    forward_extra = raw + (logits if autocast else 0) + _reduction(tokens)
    # logsumexp's backward: (x - lse) and its exp; the gather's backward: a zero-filled
    # tokens x catalog gradient that is summed with the first.
    backward_extra = 2 * logits + logits + allocation(tokens * dim, 4)
    return LossMemory(saved, forward_extra, backward_extra)


def _lookup_backward(positions: int, rows: int, dim: int) -> int:
    """Scratch of `F.embedding`'s backward on the GPU over `positions` looked-up ids of a
    table of `rows`: beyond 3,072 ids it sorts them (keys, original positions, the sort's
    double buffers), then sums each id's run into float32 partial rows of at most 10."""
    if positions <= 3072:
        return 0
    ids = allocation(positions, 8)
    segments = min(positions, rows)
    partials = positions // 10 + segments
    width = -(-dim // 32) * 32
    sort = 5 * ids  # sorted ids, their positions, the counting range, the sort's two buffers
    runs = (4 * ids + allocation(segments, 8) + allocation(partials, 8)
            + allocation(partials * width, 4))
    return max(sort, runs)


def _reference_sampled(config: LossConfig, tokens: int, num_items: int, dim: int,
                       autocast: bool) -> LossMemory:
    """`reference.ce_minus`, `bce` and `gbce`: looked-up rows, a tokens x N score matrix
    and its mask, over the moments where each peaks.

    Under autocast the selector casts hidden and the table first, so rows are looked up in
    bf16 (`kernels.losses`). Forward: the products, or the softmax / sigmoid terms after
    them. Backward: the score gradients first; then the negatives' product, whose rows'
    gradient exists beside the rows it saved; then the lookups' backward (`_lookup_backward`)
    into a table-sized gradient each, negatives' first, then targets' beside it; last, under
    autocast, both gradients cast back to float32.
    """
    n = 1 if config.name == "bce" else config.num_negatives
    mode = "per_position" if config.name == "bce" else config.negative_mode
    element = 2 if autocast else 4
    id_rows = negative_rows(mode, tokens, config.tile_size)
    rows = num_items + 1
    scores = allocation(tokens * n, 4)
    ids = allocation(id_rows * n, 8)
    positives = allocation(tokens * dim, element)  # the targets' rows, saved by their product
    hidden = allocation(tokens * dim, element)
    table = allocation(rows * dim, element)
    gathered_rows = id_rows * n
    gathered = allocation(gathered_rows * dim, element)
    # Tile mode pads the hidden states into (tiles, tile, d) for bmm.
    padded = allocation(id_rows * config.tile_size * dim, element) if mode == "tile" else 0
    # Saved by the products: the rows, and the (cast or padded) hidden states.
    matmul_saved = gathered + padded + (hidden if autocast else 0)
    raw_scores = allocation(tokens * n, element)  # the product's output, widened after
    # Ids expanded per token for the masks: a real copy in tile mode, alive to the forward's end.
    per_token_ids = allocation(tokens * n, 8) if mode == "tile" else 0
    mask = allocation(tokens * n, 1)
    # Under autocast the table's cast lives through the forward (the selector holds it).
    live = ids + per_token_ids + positives + matmul_saved + (table if autocast else 0)
    # The product's output, then its float32 copy beside the temperature's quotient.
    matmul = live + max(raw_scores, scores) + scores
    if config.name == "ce_minus":
        # masked_fill keeps the mask; logsumexp keeps the (tokens, 1 + N) concatenation.
        concat = allocation(tokens * (n + 1), 4)
        saved = ids + positives + matmul_saved + mask + concat + allocation(tokens, 4)
        # The masked scores (a local until return), the concatenation and logsumexp's exp,
        # beside the mask (the comparisons that made it are gone).
        terms = live + mask + scores + 2 * concat
        # logsumexp's backward makes (x - lse) and its exp over the concatenation.
        early = saved + 2 * concat + scores + hidden
    else:
        # Scores, their negation, logsigmoid (kept) and the kept-mask product.
        sigmoid = scores
        saved = ids + positives + matmul_saved + mask + sigmoid
        terms = live + mask + 4 * sigmoid
        early = saved + 2 * sigmoid + hidden
    forward = max(matmul, terms) + _reduction(tokens)
    # The negatives' product: the score gradient in, the rows' and hidden's gradients out.
    product = ids + positives + matmul_saved + raw_scores + gathered + max(hidden, padded)
    lookup = (ids + positives + (hidden if autocast else 0) + gathered + hidden + table
              + _lookup_backward(gathered_rows, rows, dim))
    # The targets' lookup runs second (autograd runs the later node first), beside the
    # first's table-sized gradient: 7 MB over the model without it at 12,800 x 128 float32.
    second_lookup = ids + positives + hidden + 2 * table + _lookup_backward(tokens, rows, dim)
    cast_back = (table + allocation(rows * dim, 4) + hidden + allocation(tokens * dim, 4)
                 if autocast else 0)
    backward = max(early, product, lookup, second_lookup, cast_back)
    return LossMemory(saved, forward - saved, backward - saved)
