"""Cross-entropy losses for item catalogs: PyTorch references and fused Triton kernels.

    >>> from kernels import cce_minus, reference
    >>> loss = cce_minus(hidden, item_emb, targets, negatives)   # on the GPU, fused
    >>> same = reference.ce_minus(hidden, item_emb, targets, negatives)
"""

from kernels.fused import CCE, CCEMinus, InKernelNegatives, cce, cce_minus, in_kernel_ids
from kernels.losses import LOSSES, LossConfig, make_loss
from kernels.negatives import NEGATIVE_MODES, sample_uniform
from kernels.reference import bce, ce, ce_minus, gbce

__all__ = [
    "CCE",
    "CCEMinus",
    "InKernelNegatives",
    "cce",
    "cce_minus",
    "in_kernel_ids",
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
