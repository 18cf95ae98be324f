from dataclasses import replace

import numpy as np
import pytest

from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.data.synthetic import SYNTHETIC_PRESETS, generate


@pytest.mark.parametrize("name", ["synthetic", "synthetic-ml-1m"])
def test_shapes_are_exact(name):
    spec = SYNTHETIC_PRESETS[name]
    data = generate(spec, seed=1)
    assert (data.num_users, data.num_items, data.num_interactions) == (
        spec.num_users, spec.num_items, spec.num_interactions)
    assert data.lengths.min() >= spec.min_length
    assert data.lengths.max() <= spec.max_length
    assert data.items.min() >= 1 and data.items.max() <= spec.num_items


def test_no_user_sees_an_item_twice():
    data = generate(SYNTHETIC_PRESETS["synthetic"], seed=2)
    for user in range(data.num_users):
        items = data.items[data.offsets[user]:data.offsets[user + 1]]
        assert len(np.unique(items)) == len(items)


def test_planted_structure_predicts_better_than_popularity():
    """The most frequent successor of the previous item beats the most popular item."""
    data = generate(SYNTHETIC_PRESETS["synthetic"], seed=3)
    same_user = np.ones(data.num_interactions, dtype=bool)
    same_user[data.offsets[:-1]] = False
    prev, nxt = data.items[:-1][same_user[1:]], data.items[1:][same_user[1:]]
    pairs = np.zeros((data.num_items + 1, data.num_items + 1), dtype=np.int64)
    np.add.at(pairs, (prev, nxt), 1)
    successor_hit = pairs.max(1).sum() / len(nxt)
    popularity_hit = np.bincount(nxt).max() / len(nxt)
    assert successor_hit > 5 * popularity_hit


def test_seed_determines_data_and_cache_returns_it():
    first = load(DataOptions("synthetic", seed=5))
    again = load(DataOptions("synthetic", seed=5))
    other = load(DataOptions("synthetic", seed=6))
    np.testing.assert_array_equal(first.items, again.items)
    assert not np.array_equal(first.items, other.items)


def test_shortfall_of_distinct_items_is_redistributed():
    """A tiny catalog traps long walks; the total must still be exact."""
    spec = replace(SYNTHETIC_PRESETS["synthetic"], num_users=50, num_items=30,
                   num_interactions=50 * 20, min_length=5, median_length=15, max_length=30)
    data = generate(spec, seed=0)
    assert data.num_interactions == spec.num_interactions
