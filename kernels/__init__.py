"""Cross-entropy losses for item catalogs: PyTorch references and fused Triton kernels.

    >>> from cce_tune.kernels import cce_minus, reference
    >>> loss = cce_minus(hidden, item_emb, targets, negatives)   # on the GPU, fused
    >>> same = reference.ce_minus(hidden, item_emb, targets, negatives)

Names load on first use, so that `kernels.config` and `kernels.memory` import without torch.
"""

from importlib import import_module

_HOMES = {
    "CCE": "fused", "CCEMinus": "fused", "InKernelNegatives": "fused", "cce": "fused",
    "cce_minus": "fused", "in_kernel_ids": "fused",
    "LOSSES": "config", "NEGATIVE_MODES": "config", "LossConfig": "config",
    "make_loss": "losses", "sample_uniform": "negatives",
    "bce": "reference", "ce": "reference", "ce_minus": "reference", "gbce": "reference",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
