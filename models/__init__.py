"""Recommendation models as plain `nn.Module`s; they know nothing of tuning or Ray.

Names load on first use, so that configs and memory declarations import without torch.
"""

from importlib import import_module

_HOMES = {"SASRec": "sasrec", "SASRecConfig": "sasrec_config",
          "BERT4Rec": "bert4rec", "BERT4RecConfig": "bert4rec_config"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
