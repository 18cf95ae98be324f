from dataclasses import replace

import numpy as np
import pytest

from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.data.synthetic import (
    SYNTHETIC_PRESETS,
    generate,
    planted_model,
    planted_scores,
)


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


CALIBRATED = SYNTHETIC_PRESETS["synthetic-ml-1m"]
# A calibrated spec scaled down: 1,500 users, 900 items, 90,000 interactions.
SMALL_CALIBRATED = replace(CALIBRATED, num_users=1_500, num_items=900, num_interactions=90_000,
                           min_length=20, median_length=45, max_length=500)


def test_calibrated_preset_keeps_ml_1m_shape_and_no_repeats():
    data = generate(CALIBRATED, seed=0)
    assert data.num_interactions == 1_000_209 and data.lengths.min() == 20
    assert data.lengths.max() <= 2_314
    assert abs(np.median(data.lengths) - 96) <= 5
    user_of = np.repeat(np.arange(data.num_users), data.lengths)
    pairs = user_of.astype(np.int64) * (data.num_items + 1) + data.items
    assert len(np.unique(pairs)) == data.num_interactions


def test_calibrated_popularity_is_skewed_like_movielens():
    """The top 10 % of items hold 30-45 % of interactions (ml-1m: about 40 %), yet every
    item is seen and the most popular by fewer than all users."""
    counts = np.sort(np.bincount(generate(CALIBRATED, seed=1).items)[1:])[::-1]
    top = counts[:len(counts) // 10].sum() / counts.sum()
    assert 0.30 <= top <= 0.45
    assert counts.min() > 0 and counts[0] < CALIBRATED.num_users


def test_calibrated_generation_is_reproducible_per_seed():
    first, again = generate(SMALL_CALIBRATED, seed=4), generate(SMALL_CALIBRATED, seed=4)
    np.testing.assert_array_equal(first.items, again.items)
    np.testing.assert_array_equal(first.offsets, again.offsets)
    assert not np.array_equal(first.items, generate(SMALL_CALIBRATED, seed=5).items)


def test_calibrated_structure_is_weaker_than_the_easy_one():
    """The previous item's most frequent successor is right far less often than with the
    easy settings at the same shape (about 8x the most popular item's rate against 30-36x
    over seeds 0-2), yet well above popularity."""
    data = generate(SMALL_CALIBRATED, seed=3)
    same_user = np.ones(data.num_interactions, dtype=bool)
    same_user[data.offsets[:-1]] = False
    prev, nxt = data.items[:-1][same_user[1:]], data.items[1:][same_user[1:]]
    pairs = np.zeros((data.num_items + 1, data.num_items + 1), dtype=np.int64)
    np.add.at(pairs, (prev, nxt), 1)
    ratio = (pairs.max(1).sum() / len(nxt)) / (np.bincount(nxt).max() / len(nxt))
    assert 4 < ratio < 15


def test_planted_scores_are_next_item_probabilities():
    model = planted_model(SMALL_CALIBRATED, seed=0)
    users, previous = np.arange(5), np.array([1, 2, 3, 400, 900])
    scores = planted_scores(model, users, previous)
    assert scores.shape == (5, SMALL_CALIBRATED.num_items + 1)
    np.testing.assert_allclose(scores.sum(1), 1.0)
    assert (scores[:, 0] == 0).all()


def test_easy_preset_keeps_one_cluster_and_no_tastes():
    model = planted_model(SYNTHETIC_PRESETS["synthetic"], seed=0)
    assert model.tastes.shape[1] == 1 and not model.cluster_of.any()


def test_bad_cluster_count_is_refused():
    with pytest.raises(ValueError, match="clusters must be 1..250"):
        generate(replace(SYNTHETIC_PRESETS["synthetic"], clusters=300))


def test_generation_reports_its_progress_up_to_the_whole():
    shares = []
    generate(SYNTHETIC_PRESETS["synthetic"], progress=shares.append)
    assert shares == sorted(shares) and shares[0] > 0 and shares[-1] <= 1.0
    assert len(shares) >= 3
