"""Which loss and how it samples: plain data, importable without torch (the memory model and
the command line read it before any GPU work)."""

from __future__ import annotations

from dataclasses import dataclass

NEGATIVE_MODES = ("shared", "per_position", "tile")


def negatives_shape(mode: str, num_tokens: int, num_negatives: int, tile_size: int) -> tuple:
    """Shape of a negative-id table: (N,) shared, (tiles, N) per tile, (tokens, N) per
    position."""
    if mode == "shared":
        return (num_negatives,)
    if mode == "per_position":
        return (num_tokens, num_negatives)
    if mode == "tile":
        return (-(-num_tokens // tile_size), num_negatives)
    raise ValueError(f"unknown negative mode {mode!r}; choose one of {NEGATIVE_MODES}")


# Per-position pairs per chunk of the fused loss's bucketed item gradient
# (kernels.cce_buckets): one int64 slot array of 128 MiB.
MAX_SLOTS = 2**24


def pair_chunks(num_tokens: int, num_negatives: int) -> tuple[int, int]:
    """(tokens per chunk, slots per chunk) of the bucketed item gradient: each token makes
    at most N + 1 pairs (its negatives and its target), and a chunk at most MAX_SLOTS."""
    pairs = num_negatives + 1
    chunk = max(1, min(num_tokens, MAX_SLOTS // pairs))
    return chunk, chunk * pairs


# The per-position forward counts each chunk's pairs per item for the counting sort
# (`counts_in_forward`; one int32 per chunk and table row, held from the forward to the
# backward) where that table has at most this many entries (16 MiB); beyond (catalogs of
# millions over many chunks) the backward counts each chunk itself, in one row's worth.
MAX_FORWARD_COUNTS = 2**22


def counts_in_forward(drawn: bool, tensor_cores: bool) -> bool:
    """Whether the per-position forward counts the counting sort's pairs: as it draws their
    ids, or ids read from memory on the CUDA cores (whose gather's loop is not pipelined:
    +1.8 ms against the counting pass's 2.8 at 131,072 x 1,511 x 64 on an H200). On the
    tensor cores the atomics cost the gather's loop its pipelining (+1.9 ms inside it, +3.0
    in a loop of their own, against the pass's 1.2 at 131,072 x 511 x 256)."""
    return drawn or not tensor_cores


def forward_count_chunks(num_tokens: int, num_negatives: int, rows: int) -> int:
    """Chunks of the per-position forward's counts table over an item table of `rows`
    (`MAX_FORWARD_COUNTS`), or 0 where the backward counts instead."""
    chunk = pair_chunks(num_tokens, num_negatives)[0]
    chunks = -(-num_tokens // chunk)
    return chunks if chunks * rows <= MAX_FORWARD_COUNTS else 0


# Per position the forward scores each token's own rows on the tensor cores (all of a block's
# rows against all of its tokens; kernels.cce_scores) where that was measured faster: half
# precision at d 256, 30.6 -> 14.6 ms at 131,072 tokens x N 511 on an H200. At d 64 the CUDA
# cores' row-by-row scores stay ahead (8.7 against 14.7 ms at N 1,511: the 16x wasted
# products and scores cost per pair, whatever the row's length); float32 keeps its IEEE
# products, and so does a float32 table beside half hidden states (the item pass scores its
# float32 rows: the forward's must be the same). Only the width measured: wider rows would
# outgrow the 64 KB step below and the accumulator's registers.
# benchmarks/results/passes-h200-per-position-{tensor-d256,tensor-d64,d256,d64}.md.
TENSOR_GATHER_D = 256
# Its tile: 16 tokens (the least a product takes, so the wasted products stay 16x) and 64 KB
# of rows gathered per step, 8 of each token's at d 256 in half precision: the fastest at
# 131,072 tokens x N 511 on an H200 (14.6 ms; 4 of each 14.7, 2 of each 18.8, 8 warps
# 19.7-33: benchmarks/results/passes-h200-per-position-tensor-d256.md).
TENSOR_GATHER_TOKENS = 16
TENSOR_GATHER_STEP_BYTES = 65536
# Per position, ids drawn in the kernel are drawn this many steps ahead into a program's
# scratch (int32), then read back as ids in memory are (kernels.cce_forward), on the tensor
# cores and on the CUDA cores alike.
DRAWN_STEPS = 8


def row_block(dim: int) -> int:
    """BLOCK_D of the fused kernels for rows of `dim`: the next power of two, 16 at least
    (the least a tensor-core product takes)."""
    return max(16, 1 << (dim - 1).bit_length())


def gathers_on_tensor_cores(row_element_size: int, block_d: int) -> bool:
    """Whether the per-position forward scores on the tensor cores: rows of half precision,
    hidden's and the table's alike (`row_element_size` of the wider), at the width measured
    (TENSOR_GATHER_D)."""
    return row_element_size == 2 and block_d == TENSOR_GATHER_D


def per_position_forward_tile(block_d: int, row_element_size: int,
                              tensor_cores: bool) -> tuple[int, int]:
    """(tokens, negatives of each) per step of the per-position forward over rows of
    `block_d` elements of `row_element_size` bytes (the wider of hidden's and the table's).
    On the tensor cores (`gathers_on_tensor_cores`): TENSOR_GATHER_TOKENS and
    TENSOR_GATHER_STEP_BYTES of rows. On the CUDA cores: a (tokens, 8 rows, d) register tile
    of up to 1,024 elements, the fastest of
    benchmarks/results/passes-h200-per-position-{d256,d64}.md."""
    if tensor_cores:
        return TENSOR_GATHER_TOKENS, max(1, TENSOR_GATHER_STEP_BYTES // (
            TENSOR_GATHER_TOKENS * block_d * row_element_size))
    return max(1, min(16, 1024 // (8 * block_d))), 8


# A loop split into parts over more programs (the full catalog's columns per token block in
# the forward, the dense item pass's tokens per block of negatives) takes enough parts for
# this many programs per multiprocessor (where it has the steps), then at most
# MAX_EXTRA_PARTS more (`balanced_parts`); the full catalog's forward at most
# MAX_CATALOG_PARTS in all (each part's running maxima and sums are held per token).
PROGRAMS_PER_PROCESSOR = 4
MAX_EXTRA_PARTS = 8
MAX_CATALOG_PARTS = 16


def balanced_parts(programs: int, steps: int, processors: int) -> int:
    """How many parts to split each of `programs` loops of `steps` steps into: at least
    enough for PROGRAMS_PER_PROCESSOR programs per multiprocessor (a part has a step at
    least), then as many as make the busiest multiprocessor's steps fewest:
    ceil(programs x parts / processors) programs of ceil(steps / parts) steps each. Unsplit,
    the full catalog's 800 token blocks at 51,200 tokens left 8 programs for a seventh round
    on an H200's 132 multiprocessors (forward 0.651 ms; 0.565 at 50,688 tokens, six rounds).
    Each part costs its partial results' traffic: the fewest parts within 3 % of the best."""
    def busiest(parts: int) -> int:
        return -(-programs * parts // processors) * -(-steps // parts)

    least = max(1, min(steps, -(-PROGRAMS_PER_PROCESSOR * processors // programs)))
    candidates = range(least, min(steps, least + MAX_EXTRA_PARTS) + 1)
    best = min(busiest(parts) for parts in candidates)
    return next(parts for parts in candidates if busiest(parts) <= 1.03 * best)


# Over the full catalog with half-precision rows of up to this many bytes (d 256), the
# forward also sums the softmax-weighted rows into d(hidden)'s directions
# (kernels.cce_forward's DIRECTIONS) and the backward has no hidden pass, whose products and
# exponentials (one per score, as the forward's) it repeated. At 51,200 x 26,744 bf16 on an
# H200: d 64 forward 0.54 -> 0.74 ms with the hidden pass's 0.78 gone; d 256 1.68 -> 3.65 (in
# kernels.fused's DIRECTIONS_LONG_ROW_FORWARD blocks) with its 3.01 gone
# (benchmarks/results/passes-h200-full-{d64,d256}-directions.md). Float32 rows keep the
# hidden pass: their second product would be tf32x3, whose split operands crowd the shared
# memory (not measured).
CATALOG_DIRECTIONS_ROW_BYTES = 512
# ... where each part of the catalog holds its float32 weighted rows (tokens x d) until
# they are combined: the parts at most as many as this many bytes of them, so that a large
# batch (whose last round of programs weighs little anyway) runs unsplit and holds none.
CATALOG_PART_ROWS_BYTES = 64 * 2**20


def catalog_directions(block_d: int, row_element_size: int) -> bool:
    """Whether the full catalog's forward writes d(hidden)'s directions
    (CATALOG_DIRECTIONS_ROW_BYTES), for rows of `block_d` elements of that size."""
    return row_element_size == 2 and block_d * row_element_size <= CATALOG_DIRECTIONS_ROW_BYTES


def catalog_part_limit(tokens: int, dim: int, directions: bool) -> int:
    """Most parts the full catalog's forward splits into: MAX_CATALOG_PARTS, with directions
    as many as hold CATALOG_PART_ROWS_BYTES of weighted rows."""
    if not directions:
        return MAX_CATALOG_PARTS
    return max(1, min(MAX_CATALOG_PARTS, CATALOG_PART_ROWS_BYTES // max(1, tokens * dim * 4)))


# Float32 rows of this many bytes or more (d 256), in the shared mode and in tiles of at least
# CUBLAS_MIN_TILE tokens, take their products from cuBLAS, a chunk of tokens at a time
# (kernels.cublas_chunks); the softmax work stays in the fused kernels. In Triton those
# products were tf32x3 on tiles that its split operands' shared memory shrank to 32 x 16, or
# IEEE float32 on the CUDA cores at about 10 TFLOP/s: 1.1-3.4x behind PyTorch's own float32
# at 20 of 24 points (benchmarks/results/kernels-h200-fp32-d256.md); through cuBLAS, ahead at
# all 24, 1.34-2.45x (kernels-h200-fp32-d256-cublas.md). Smaller tiles gather a chunk's rows
# for fewer tokens: in tiles of 64 cuBLAS still led the CUDA cores (30.7 against 39.7 ms at
# 131,072 x 2,048), in tiles of 16 it trailed them 4.1-4.9x (in chunks of 32 MiB then)
# (kernels-h200-fp32-d256-tile{64,16}-from*.md).
CUBLAS_MIN_ROW_BYTES = 1024
CUBLAS_MIN_TILE = 64
# ... each chunk's products (tokens x N float32) and, per tile, its gathered rows and their
# gradient (tiles x N x d float32 each) at most this many bytes. Each chunk costs the host
# about 0.4-0.5 ms of launches, so chunks of 32 MiB left the GPU waiting: at 131,072 tokens
# x 2,048 on an H200, tile 128 40.8 ms (32 MiB), 21.6 (128), 20.1 (512); shared 19.8, 14.3,
# 12.8; the largest chunk's buffers about 80, 320 and 1,280 MB (tile)
# (benchmarks/results/kernels-h200-fp32-d256-chunk{32,128,512}.md).
CUBLAS_CHUNK_BYTES = 128 * 2**20


def products_in_cublas(mode: str, element_size: int, block_d: int, tile_size: int) -> bool:
    """Whether a sampled loss's products go through cuBLAS (CUBLAS_MIN_ROW_BYTES): float32
    hidden states (and so table) of `element_size` bytes, rows of `block_d` elements."""
    wide = element_size == 4 and block_d * element_size >= CUBLAS_MIN_ROW_BYTES
    return wide and (mode == "shared" or (mode == "tile" and tile_size >= CUBLAS_MIN_TILE))


# Tokens per program of the hidden pass over cuBLAS's products, a multiple of the forward's
# (kernels.fused.SCORES_GIVEN_BLOCKS): the shared mode's chunks are whole programs of both.
SCORES_GIVEN_TOKENS = 32


def cublas_groups(mode: str, tokens: int, num_negatives: int, dim: int,
                  tile_size: int) -> list[tuple[int, int, int]]:
    """The cuBLAS products' chunks in order, as (first token, tiles, tokens per tile): each
    one product, or in the tile mode a batch of them, within CUBLAS_CHUNK_BYTES (the
    products, tokens x N float32, and per tile the gathered rows and their gradient,
    tiles x N x d float32 each). Shared: chunks of whole programs (SCORES_GIVEN_TOKENS), at
    least one. Tile mode: whole tiles, at least one, and a ragged last tile on its own (a
    batched product takes tiles of one size)."""
    if mode == "shared":
        chunk = CUBLAS_CHUNK_BYTES // (num_negatives * 4) // SCORES_GIVEN_TOKENS
        chunk = max(1, chunk) * SCORES_GIVEN_TOKENS
        return [(first, 1, min(chunk, tokens - first)) for first in range(0, tokens, chunk)]
    tiles = max(1, CUBLAS_CHUNK_BYTES // (num_negatives * 4 * max(tile_size, dim)))
    whole = tokens // tile_size * tile_size
    groups = [(first, min(tiles * tile_size, whole - first) // tile_size, tile_size)
              for first in range(0, whole, tiles * tile_size)]
    return groups + ([(whole, 1, tokens - whole)] if whole < tokens else [])


REFERENCE_LOSSES = ("ce", "ce_minus", "bce", "gbce")
FUSED_LOSSES = {"cce": "ce", "cce_minus": "ce_minus"}  # fused loss -> its reference
LOSSES = (*REFERENCE_LOSSES, *FUSED_LOSSES)
SINGLE_NEGATIVE = ("ce", "cce", "bce")  # losses whose negative count is fixed (none, or one)


# Tokens per tile of shared negatives: the largest power of two whose loss of quality against
# per-position negatives has a 95 % interval holding 0 on the calibrated synthetic-ml-1m, 5
# seeds paired (-0.56 % [-1.27, +0.16]; 32: -0.62 % [-1.06, -0.17]; 128: -1.72 %
# [-2.65, -0.79]; benchmarks/results/quality-h200-calibrated*.md).
DEFAULT_TILE_SIZE = 16


@dataclass(frozen=True)
class LossConfig:
    """Which loss, and how it samples; also what the memory model reads."""

    name: str = "ce_minus"
    num_negatives: int = 256  # per batch, tile or position, by `negative_mode`; bce takes 1
    negative_mode: str = "shared"
    tile_size: int = DEFAULT_TILE_SIZE
    temperature: float = 1.0
    sampled_softmax: bool = False
    gbce_t: float = 0.75
    in_kernel_negatives: bool = False  # cce_minus: draw negatives inside the kernel
    # The item table's gradient as a sparse tensor (the loss's and the input lookup's),
    # stepped by SparseAdam: less memory where a batch names fewer positions than the
    # catalog has rows.
    sparse_item_grad: bool = False

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; choose one of {', '.join(LOSSES)}")
        if self.negative_mode not in NEGATIVE_MODES:
            raise ValueError(
                f"unknown negative mode {self.negative_mode!r}; choose one of "
                f"{', '.join(NEGATIVE_MODES)}"
            )
        if self.num_negatives < 1:
            raise ValueError(f"number of negatives must be at least 1, got {self.num_negatives}")
        if self.name == "bce" and self.num_negatives != 1:
            raise ValueError(
                f"bce takes exactly one negative per position, got {self.num_negatives}; "
                "use gbce for more"
            )
        fused_tiles = self.name == "cce_minus" and self.negative_mode == "tile"
        if fused_tiles and (self.tile_size < 16 or self.tile_size & (self.tile_size - 1)):
            raise ValueError(f"tile size {self.tile_size} does not suit {self.name}'s kernels: "
                             "give a power of two of at least 16 (16, 32, 64, ...)")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.in_kernel_negatives and self.name != "cce_minus":
            raise ValueError(f"in-kernel negatives need loss cce_minus, not {self.name}")
        if self.sparse_item_grad and self.name not in ("ce_minus", "cce_minus"):
            raise ValueError(f"sparse item gradients need loss ce_minus or cce_minus, not "
                             f"{self.name}")
        if (self.sparse_item_grad and self.in_kernel_negatives
                and self.negative_mode == "per_position"):
            raise ValueError("sparse item gradients need the negatives' ids, which in-kernel "
                             "negatives per position never store: use the tile or shared "
                             "mode, or leave out --in-kernel-negatives")
