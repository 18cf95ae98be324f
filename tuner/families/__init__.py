"""The registry of model families: a name, and the module that defines it, imported only when
the family is used. Adding a family is its module plus one line here, or `register` from
outside (a test's toy model, a user's own):

    >>> from cce_tune.tuner.families import get, names
    >>> names()
    ('sasrec', 'dlrm')
    >>> get("sasrec").quality_label
    'NDCG@10'
"""

from __future__ import annotations

import importlib

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families.base import REPORT_COLUMNS, Family, Knob, Target

BUILTIN = {"sasrec": "cce_tune.tuner.families.sasrec", "dlrm": "cce_tune.tuner.families.dlrm"}
DEFAULT = "sasrec"
_registered: dict[str, Family] = {}


class UnknownFamily(CceTuneError, ValueError):
    """A model name no family answers to; the message lists the ones that do."""

__all__ = ["DEFAULT", "Family", "Knob", "Target", "UnknownFamily", "get", "names", "register"]


def register(family: Family) -> None:
    """Make `family` available by its name to `--model`, spaces, the search and reports."""
    for metric in (family.quality, family.second, family.throughput):
        if metric in REPORT_COLUMNS:
            raise ValueError(f"family {family.name!r}: metric {metric!r} names a column the "
                             "reports write; call it something else")
    _registered[family.name] = family


def names() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*BUILTIN, *_registered]))


def get(name: str) -> Family:
    """The family called `name`, imported on first use."""
    if name not in _registered:
        if name not in BUILTIN:
            raise UnknownFamily(f"model {name!r}: choose one of {', '.join(names())}")
        register(importlib.import_module(BUILTIN[name]).FAMILY)
    return _registered[name]
