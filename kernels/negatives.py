"""Uniform negative sampling in the three layouts the losses accept.

- `shared`: one set of N ids for the whole batch, shape (N,).
- `per_position`: N ids per token, shape (tokens, N).
- `tile`: N ids per block of `tile_size` consecutive tokens, shape (ceil(tokens / tile), N);
  scores become a dense tile-by-tile matrix product instead of a per-token gather.
"""

from __future__ import annotations

import torch

from cce_tune.kernels.config import DEFAULT_TILE_SIZE, negatives_shape


def sample_uniform(
    num_items: int,
    num_negatives: int,
    *,
    mode: str,
    num_tokens: int,
    tile_size: int = DEFAULT_TILE_SIZE,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Item ids drawn uniformly from 1..num_items, with replacement (int64)."""
    shape = negatives_shape(mode, num_tokens, num_negatives, tile_size)
    return torch.randint(1, num_items + 1, shape, device=device, generator=generator)


def per_token(negatives: torch.Tensor, num_tokens: int, tile_size: int | None) -> torch.Tensor:
    """Any layout as (tokens, N) or (1, N) ids, for code that indexes per token."""
    if negatives.dim() == 1:
        return negatives.unsqueeze(0)
    if tile_size is not None:
        return negatives.repeat_interleave(tile_size, dim=0)[:num_tokens]
    if negatives.shape[0] != num_tokens:
        raise ValueError(
            f"per-position negatives have {negatives.shape[0]} rows for {num_tokens} tokens"
        )
    return negatives
