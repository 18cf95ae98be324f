"""Leave-one-out evaluation by full ranking: NDCG@10 and HR@10 over every item.

The held-out item is ranked against all V items, not a sample. With `exclude_seen` (the
default) items the user already interacted with before the held-out one are removed from the
ranking, as MovieLens users rate an item once; without it they compete. Ties rank against the
held-out item (pessimistic), so a constant scorer earns nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.sequences.config import users_per_batch

K = 10

# (batch of user ids) -> (batch, V + 1) scores; column 0 (padding) is ignored.
Scorer = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RankingMetrics:
    ndcg10: float
    hr10: float
    users: int


@torch.no_grad()
def evaluate(
    scorer: Scorer,
    data: SequenceData,
    split: str,
    *,
    exclude_seen: bool = True,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> RankingMetrics:
    """Rank each user's `split` item among all items with the scores `scorer` gives."""
    targets = torch.as_tensor(data.targets(split), device=device)
    ends = data.history_end(split)
    batch_size = users_per_batch(batch_size, data.num_items)
    ndcg = hits = 0.0
    for start in range(0, data.num_users, batch_size):
        users = torch.arange(start, min(start + batch_size, data.num_users), device=device)
        scores = scorer(users).float()
        scores[:, 0] = -torch.inf
        if exclude_seen:
            rows, cols = _seen(data, ends, start, start + len(users))
            scores[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = (
                -torch.inf
            )
        batch_targets = targets[users]
        target_score = scores.gather(1, batch_targets[:, None])
        # Rank = others scoring at least as high; only ranks under K matter, and those are
        # told by the top K + 1 scores (a full comparison mask would cost 9 bytes an item).
        best = scores.topk(min(K + 1, scores.shape[1]), dim=1).values
        rank = (best >= target_score).sum(1) - 1
        top = rank < K
        ndcg += (top / torch.log2(rank.float() + 2)).sum().item()
        hits += top.sum().item()
        # Free this batch's scores before the next batch's exist: one score matrix at a time.
        del scores, best
    return RankingMetrics(ndcg / data.num_users, hits / data.num_users, data.num_users)


def _seen(data: SequenceData, ends: np.ndarray, first: int, last: int):
    """(row within batch, item) for every item of users first..last-1 before their target."""
    starts = data.offsets[first:last]
    counts = ends[first:last] - starts
    rows = np.repeat(np.arange(last - first), counts)
    positions = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, data.items[np.repeat(starts, counts) + positions]


def popularity_scorer(data: SequenceData, device: torch.device | str) -> Scorer:
    """The baseline: every user gets the items ranked by training interaction counts."""
    counts = torch.as_tensor(data.train_item_counts(), dtype=torch.float32, device=device)
    return lambda users: counts.expand(len(users), -1).clone()
