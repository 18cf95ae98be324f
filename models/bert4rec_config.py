"""BERT4Rec's config and the masked-token bound its memory model reads, importable without torch.

Item ids run 1..num_items, 0 is padding and `num_items + 1` the mask token: the tied item
table has `num_items + 2` rows, of which the first `num_items + 1` score items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cce_tune.models.sasrec_config import SASRecConfig

# Standard deviations above the mean that the masked-token bound allows: a batch exceeds it
# with probability under 1e-9 (and the trainer unmasks the excess when one does).
MASK_SIGMAS = 6.0


@dataclass(frozen=True)
class BERT4RecConfig(SASRecConfig):
    """SASRec's fields (the encoder is SASRec's blocks); `num_items + 1` is the mask token."""

    @property
    def mask_token(self) -> int:
        return self.num_items + 1


def mean_masked(length, mask_prob: float):
    """The masked positions a sequence of `length` >= 1 real items expects (a number, or a
    tensor of lengths): max(1, Binomial(length, p)) has mean p l + (1 - p)^l, the forced
    one making up for the chance of none."""
    return mask_prob * length + (1 - mask_prob) ** length


def masked_capacity(batch: int, length: int, mask_prob: float) -> int:
    """The most masked positions a training batch of `batch` sequences of `length` may hold.

    Each real item is masked with probability `mask_prob`, and a sequence with none masked
    gets one: per sequence max(1, Binomial(n, p)), which grows (stochastically) with its n
    real items, so full sequences are the worst case. Their sum's mean plus `MASK_SIGMAS`
    standard deviations, at least one a sequence and at most every position.
    """
    p, n = mask_prob, length
    none = (1 - p) ** n  # a full sequence draws no mask and gets one
    mean = batch * mean_masked(n, p)
    # Var(max(1, X)) <= Var(X) + P(X = 0) for X ~ Binomial(n, p): the forced one adds at
    # most a Bernoulli's variance, however it correlates.
    sd = math.sqrt(batch * (n * p * (1 - p) + none))
    return min(batch * length, max(batch, math.ceil(mean + MASK_SIGMAS * sd)))
