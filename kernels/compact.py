"""A compact float32 item-gradient accumulator: one row per id of the batch, not per table row.

With a large catalog and few ids (1M items, 32k tokens, 512 negatives) a float32 accumulator
of the whole table would be most of the loss's memory. Instead every table row that the batch
touches is owned by the first position that names it, in the order (targets, then the
negatives row by row): `owners[row]` is that position, and the accumulator row of the same
number collects the row's gradient. The kernels add into `owners[id]`; one pass then writes
the whole table gradient, each row from its owner's accumulator row or zeros.

Two kernels and one fill, whatever the catalog: the host's launches bound small steps
(benchmarks/results/step-time-h100*.md), so no sort, no prefix sum, no unique, and nothing
that waits for the GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

UNTOUCHED = 2**31 - 1  # owner of a row that no position names


@triton.jit
def position_ids(targets_ptr, ids_ptr, ids_row_stride, ids_per_row, num_tokens, offs, mask):
    """The table row (int64) that each position `offs` of (targets, then ids) names."""
    is_target = offs < num_tokens
    k = tl.maximum(offs - num_tokens, 0)
    from_ids = tl.load(ids_ptr + (k // ids_per_row) * ids_row_stride + k % ids_per_row,
                       mask=mask & ~is_target, other=0)
    from_targets = tl.load(targets_ptr + offs, mask=mask & is_target, other=0)
    return tl.where(is_target, from_targets.to(tl.int64), from_ids.to(tl.int64))


@triton.jit
def claim_rows_kernel(targets_ptr, ids_ptr, ids_row_stride, ids_per_row, num_tokens,
                      num_positions, owner_ptr, acc_ptr, acc_row_stride, dim,
                      BLOCK: tl.constexpr, BLOCK_D: tl.constexpr):
    """owner[row] = the first position naming `row` (an atomic min over all positions); and
    the positions' accumulator rows zeroed, which saves a fill launch."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < num_positions
    rows = position_ids(targets_ptr, ids_ptr, ids_row_stride, ids_per_row, num_tokens, offs,
                        mask)
    tl.atomic_min(owner_ptr + rows, offs, mask=mask, sem="relaxed")
    for start in range(0, dim, BLOCK_D):
        offs_d = start + tl.arange(0, BLOCK_D)
        tl.store(acc_ptr + offs.to(tl.int64)[:, None] * acc_row_stride + offs_d[None, :],
                 tl.zeros([BLOCK, BLOCK_D], dtype=tl.float32),
                 mask=mask[:, None] & (offs_d < dim)[None, :])


@triton.jit
def expand_rows_kernel(owner_ptr, acc_ptr, acc_row_stride, out_ptr, out_row_stride, num_rows,
                       num_positions, dim, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """Table rows of one block: the owner's accumulator row, cast, or zeros if untouched."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_mask = offs_r < num_rows
    owner = tl.load(owner_ptr + offs_r, mask=r_mask, other=0)
    touched = r_mask & (owner < num_positions)  # untouched rows hold UNTOUCHED
    source = tl.where(touched, owner, 0).to(tl.int64)
    for start in range(0, dim, BLOCK_D):
        offs_d = start + tl.arange(0, BLOCK_D)
        d_mask = offs_d < dim
        values = tl.load(acc_ptr + source[:, None] * acc_row_stride + offs_d[None, :],
                         mask=touched[:, None] & d_mask[None, :], other=0.0)
        tl.store(out_ptr + offs_r.to(tl.int64)[:, None] * out_row_stride + offs_d[None, :],
                 values.to(out_ptr.dtype.element_ty), mask=r_mask[:, None] & d_mask[None, :])


def compact_accumulator(targets: torch.Tensor, ids: torch.Tensor | None, num_rows: int,
                        dim: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(owners, zeroed float32 accumulator) when the batch names fewer positions than the
    table has rows, else None (a dense accumulator: full catalog, ids drawn per position in
    the kernels, or at least as many ids as rows). `owners` (num_rows,) int32; the
    accumulator has a row per position: `len(targets) + ids.numel()`. `targets` contiguous,
    `ids` (N,) or (rows, N) with contiguous rows."""
    if ids is None or len(targets) + ids.numel() >= num_rows:
        return None
    positions = len(targets) + ids.numel()
    owners = torch.full((num_rows,), UNTOUCHED, dtype=torch.int32, device=targets.device)
    accumulator = torch.empty((positions, dim), dtype=torch.float32, device=targets.device)
    block = 256
    claim_rows_kernel[(triton.cdiv(positions, block),)](
        targets, ids, ids.stride(0) if ids.dim() == 2 else 0, ids.shape[-1], len(targets),
        positions, owners, accumulator, accumulator.stride(0), dim, BLOCK=block,
        BLOCK_D=min(64, triton.next_power_of_2(dim)))
    return owners, accumulator


def sparse_gradient(targets: torch.Tensor, ids: torch.Tensor | None, accumulator: torch.Tensor,
                    num_rows: int) -> torch.Tensor:
    """The (num_rows, d) table gradient as a sparse COO tensor, uncoalesced, no count read
    back from the device. From a compact accumulator (a row per position: `ids` given), an
    entry per position, its row the one the position names: only owners' rows hold gradient
    (the others stay zero), so duplicates sum to the dense gradient. From a dense one (the
    batch names as many positions as the table has rows, or more: nothing to save), an
    entry per table row."""
    if ids is None:
        rows = torch.arange(num_rows, device=accumulator.device)
    else:
        rows = torch.cat([targets.view(-1).long(), ids.reshape(-1).long()])
    return torch.sparse_coo_tensor(rows[None], accumulator, (num_rows, accumulator.shape[1]),
                                   check_invariants=False)  # rows are ids of the table


def expand_gradient(owners: torch.Tensor, accumulator: torch.Tensor) -> torch.Tensor:
    """The (num_rows, d) table gradient, in the accumulator's dtype, from its rows.

    Cast the float32 accumulator to the table's dtype first where that differs: the cast of
    a row per position is smaller than the float32 rows beside the whole table."""
    num_rows, dim = len(owners), accumulator.shape[1]
    out = torch.empty((num_rows, dim), dtype=accumulator.dtype, device=accumulator.device)
    block_d = min(128, triton.next_power_of_2(dim))
    block_r = max(1, 4096 // block_d)
    expand_rows_kernel[(triton.cdiv(num_rows, block_r),)](
        owners, accumulator, accumulator.stride(0), out, out.stride(0), num_rows,
        len(accumulator), dim, BLOCK_R=block_r, BLOCK_D=block_d)
    return out
