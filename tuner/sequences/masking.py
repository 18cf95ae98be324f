"""The cloze task's masks: which positions of a training batch BERT4Rec must predict."""

from __future__ import annotations

import torch


def cloze_mask(items: torch.Tensor, mask_prob: float, capacity: int | None = None,
               last_item_prob: float = 0.0) -> torch.Tensor:
    """(batch, length) bool: each real item (id != 0) masked with probability `mask_prob`, a
    sequence with none masked gets one at a random real position, padding never. With
    probability `last_item_prob` a sequence has its last real item masked and no other.

    With `capacity` (at least the number of sequences), masks beyond it are dropped at
    random, never a sequence's first, so that the loss never sees more tokens than the
    memory model allowed for (`models.bert4rec_config.masked_capacity`: a batch reaches
    that bound with probability under 1e-9); nothing is read back from the device for it.
    Draws from torch's generator, so `torch.manual_seed` makes it repeatable.
    """
    real = items != 0
    mask = (torch.rand(items.shape, device=items.device) < mask_prob) & real
    # A random real position per sequence, for those that drew none (rows of padding only
    # stay unmasked).
    keys = torch.rand(items.shape, device=items.device).masked_fill_(~real, -1.0)
    pick = torch.zeros_like(mask).scatter_(1, keys.argmax(1, keepdim=True), True)
    mask |= pick & real & ~mask.any(1, keepdim=True)
    if last_item_prob > 0:
        last_only = torch.rand(len(items), 1, device=items.device) < last_item_prob
        positions = torch.arange(items.shape[1], device=items.device)
        last = real & (positions == (real * positions).argmax(1, keepdim=True))
        mask = torch.where(last_only, last, mask)
    if capacity is not None:
        mask = _within(mask, capacity)
    return mask


def _within(mask: torch.Tensor, capacity: int) -> torch.Tensor:
    """`mask` with at most `capacity` positions: every sequence's first, then a uniform
    random choice of the others (the `capacity` highest of random keys, firsts keyed above
    them all), without a count read back from the device."""
    if capacity < len(mask):
        raise ValueError(f"capacity {capacity} is under the {len(mask)} sequences that may "
                         "need a masked position")
    first = mask & (mask.cumsum(1) == 1)
    keys = torch.rand(mask.shape, device=mask.device).masked_fill_(first, 2.0)
    keys = keys.masked_fill_(~mask, -1.0).view(-1)
    top = keys.topk(min(capacity, keys.numel()))
    kept = torch.zeros_like(mask).view(-1)
    return kept.scatter_(0, top.indices, top.values >= 0).view(mask.shape)
