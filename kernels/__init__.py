"""Cross-entropy losses for item catalogs: PyTorch references and fused Triton kernels.

    >>> from kernels import reference
    >>> loss = reference.ce_minus(hidden, item_emb, targets, negatives)
"""

from kernels.losses import LOSSES, LossConfig, make_loss
from kernels.negatives import NEGATIVE_MODES, sample_uniform
from kernels.reference import bce, ce, ce_minus, gbce

__all__ = [
    "LOSSES",
    "NEGATIVE_MODES",
    "LossConfig",
    "bce",
    "ce",
    "ce_minus",
    "gbce",
    "make_loss",
    "sample_uniform",
]
