import math

import numpy as np
import torch

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.sequences.evaluate import evaluate


def data(num_users: int, num_items: int, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 8, num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate([rng.choice(np.arange(1, num_items + 1), n, replace=False)
                            for n in lengths]).astype(np.int32)
    return SequenceData("tiny", num_items, offsets, items)


def brute_force(scores: torch.Tensor, data: SequenceData, split: str, exclude_seen: bool):
    """Rank by comparing against every item, the way the metric is defined."""
    targets, ends = data.targets(split), data.history_end(split)
    ndcg = hits = 0.0
    for user in range(data.num_users):
        row = scores[user].clone().double()
        row[0] = -math.inf
        if exclude_seen:
            row[torch.as_tensor(data.items[data.offsets[user]:ends[user]], dtype=torch.long)] = (
                -math.inf)
        rank = int((row >= row[targets[user]]).sum()) - 1
        if rank < 10:
            hits += 1
            ndcg += 1 / math.log2(rank + 2)
    return ndcg / data.num_users, hits / data.num_users


def test_metrics_equal_a_brute_force_ranking_with_ties():
    sequences = data(50, 30)
    torch.manual_seed(0)
    scores = torch.randint(0, 6, (50, 31)).float()  # many ties
    for exclude_seen in (True, False):
        metrics = evaluate(lambda users: scores[users], sequences, "test",
                           exclude_seen=exclude_seen, batch_size=7)
        ndcg, hr = brute_force(scores, sequences, "test", exclude_seen)
        assert math.isclose(metrics.ndcg10, ndcg, rel_tol=1e-6)
        assert math.isclose(metrics.hr10, hr, rel_tol=1e-6)


def test_constant_scores_earn_nothing():
    sequences = data(20, 30)
    metrics = evaluate(lambda users: torch.zeros(len(users), 31), sequences, "valid")
    assert metrics.ndcg10 == 0 and metrics.hr10 == 0


def test_a_catalog_smaller_than_the_cutoff():
    sequences = data(10, 8)
    scores = torch.rand(10, 9)
    metrics = evaluate(lambda users: scores[users], sequences, "test", exclude_seen=False)
    ndcg, hr = brute_force(scores, sequences, "test", exclude_seen=False)
    assert math.isclose(metrics.ndcg10, ndcg, rel_tol=1e-6) and hr == metrics.hr10 == 1.0
