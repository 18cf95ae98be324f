"""Float32 rows of 256 and more, shared and tile modes: the products through cuBLAS, a chunk
of tokens at a time, the softmax work in the fused kernels (`config.products_in_cublas`).

Triton made these products as tf32x3, whose split operands crowd the shared memory until
the tiles shrink to 32 x 16, or as IEEE float32 on the CUDA cores at about 10 TFLOP/s;
cuBLAS's float32 GEMM runs near the GPU's float32 rate. Each chunk's products (at most
`config.CUBLAS_CHUNK_BYTES` of float32, never the whole logits) go to the forward kernel,
which reads them where it would have made them (SCORES_GIVEN); in the backward, made again,
to the hidden pass, which overwrites them with their gradients. cuBLAS multiplies those into
d(hidden) and the negatives' gradient rows, which `index_add_` adds into the table's
gradient. The positives' terms stay in the kernels, as in every mode.

The products follow PyTorch's float32 matmul precision, as the model's own layers do: IEEE
float32 by default, TF32 where `torch.backends.cuda.matmul.allow_tf32` (or
`torch.set_float32_matmul_precision`) allows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import triton

from cce_tune.kernels import config
from cce_tune.kernels.cce_backward import cce_minus_backward_hidden_kernel, launch_args
from cce_tune.kernels.cce_forward import cce_minus_forward_kernel

if TYPE_CHECKING:
    from cce_tune.kernels.fused import _Plan


@dataclass(frozen=True)
class _Group:
    """Tokens whose products are one cuBLAS call (`config.cublas_groups`): `tiles` products
    of `tile_tokens` tokens each, against rows `id_row`.. of the ids (one row, 0, shared)."""

    first: int
    tiles: int
    tile_tokens: int
    id_row: int

    @property
    def tokens(self) -> int:
        return self.tiles * self.tile_tokens


def _groups(plan: _Plan, tokens: int, dim: int) -> list[_Group]:
    """The step's groups, as `config.cublas_groups` cuts them (none for no tokens)."""
    mode = "tile" if plan.tiled else "shared"
    return [_Group(first, tiles, tile_tokens, first // plan.tile_size if plan.tiled else 0)
            for first, tiles, tile_tokens in config.cublas_groups(
                mode, tokens, plan.num_negatives, dim, plan.tile_size)]


class _Buffers:
    """A step's chunk-sized float32 scratch, made once and viewed per group: the products
    (then their gradients), the negatives' rows (gathered per chunk of tiles; once, shared)
    and, for the item gradient, their gradient rows."""

    def __init__(self, plan: _Plan, hidden: torch.Tensor, item_emb: torch.Tensor,
                 ids: torch.Tensor, item_grad: bool) -> None:
        tokens, dim = hidden.shape
        groups = _groups(plan, tokens, dim)
        most_tokens = max((group.tokens for group in groups), default=0)
        most_tiles = max((group.tiles for group in groups), default=0)
        negatives = plan.num_negatives
        self.groups, self.dim, self.negatives = groups, dim, negatives
        self.item_emb, self.ids = item_emb, ids.view(1, -1) if ids.dim() == 1 else ids
        self.scores = torch.empty(most_tokens * negatives, dtype=torch.float32,
                                  device=hidden.device)
        self.shared_rows = (None if plan.tiled else
                            item_emb.index_select(0, ids).view(1, negatives, dim))
        self.tile_rows = (torch.empty(most_tiles * negatives * dim, dtype=torch.float32,
                                      device=hidden.device) if plan.tiled else None)
        self.row_grads = (torch.empty(most_tiles * negatives * dim, dtype=torch.float32,
                                      device=hidden.device) if item_grad else None)

    def group_ids(self, group: _Group) -> torch.Tensor:
        """The group's ids in a row, (tiles x N,): a view, or a copy of rows laid apart."""
        return self.ids[group.id_row:group.id_row + group.tiles].reshape(-1)

    def products(self, group: _Group) -> torch.Tensor:
        """(tiles, tile_tokens, N) view of the products' buffer."""
        return self.scores[:group.tokens * self.negatives].view(
            group.tiles, group.tile_tokens, self.negatives)

    def rows(self, group: _Group, ids: torch.Tensor) -> torch.Tensor:
        """(tiles, N, d): the group's negatives' rows, those of its `ids` (`group_ids`)."""
        if self.shared_rows is not None:
            return self.shared_rows
        out = self.tile_rows[:ids.numel() * self.dim].view(-1, self.dim)
        return torch.index_select(self.item_emb, 0, ids, out=out).view(
            group.tiles, self.negatives, self.dim)

    def row_gradients(self, group: _Group) -> torch.Tensor:
        """(tiles, N, d) view of the gradient rows' buffer."""
        return self.row_grads[:group.tiles * self.negatives * self.dim].view(
            group.tiles, self.negatives, self.dim)


def _multiply(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, add: bool = False) -> None:
    """out (+)= a @ b over batches of matrices; one GEMM where the batch is one."""
    if a.shape[0] == 1:
        a, b, out = a[0], b[0], out[0]
        if add:
            out.addmm_(a, b)
        else:
            torch.mm(a, b, out=out)
    elif add:
        out.baddbmm_(a, b)
    else:
        torch.bmm(a, b, out=out)


def _slice(t: torch.Tensor, group: _Group) -> torch.Tensor:
    """The group's tokens of a per-token tensor."""
    return t[group.first:group.first + group.tokens]


def _batched(t: torch.Tensor, group: _Group) -> torch.Tensor:
    """The group's tokens of a (tokens, d) tensor as (tiles, tile_tokens, d): a view."""
    return _slice(t, group).unflatten(0, (group.tiles, group.tile_tokens))


def forward(hidden: torch.Tensor, item_emb: torch.Tensor, targets: torch.Tensor,
            ids: torch.Tensor, log_q_arg: torch.Tensor, loss: torch.Tensor, lse: torch.Tensor,
            pos: torch.Tensor, shift: torch.Tensor, partials: torch.Tensor,
            plan: _Plan) -> None:
    """`kernels.fused`'s forward results (loss, lse, pos, shift, per-program partial sums)
    chunk by chunk: cuBLAS's products, then the forward kernel over them. `log_q_arg` is
    log-Q in log2 units, or any float32 tensor where there is none."""
    buffers = _Buffers(plan, hidden, item_emb, ids, item_grad=False)
    blocks = plan.blocks["forward"]
    unused = lse  # the pointer for a tensor the kernel does not read
    for group in buffers.groups:
        if group.first % blocks.t:  # each program's partial sums go to its own column
            raise ValueError(f"a chunk starts at token {group.first}, inside a program of "
                             f"the forward's {blocks.t} tokens")
        products = buffers.products(group)
        rows = buffers.rows(group, buffers.group_ids(group))
        _multiply(_batched(hidden, group), rows.transpose(1, 2), products)
        ids_rows = buffers.ids[group.id_row:]
        h = _slice(hidden, group)
        cce_minus_forward_kernel[(triton.cdiv(group.tokens, blocks.t), 1)](
            h, h.stride(0), item_emb, item_emb.stride(0), _slice(targets, group),
            ids_rows, ids_rows.stride(0) if ids.dim() == 2 else 0, log_q_arg,
            _slice(loss, group), _slice(lse, group), _slice(pos, group), _slice(shift, group),
            partials[:, group.first // blocks.t:], unused, unused, unused, 0, 0, unused, 0,
            products, products.stride(1), partials.stride(0),
            group.tokens, hidden.shape[1], plan.num_negatives, plan.num_items, plan.tile_size,
            unused, plan.scale, plan.log2_others,
            GATHER=False, TENSOR_GATHER=False, TILED=plan.tiled, SCORES_GIVEN=True,
            DIRECTIONS=False, DRAWN_STEPS=config.DRAWN_STEPS, COUNTED=False, SPLIT=False,
            **plan.constants("forward"),
        )


@torch.no_grad()  # cuBLAS's calls write into buffers (out=): no graph of the gradient
def backward(hidden: torch.Tensor, item_emb: torch.Tensor, targets: torch.Tensor,
             ids: torch.Tensor, log_q: torch.Tensor | None, lse: torch.Tensor,
             pos: torch.Tensor, shift: torch.Tensor, grad_loss: torch.Tensor,
             totals: torch.Tensor | None, d_hidden: torch.Tensor, hidden_grad: bool,
             d_items: torch.Tensor | None, owners: torch.Tensor | None, plan: _Plan,
             mean: bool) -> None:
    """d(hidden) into `d_hidden` (the positives' terms alone unless `hidden_grad`), and the
    item gradient added into `d_items` (None: a frozen table; rows `owners[id]` of a compact
    accumulator where `owners` is given), chunk by chunk: cuBLAS's products again, the
    hidden pass turning them into their gradients (and writing the positives' terms),
    cuBLAS multiplying those on."""
    buffers = _Buffers(plan, hidden, item_emb, ids, item_grad=d_items is not None)
    blocks = plan.blocks["hidden"]
    for group in buffers.groups:
        h = _batched(hidden, group)
        products = buffers.products(group)
        group_ids = buffers.group_ids(group)
        rows = buffers.rows(group, group_ids)
        _multiply(h, rows.transpose(1, 2), products)
        grad = _slice(grad_loss, group) if grad_loss.dim() else grad_loss
        dh = _slice(d_hidden, group)
        args = launch_args(targets, lse, buffers.ids[group.id_row:] if ids.dim() == 2 else ids,
                           log_q, owners, totals, grad)
        cce_minus_backward_hidden_kernel[(triton.cdiv(group.tokens, blocks.t),)](
            h, hidden.stride(0), item_emb, item_emb.stride(0), _slice(targets, group),
            args.ids, args.ids_stride, args.log_q, _slice(lse, group), _slice(pos, group),
            _slice(shift, group), grad, args.grad_stride, args.totals, dh, dh.stride(0),
            d_items if d_items is not None else dh,
            d_items.stride(0) if d_items is not None else 0, args.owners, products,
            products.stride(1), group.tokens, hidden.shape[1], plan.num_negatives,
            plan.num_items, plan.tile_size, lse, plan.scale, plan.inv_temperature,
            TILED=plan.tiled, ITEM_GRAD=d_items is not None, ITEMS_HERE=False,
            COMPACT=owners is not None, MEAN=mean, SCORES_GIVEN=True,
            **plan.constants("hidden"),
        )
        if hidden_grad:
            _multiply(products, rows, _batched(d_hidden, group), add=True)
        if d_items is not None:
            row_gradients = buffers.row_gradients(group)
            _multiply(products.transpose(1, 2), h, row_gradients)
            d_items.index_add_(0, _gradient_rows(group_ids, owners),
                               row_gradients.view(-1, hidden.shape[1]))


def _gradient_rows(ids: torch.Tensor, owners: torch.Tensor | None) -> torch.Tensor:
    """Rows of the item accumulator that the (flat) ids' gradient rows add into: the ids,
    or their owners' rows in a compact accumulator (kernels.compact), whose id 0 (no
    negative: its gradient row is zeros) may own none, so it adds into row 0."""
    if owners is None:
        return ids
    return torch.where(ids != 0, owners.index_select(0, ids), 0)
