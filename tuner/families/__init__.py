"""The registry of model families: a name, and the module that defines it, imported only when
the family is used. Adding a family is its module plus one line here, or `register` from
outside (a test's toy model, a user's own):

    >>> from cce_tune.tuner.families import get, names
    >>> names()
    ('sasrec', 'dlrm', 'bert4rec')
    >>> get("sasrec").quality_label
    'NDCG@10'
"""

from __future__ import annotations

import importlib

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families.base import REPORT_COLUMNS, Family, Knob, Target

BUILTIN = {"sasrec": "cce_tune.tuner.families.sasrec", "dlrm": "cce_tune.tuner.families.dlrm",
           "bert4rec": "cce_tune.tuner.families.bert4rec"}
DEFAULT = "sasrec"
_registered: dict[str, Family] = {}


class UnknownFamily(CceTuneError, ValueError):
    """A model name no family answers to; the message lists the ones that do."""


__all__ = ["DEFAULT", "Family", "Knob", "Target", "UnknownFamily", "get", "names", "register"]


def register(family: Family) -> None:
    """Make `family` available by its name to `--model`, spaces, the search and reports.
    Raises ValueError for a name already taken or a family the reports could not show."""
    if family.name in BUILTIN or family.name in _registered:
        raise ValueError(f"model {family.name!r} is registered already; choose another name")
    _check(family)
    _registered[family.name] = family


def _check(family: Family) -> None:
    """Its metrics and searchable knobs must not take a column the reports fill themselves,
    and its table columns and grid must name its searchable knobs."""
    metrics = (family.quality, family.second, family.throughput)
    for name in (*metrics, *family.searchable):
        if name in REPORT_COLUMNS or (name == "loss" and name in metrics):
            raise ValueError(f"family {family.name!r}: {name!r} names a column the reports "
                             "write; call it something else")
    for knob in (*(knob for knob, _ in family.columns), *family.grid):
        if knob not in family.searchable:
            raise ValueError(f"family {family.name!r}: column or grid knob {knob!r} is none "
                             f"of its searchable knobs ({', '.join(family.searchable)})")


def names() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*BUILTIN, *_registered]))


def get(name: str) -> Family:
    """The family called `name`, imported on first use."""
    if name not in _registered:
        if name not in BUILTIN:
            raise UnknownFamily(f"model {name!r}: choose one of {', '.join(names())}")
        family = importlib.import_module(BUILTIN[name]).FAMILY
        _check(family)
        _registered[name] = family
    return _registered[name]
