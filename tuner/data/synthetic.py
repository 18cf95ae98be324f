"""The embedded default dataset: user sequences with a planted sequential structure.

Each item has a few fixed successors. A user's next item is, with probability `follow_prob`,
one of the current item's successors (the first most likely), otherwise a draw from a Zipf
popularity prior; no user sees an item twice, as in MovieLens. A sequential model can learn
the successor graph; a popularity ranking cannot. Presets copy real datasets' shapes (users,
items, interactions, length skew) because memory and speed depend on shapes, not content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cce_tune.tuner.data.sequences import SequenceData


@dataclass(frozen=True)
class SyntheticSpec:
    name: str
    num_users: int
    num_items: int
    num_interactions: int
    min_length: int
    median_length: int
    max_length: int
    zipf_exponent: float = 0.9
    follow_prob: float = 0.8
    successors: int = 4


SYNTHETIC_PRESETS = {
    spec.name: spec
    for spec in (
        SyntheticSpec("synthetic", 2_000, 500, 60_000, 5, 20, 200),
        # MovieLens-1M and -20M: users, items, ratings, and min / median / max ratings per user.
        SyntheticSpec("synthetic-ml-1m", 6_040, 3_706, 1_000_209, 20, 96, 2_314),
        SyntheticSpec("synthetic-ml-20m", 138_493, 26_744, 20_000_263, 20, 68, 9_254),
    )
}


def generate(spec: SyntheticSpec, seed: int = 0) -> SequenceData:
    """Draw every user's sequence; the total interaction count is exactly the spec's."""
    rng = np.random.default_rng(seed)
    lengths = _lengths(spec, rng)
    popularity = _zipf(spec.num_items, spec.zipf_exponent, rng)
    successors = _successor_table(spec, popularity, rng)
    walks, walk_offsets = _walks(spec, lengths, popularity, successors, rng)
    items, offsets = _first_unique(walks, walk_offsets, lengths, spec.num_items)
    return SequenceData(spec.name, spec.num_items, offsets, items.astype(np.int32))


def _lengths(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Log-normal lengths above the minimum, rescaled so they sum to the spec's total."""
    excess_median = spec.median_length - spec.min_length
    excess_mean = spec.num_interactions / spec.num_users - spec.min_length
    sigma = np.sqrt(2 * np.log(max(excess_mean / excess_median, 1.0)))
    excess = rng.lognormal(np.log(excess_median), sigma, spec.num_users)
    cap = spec.max_length - spec.min_length
    target = spec.num_interactions - spec.min_length * spec.num_users
    for _ in range(50):  # clipping breaks a single rescale; a few rounds converge
        excess = np.minimum(excess * target / excess.sum(), cap)
    lengths = spec.min_length + np.floor(excess).astype(np.int64)
    shortfall = spec.num_interactions - int(lengths.sum())
    room = np.flatnonzero(lengths < spec.max_length)
    lengths[rng.choice(room, size=shortfall, replace=False)] += 1
    return lengths


def _zipf(num_items: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Cumulative Zipf probabilities over item ids 1..V, ranks shuffled across ids."""
    weights = np.zeros(num_items + 1)
    weights[1 + rng.permutation(num_items)] = np.arange(1, num_items + 1) ** -exponent
    return np.cumsum(weights / weights.sum())


def _draw(cumulative: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.minimum(np.searchsorted(cumulative, rng.random(count), side="right"),
                      len(cumulative) - 1)


def _successor_table(
    spec: SyntheticSpec, popularity: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(V + 1, K) successors per item, never the item itself.

    Drawn from the square root of the popularity prior: popular items are still likelier
    successors, but walks spread over the catalog instead of cycling among the head items.
    """
    weights = np.sqrt(np.diff(popularity, prepend=0.0))
    table = _draw(np.cumsum(weights / weights.sum()), (spec.num_items + 1) * spec.successors, rng)
    table = table.reshape(spec.num_items + 1, spec.successors)
    own = np.arange(spec.num_items + 1)[:, None]
    table = np.where(table == own, table % spec.num_items + 1, table)
    return table


def _walks(
    spec: SyntheticSpec,
    lengths: np.ndarray,
    popularity: np.ndarray,
    successors: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Markov walks 3x as long as needed (repeats are dropped later), users as rows of a CSR."""
    walk_lengths = 3 * lengths + 16
    order = np.argsort(-walk_lengths, kind="stable")  # active users at step t: a prefix
    offsets = np.zeros(spec.num_users + 1, dtype=np.int64)
    np.cumsum(walk_lengths, out=offsets[1:])
    walks = np.empty(offsets[-1], dtype=np.int64)
    sorted_lengths = walk_lengths[order]
    starts = offsets[:-1][order]
    choice = np.cumsum(0.5 ** np.arange(spec.successors))
    choice /= choice[-1]
    current = _draw(popularity, spec.num_users, rng)
    for step in range(int(sorted_lengths[0])):
        active = int(np.searchsorted(-sorted_lengths, -step, side="left"))
        current = current[:active]
        walks[starts[:active] + step] = current
        follow = rng.random(active) < spec.follow_prob
        which = np.searchsorted(choice, rng.random(active), side="right")
        jump = _draw(popularity, active, rng)
        current = np.where(follow, successors[current, which], jump)
    return walks, offsets


def _first_unique(
    walks: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's first distinct items, as many as its length; a shortfall goes to others."""
    num_users = len(lengths)
    user_of = np.repeat(np.arange(num_users), np.diff(offsets))
    _, first = np.unique(user_of * (num_items + 1) + walks, return_index=True)
    distinct = np.zeros(len(walks), dtype=bool)
    distinct[first] = True
    available = np.bincount(user_of[distinct], minlength=num_users)
    take = np.minimum(lengths, available)
    shortfall = int(lengths.sum() - take.sum())
    if shortfall:  # long walks trapped in a small part of the graph: others take the rest
        spare = available - take
        donors = np.flatnonzero(spare > 0)
        before = np.cumsum(spare[donors]) - spare[donors]
        take[donors] += np.clip(shortfall - before, 0, spare[donors])
    rank = np.cumsum(distinct) - 1
    rank_start = np.concatenate(([0], np.cumsum(available)[:-1]))
    keep = distinct & (rank - rank_start[user_of] < take[user_of])
    new_offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(take, out=new_offsets[1:])
    return walks[keep], new_offsets
