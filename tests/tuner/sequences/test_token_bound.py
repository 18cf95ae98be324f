"""The packed token cap: what the memory model sizes a packed step by, and what the batcher
enforces."""

import numpy as np
import torch

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.memory import DatasetShape, estimate
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.token_bound import token_cap
from cce_tune.tuner.sequences.train import Setup

# MovieLens-like: most users short, a tail as long as the window.
LENGTHS = np.random.default_rng(0).geometric(1 / 60, size=20_000).clip(max=200)


def histogram(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(lengths, return_counts=True)


def test_the_cap_holds_random_batches_and_stays_near_their_largest():
    cap = token_cap(*histogram(LENGTHS), 256, 200)
    rng = np.random.default_rng(1)
    sums = [LENGTHS[rng.permutation(len(LENGTHS))[:256]].sum() for _ in range(3000)]
    assert max(sums) <= cap < 1.15 * max(sums)  # and far below the full windows' 51,200
    assert cap < 0.5 * 256 * 200


def test_the_cap_is_never_past_the_longest_users_nor_under_one_window():
    lengths, users = histogram(LENGTHS)
    assert token_cap(lengths, users, 4, 200) <= 4 * 200  # the 4 longest users: full windows
    assert token_cap(np.array([3]), np.array([10]), 4, 200) == 200  # a user always fits
    assert token_cap(np.array([0, 5]), np.array([7, 0]), 4, 200) == 200  # nobody to batch


def test_a_batch_past_the_cap_is_split_within_it_and_no_user_is_lost():
    cap = 3_000  # far under a batch of 256 users' ~15,000 items: every batch splits
    batches = epoch_batches(LENGTHS, 256, np.random.default_rng(2), "packed", 200,
                            torch.device("cpu"), cap=cap)
    assert all(LENGTHS[b.host_users].sum() <= cap for b in batches)
    users = np.concatenate([b.host_users for b in batches])
    assert sorted(users.tolist()) == np.flatnonzero(LENGTHS > 0).tolist()
    whole = epoch_batches(LENGTHS, 256, np.random.default_rng(2), "packed", 200,
                          torch.device("cpu"), cap=token_cap(*histogram(LENGTHS), 256, 200))
    assert len(whole) == -(-int((LENGTHS > 0).sum()) // 256)  # at the real cap, none split


def test_the_estimate_sizes_packed_steps_by_the_trainers_own_widest_batch():
    data = load(DataOptions("synthetic"))
    config = TrainConfig(loss=LossConfig("cce_minus", num_negatives=64), batch_size=256,
                         max_len=200, hidden=16, device="cpu", batches="packed", bf16=True)
    shape = DatasetShape.of(data)
    setup = Setup(TrainConfig(**{**config.__dict__, "bf16": False}), data)
    assert setup.token_cap is not None
    widest = max(b.width for b in epoch_batches(
        setup.lengths, 256, np.random.default_rng(0), "packed", 200, torch.device("cpu"),
        setup.loss_tokens, setup.token_cap))
    assert widest <= shape.packed_tokens(256, 200) < 256 * 200 / 2  # far under full windows
    unread = DatasetShape(shape.num_users, shape.num_items)  # lengths unknown: full windows
    assert unread.packed_tokens(256, 200) == 256 * 200 + 1
    assert (estimate(config, shape).phases["backward"]
            < estimate(config, unread).phases["backward"])
