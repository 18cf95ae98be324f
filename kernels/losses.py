"""Losses as `nn.Module`s that draw their own negatives, and one selector for the trainer."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from cce_tune.kernels import reference
from cce_tune.kernels.config import FUSED_LOSSES, LossConfig
from cce_tune.kernels.fused import InKernelNegatives, cce, cce_minus
from cce_tune.kernels.negatives import sample_uniform

_fell_back: set[str] = set()


def _fused_available(hidden: torch.Tensor, name: str) -> bool:
    """Fused kernels need a GPU; without one, say once that the reference stands in."""
    if hidden.is_cuda:
        return True
    if name not in _fell_back:
        _fell_back.add(name)
        warnings.warn(f"{name}: no CUDA GPU, so the PyTorch reference {FUSED_LOSSES[name]} "
                      "computes the same loss instead", stacklevel=3)
    return False


class SequenceLoss(nn.Module):
    """Loss over a batch of tokens: draws negatives, scores against the item embeddings."""

    def __init__(self, config: LossConfig, num_items: int) -> None:
        super().__init__()
        self.config = config
        self.num_items = num_items

    def sample(self, num_tokens: int, device: torch.device) -> torch.Tensor:
        config = self.config
        mode = "per_position" if config.name == "bce" else config.negative_mode
        return sample_uniform(self.num_items, config.num_negatives, mode=mode,
                              num_tokens=num_tokens, tile_size=config.tile_size, device=device)

    def forward(
        self, hidden: torch.Tensor, item_emb: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        config = self.config
        fused = config.name in FUSED_LOSSES and _fused_available(hidden, config.name)
        name = FUSED_LOSSES.get(config.name, config.name)
        sparse = config.sparse_item_grad
        if (fused or name != "ce") and torch.is_autocast_enabled(hidden.device.type):
            # Autocast reaches neither inside a custom kernel nor a lookup: cast as it would
            # for a matmul, before the references gather rows (gathered float32 rows would
            # be cast after, both copies alive); the table by a cast that passes a sparse
            # gradient back, which `.to` does not. The fused kernels read a float32 table's
            # rows themselves: with a sparse gradient, whose point is to touch few rows, the
            # table is not cast whole. The full-catalog reference gathers nothing: autocast's
            # own cast serves it.
            dtype = torch.get_autocast_dtype(hidden.device.type)
            hidden = hidden.to(dtype)
            if not sparse:
                item_emb = item_emb.to(dtype)
            elif not fused:
                item_emb = cast_table(item_emb, dtype)
        if name == "ce":
            ce = cce if fused else reference.ce
            return ce(hidden, item_emb, targets, temperature=config.temperature)
        tile_size = config.tile_size if config.negative_mode == "tile" else None
        if fused and config.in_kernel_negatives:
            negatives = InKernelNegatives(config.num_negatives, config.negative_mode,
                                          config.tile_size)
            return cce_minus(hidden, item_emb, targets, negatives,
                             temperature=config.temperature,
                             sampled_softmax=config.sampled_softmax, sparse_item_grad=sparse)
        negatives = self.sample(hidden.shape[0], hidden.device)
        if name == "ce_minus":
            ce_minus = cce_minus if fused else reference.ce_minus
            return ce_minus(
                hidden, item_emb, targets, negatives, tile_size=tile_size,
                temperature=config.temperature, sampled_softmax=config.sampled_softmax,
                sparse_item_grad=sparse,
            )
        if config.name == "bce":
            return reference.bce(hidden, item_emb, targets, negatives)
        return reference.gbce(hidden, item_emb, targets, negatives, tile_size=tile_size,
                              t=config.gbce_t)


class _CastTable(torch.autograd.Function):
    """`table.to(dtype)` whose backward casts a sparse gradient's values back (autograd's own
    cast refuses a sparse gradient)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        ctx.dtype = table.dtype
        return table.to(dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if grad.is_sparse:
            return torch.sparse_coo_tensor(grad._indices(), grad._values().to(ctx.dtype),
                                           grad.shape, check_invariants=False), None
        return grad.to(ctx.dtype), None


def cast_table(table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`table.to(dtype)` for a table whose gradient comes back sparse."""
    return _CastTable.apply(table, dtype)


def make_loss(config: LossConfig, num_items: int) -> nn.Module:
    """The module that computes `config.name`."""
    return SequenceLoss(config, num_items)
