"""Raw interactions -> SequenceData: implicit feedback, user filter, time order, id remap."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.errors import DataError

# A user needs a training item besides the validation and test items.
MIN_USER_INTERACTIONS_FLOOR = 3


@dataclass(frozen=True)
class Interactions:
    """One row per interaction, in file order; ids are the source's own."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    rating: np.ndarray | None = None


@dataclass(frozen=True)
class PrepareOptions:
    """How raw interactions become sequences; part of the cache key."""

    min_rating: float | None = None
    min_user_interactions: int = 5

    def __post_init__(self) -> None:
        if self.min_user_interactions < MIN_USER_INTERACTIONS_FLOOR:
            raise DataError(
                f"--min-user-interactions {self.min_user_interactions} is too small: the "
                f"leave-one-out split needs at least {MIN_USER_INTERACTIONS_FLOOR} per user"
            )


def prepare(raw: Interactions, options: PrepareOptions, name: str) -> SequenceData:
    """Filter, order each user's items by time (stable: file order breaks ties) and remap ids."""
    keep = np.ones(len(raw.user), dtype=bool)
    if options.min_rating is not None:
        if raw.rating is None:
            raise DataError(f"{name}: --min-rating given but the data has no rating column")
        keep &= raw.rating >= options.min_rating
    users, items, times = raw.user[keep], raw.item[keep], raw.timestamp[keep]

    _, user_index, user_counts = np.unique(users, return_inverse=True, return_counts=True)
    active = user_counts[user_index] >= options.min_user_interactions
    users, items, times = user_index[active], items[active], times[active]
    if len(users) == 0:
        raise DataError(
            f"{name}: no user has {options.min_user_interactions} or more interactions"
            + (f" with rating >= {options.min_rating}" if options.min_rating is not None else "")
            + "; lower --min-user-interactions or --min-rating"
        )

    _check_rankable(name, len(np.unique(users)), len(np.unique(items)))
    order = np.lexsort((times, users))  # lexsort is stable: equal times keep file order
    users, items = users[order], items[order]
    item_ids, item_index = np.unique(items, return_inverse=True)
    _, user_dense = np.unique(users, return_inverse=True)
    counts = np.bincount(user_dense)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SequenceData(
        name=name,
        num_items=len(item_ids),
        offsets=offsets,
        items=(item_index + 1).astype(np.int32),
    )


MIN_USERS = MIN_ITEMS = 2
TOP_K = 10  # the metrics' cut-off: NDCG@10, HR@10


def _check_rankable(name: str, users: int, items: int) -> None:
    """Refuse data on which full-ranking metrics cannot tell a model from popularity: one
    user's every other item is excluded as seen, and one item ranks first for anyone, so any
    scorer gets 1.0. Warn when the whole catalog fits in the top 10: HR@10 is then 1.0 for
    any scorer, and NDCG@10 tells little."""
    if users < MIN_USERS or items < MIN_ITEMS:
        raise DataError(
            f"{name}: {users:,} users and {items:,} items after preparation; ranking needs at "
            f"least {MIN_USERS} users and {MIN_ITEMS} items (lower --min-user-interactions or "
            "--min-rating, or give a larger log)")
    if items <= TOP_K:
        warnings.warn(f"{name}: {items} items: the whole catalog fits in the top {TOP_K}, so "
                      f"HR@{TOP_K} is 1.0 for any ranking and NDCG@{TOP_K} says little",
                      stacklevel=2)
