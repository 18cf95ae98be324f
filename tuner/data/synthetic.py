"""The embedded datasets: user sequences drawn from a planted model of tastes and successors.

Each item has a Zipf popularity, a cluster (a "genre") and a few fixed successors in its
cluster. A user has tastes over the clusters. A user's next item is, with probability
`follow_prob`, one of the current item's successors (the first likeliest); otherwise an item
drawn by popularity from a cluster: the current item's with probability `stay_prob`, else one
the user's tastes pick. No user sees an item twice, as in MovieLens: the walk runs on, and
items already seen are dropped, so the observed next item follows the same mixture
renormalised over unseen items (which full-ranking evaluation with seen items excluded ranks).

Presets copy real datasets' shapes (users, items, interactions, length skew), because memory
and speed depend on shapes. `synthetic` is the small easy set of the fast tests (one cluster,
so no tastes: strong successors, follow_prob 0.8; SASRec reaches NDCG@10 near 0.6, 6x
popularity). The `synthetic-ml-*` presets are calibrated to real MovieLens difficulty, from
published figures (leave-one-out split, full ranking, seen items excluded):

- SASRec with full cross-entropy on ml-1m: test NDCG@10 0.182, with 3,000 sampled negatives
  0.186, with BCE and one negative 0.131 (Klenitskiy & Vasilev, "Turning Dross Into Gold
  Loss: is BERT4Rec really better than SASRec?", RecSys 2023), so a target of 0.10-0.20;
  popularity 2-6x below the model (issue 14's reading of the published ratios).
- ml-1m's shape: 6,040 users, 3,706 rated items, 1,000,209 ratings, at least 20 per user,
  median 96, most 2,314; each item at most once per user; the top 10 % of items hold roughly
  40 % of ratings.

Known gaps (follow-0.35 at ml-1m shape): the most popular item reaches 86 % of users (ml-1m's,
American Beauty, about 57 %) and no item has fewer than 40 interactions (ml-1m has a long
thin tail); SASRec stays below the first-order Markov proxy, as random successors are a
high-rank structure that counts memorise and d = 64 embeddings do not.

Learnability comes from three weaker signals instead of one strong one: tastes (what a
user's history says about the clusters it will draw from: matrix-factorisation-like),
cluster persistence (the next item tends to share the current one's cluster: a session-like
drift) and soft successors (many, weakly followed). `planted_scores` gives the model's own
next-item probabilities: a near-ceiling (it knows the latent tastes).
`benchmarks/synthetic_calibration.py` measures popularity, a first-order Markov proxy, that
ceiling and SASRec on candidate settings (`CALIBRATION_CANDIDATES`); the presets take theirs
from `ML_SETTINGS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

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
    follow_prob: float = 0.8  # a step goes to one of the current item's successors
    successors: int = 4  # per item, in its cluster
    successor_decay: float = 0.5  # weight of successor k + 1 over successor k
    clusters: int = 1  # item clusters ("genres"); 1: no tastes, every jump by popularity
    stay_prob: float = 0.0  # a jump stays in the current item's cluster, else tastes pick
    taste_concentration: float = 1.0  # mean Dirichlet parameter per cluster: small, narrow tastes


# Generator settings that set real-data difficulty: `benchmarks/synthetic_calibration.py`
# compares these candidates (at ml-1m shape; `--candidates NAME ...`), and the calibrated
# presets below use ML_SETTINGS. Each is a dict of SyntheticSpec fields.
_SOFT = {"successors": 16, "successor_decay": 0.85, "clusters": 24, "stay_prob": 0.5,
         "taste_concentration": 1.0}
CALIBRATION_CANDIDATES: dict[str, dict] = {
    "easy": {},  # the planted walk of `synthetic`, for reference: far too easy
    "taste-only": {**_SOFT, "follow_prob": 0.0},  # tastes and cluster persistence alone
    **{f"follow-{p}": {**_SOFT, "follow_prob": p} for p in (0.15, 0.25, 0.35, 0.42, 0.5)},
}
# Measured on an H200 (benchmarks/synthetic_calibration.py, seed 0, ml-1m shape, patience 3):
# follow-0.35 gave SASRec full CE test NDCG@10 0.107, popularity 0.028 (3.7x), CE- with
# 2,048 negatives 0.102 (batch 128) and 0.096 (batch 1,024).
ML_SETTINGS = "follow-0.35"


def _calibrated(spec: SyntheticSpec) -> SyntheticSpec:
    return replace(spec, **CALIBRATION_CANDIDATES[ML_SETTINGS])


SYNTHETIC_PRESETS = {
    spec.name: spec
    for spec in (
        SyntheticSpec("synthetic", 2_000, 500, 60_000, 5, 20, 200),
        # MovieLens-1M and -20M: users, items, ratings, and min / median / max ratings per user.
        _calibrated(SyntheticSpec("synthetic-ml-1m", 6_040, 3_706, 1_000_209, 20, 96, 2_314)),
        _calibrated(SyntheticSpec("synthetic-ml-20m", 138_493, 26_744, 20_000_263, 20, 68,
                                  9_254)),
    )
}


@dataclass(frozen=True)
class PlantedModel:
    """The latent structure a spec and seed draw: what `planted_scores` ranks by."""

    spec: SyntheticSpec
    weights: np.ndarray  # (V + 1,) Zipf weight per item id, 0 for padding
    cluster_of: np.ndarray  # (V + 1,) cluster per item id (padding: 0)
    cluster_weight: np.ndarray  # (C,) total weight of each cluster's items
    successors: np.ndarray  # (V + 1, K) successor ids per item
    tastes: np.ndarray  # (U, C) each user's cluster probabilities

    @property
    def successor_probs(self) -> np.ndarray:
        return _successor_probs(self.spec)


def generate(spec: SyntheticSpec, seed: int = 0,
             progress: Callable[[float], None] | None = None) -> SequenceData:
    """Draw every user's sequence; the total interaction count is exactly the spec's.
    `progress` is told the share of the walks drawn so far (most of the time)."""
    _check(spec)
    rng = np.random.default_rng(seed)
    lengths = _lengths(spec, rng)
    model, clusters = _planted(spec, rng)
    walks, walk_offsets = _walks(spec, lengths, model, clusters, rng, progress)
    items, offsets = _first_unique(walks, walk_offsets, lengths, spec.num_items)
    return SequenceData(spec.name, spec.num_items, offsets, items.astype(np.int32))


def planted_model(spec: SyntheticSpec, seed: int = 0) -> PlantedModel:
    """The latent structure behind `generate(spec, seed)` (the same draws, no walks)."""
    _check(spec)
    rng = np.random.default_rng(seed)
    _lengths(spec, rng)
    return _planted(spec, rng)[0]


def planted_scores(model: PlantedModel, users: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(len(users), V + 1) probabilities of each next item after `previous` under the planted
    model, before seen items are removed (which rescales, so the ranking holds).

    An oracle: it knows each user's tastes, which a learner must infer from the history, and
    takes the walk to be at the last observed item (after a dropped repeat it is not).
    """
    spec = model.spec
    within = model.weights / model.cluster_weight[model.cluster_of]  # P(item | its cluster)
    jump = 1.0 - spec.follow_prob
    taste = model.tastes[users][:, model.cluster_of]  # (n, V + 1)
    scores = jump * (1.0 - spec.stay_prob) * taste * within
    same = model.cluster_of[None, :] == model.cluster_of[previous][:, None]
    scores += jump * spec.stay_prob * same * within
    rows = np.repeat(np.arange(len(users)), spec.successors)
    np.add.at(scores, (rows, model.successors[previous].ravel()),
              np.tile(spec.follow_prob * model.successor_probs, len(users)))
    scores[:, 0] = 0.0
    return scores


def _check(spec: SyntheticSpec) -> None:
    if not 1 <= spec.clusters <= spec.num_items // 2:
        raise ValueError(f"{spec.name}: clusters must be 1..{spec.num_items // 2} (two items "
                         f"each at least), not {spec.clusters}")
    for field in ("follow_prob", "stay_prob"):
        if not 0.0 <= getattr(spec, field) <= 1.0:
            raise ValueError(f"{spec.name}: {field} must be in [0, 1]")


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


@dataclass(frozen=True)
class _Clusters:
    """Items grouped by cluster, for drawing by weight within one: member ids in cluster
    order, and per member its cluster plus the cumulative share of its cluster's weight, so
    one `searchsorted` of `cluster + u` draws from many clusters at once."""

    members: np.ndarray  # (V,) item ids, cluster by cluster
    first: np.ndarray  # (C + 1,) where each cluster's members start
    keys: np.ndarray  # (V,) cluster of member + cumulative share within it

    @classmethod
    def build(cls, cluster_of: np.ndarray, weights: np.ndarray, count: int) -> _Clusters:
        members = 1 + np.argsort(cluster_of[1:], kind="stable")
        first = np.searchsorted(cluster_of[members], np.arange(count + 1))
        member_cluster = cluster_of[members]
        share = weights[members] / np.bincount(member_cluster, weights[members], count)[
            member_cluster]
        keys = np.concatenate([np.cumsum(share[a:b])
                               for a, b in zip(first[:-1], first[1:], strict=True)])
        return cls(members, first, member_cluster + keys)

    def draw(self, cluster: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """An item of each `cluster` by weight, from uniforms on [0, 1)."""
        at = np.searchsorted(self.keys, cluster + uniforms, side="right")
        return self.members[np.minimum(at, self.first[cluster + 1] - 1)]


def _planted(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[PlantedModel, _Clusters]:
    """Popularity, clusters, tastes and successors; one cluster draws no tastes."""
    weights = np.zeros(spec.num_items + 1)
    weights[1 + rng.permutation(spec.num_items)] = (
        np.arange(1, spec.num_items + 1) ** -spec.zipf_exponent)
    cluster_of = np.zeros(spec.num_items + 1, dtype=np.int64)
    tastes = np.ones((spec.num_users, 1))
    if spec.clusters > 1:  # equal-sized clusters, each a mix of head and tail items
        cluster_of[1 + rng.permutation(spec.num_items)] = np.arange(spec.num_items) % spec.clusters
        share = np.bincount(cluster_of[1:], weights[1:], spec.clusters) / weights.sum()
        tastes = rng.dirichlet(spec.taste_concentration * share * spec.clusters, spec.num_users)
    cluster_weight = np.bincount(cluster_of, weights, spec.clusters)
    successors = _successor_table(spec, weights, cluster_of, rng)
    model = PlantedModel(spec, weights, cluster_of, cluster_weight, successors, tastes)
    return model, _Clusters.build(cluster_of, weights, spec.clusters)


def _successor_table(
    spec: SyntheticSpec, weights: np.ndarray, cluster_of: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(V + 1, K) successors per item in its cluster, never the item itself.

    Drawn from the square root of the popularity prior: popular items are still likelier
    successors, but walks spread over the catalog instead of cycling among the head items.
    """
    clusters = _Clusters.build(cluster_of, np.sqrt(weights), spec.clusters)
    rows = np.repeat(cluster_of, spec.successors)
    table = clusters.draw(rows, rng.random(len(rows))).reshape(spec.num_items + 1, spec.successors)
    # The item itself is replaced by the next member of its cluster.
    position = np.empty(spec.num_items + 1, dtype=np.int64)
    position[clusters.members] = np.arange(spec.num_items)
    first, size = clusters.first[rows], np.diff(clusters.first)[rows]
    following = clusters.members[first + (position[table.ravel()] - first + 1) % size]
    own = np.arange(spec.num_items + 1)[:, None]
    return np.where(table == own, following.reshape(table.shape), table)


def _successor_probs(spec: SyntheticSpec) -> np.ndarray:
    probs = np.cumsum(spec.successor_decay ** np.arange(spec.successors))
    probs /= probs[-1]
    return np.diff(probs, prepend=0.0)


def _walks(
    spec: SyntheticSpec,
    lengths: np.ndarray,
    model: PlantedModel,
    clusters: _Clusters,
    rng: np.random.Generator,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Walks 3x as long as needed (repeats are dropped later), users as rows of a CSR."""
    walk_lengths = 3 * lengths + 16
    order = np.argsort(-walk_lengths, kind="stable")  # active users at step t: a prefix
    offsets = np.zeros(spec.num_users + 1, dtype=np.int64)
    np.cumsum(walk_lengths, out=offsets[1:])
    walks = np.empty(offsets[-1], dtype=np.int64)
    sorted_lengths = walk_lengths[order]
    starts = offsets[:-1][order]
    choice = np.cumsum(_successor_probs(spec))
    # Per user (in walk order), user + cumulative taste: one searchsorted draws for many.
    taste_keys = (np.arange(spec.num_users)[:, None] + np.cumsum(model.tastes[order], 1)).ravel()

    def tasted(users: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """A cluster by the tastes of each of `users` (positions in walk order)."""
        at = np.searchsorted(taste_keys, users + uniforms, side="right")
        return np.minimum(at - users * spec.clusters, spec.clusters - 1)

    # Uniforms are drawn for every active user and used where needed (the jumps, the moves
    # out of the current cluster): the stream, and so the data, depend on the seed alone.
    cluster = np.zeros(spec.num_users, dtype=np.int64)
    if spec.clusters > 1:
        cluster = tasted(np.arange(spec.num_users), rng.random(spec.num_users))
    current = clusters.draw(cluster, rng.random(spec.num_users))
    drawn = 0
    for step in range(int(sorted_lengths[0])):
        active = int(np.searchsorted(-sorted_lengths, -step, side="left"))
        current = current[:active]
        walks[starts[:active] + step] = current
        drawn += active
        if progress is not None and step % 64 == 0:
            progress(drawn / len(walks))
        follow = rng.random(active) < spec.follow_prob
        which = np.searchsorted(choice, rng.random(active), side="right")
        jumps = np.flatnonzero(~follow)
        cluster = np.zeros(len(jumps), dtype=np.int64)
        if spec.clusters > 1:
            taste_uniforms, stay_uniforms = rng.random(active)[jumps], rng.random(active)[jumps]
            cluster = model.cluster_of[current[jumps]]
            moves = stay_uniforms >= spec.stay_prob
            cluster[moves] = tasted(jumps[moves], taste_uniforms[moves])
        following = model.successors[current, which]
        following[jumps] = clusters.draw(cluster, rng.random(active)[jumps])
        current = following
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
