"""Packed batches (`--batches packed`): random users' real items end to end, the same loss
as the same users' padded windows, and no more positions than the widest padded batch."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig
from cce_tune.tuner.sequences.token_bound import PACKED_MULTIPLE, packed_tokens
from cce_tune.tuner.sequences.train import Setup, train

LENGTHS = np.random.default_rng(0).geometric(1 / 40, size=3000).clip(max=200)


@pytest.fixture(scope="module")
def data():
    return load(DataOptions("synthetic"))


def config(**fields) -> TrainConfig:
    return TrainConfig(**{"loss": LossConfig("ce"), "batch_size": 16, "max_len": 48,
                          "hidden": 16, "num_heads": 2, "dropout": 0.0, "device": "cpu",
                          "batches": "packed", **fields})


def test_packed_batches_hold_every_user_once_in_few_shapes():
    batches = epoch_batches(LENGTHS, 64, np.random.default_rng(1), "packed", 200,
                            torch.device("cpu"))
    assert sorted(torch.cat([b.users for b in batches]).tolist()) == list(range(len(LENGTHS)))
    for b in batches:
        real = LENGTHS[b.host_users].sum()
        assert b.packed and b.positions == b.width == packed_tokens(real, len(b.users), 200)
        assert real < b.width <= min(real + PACKED_MULTIPLE, len(b.users) * 200 + 1)
    padded = epoch_batches(LENGTHS, 64, np.random.default_rng(1), "random", 200,
                           torch.device("cpu"))
    assert sum(b.positions for b in batches) < 0.5 * sum(b.positions for b in padded)
    assert len({b.width for b in batches}) <= 6


def test_packed_tokens_round_up_but_never_past_the_full_windows():
    assert packed_tokens(1000, 64, 200) == 1024
    assert packed_tokens(1024, 64, 200) == 2048  # one padding token at least
    assert packed_tokens(790, 4, 200) == 801  # 4 full windows hold 800


def test_a_packed_batch_holds_each_users_real_items_and_targets(data):
    setup = Setup(config(), data)
    batches = setup.batches
    users = torch.tensor([5, 0, 17, 3])
    lengths = batches.lengths[users]
    tokens = packed_tokens(int(lengths.sum()), len(users), 48)
    items, positions, targets, layout = batches.packed(users, tokens)
    start = 0
    for user, length in zip(users.tolist(), lengths.tolist(), strict=True):
        window = slice(48 - length, 48)
        assert torch.equal(items[start:start + length], batches.inputs[user, window])
        assert torch.equal(targets[start:start + length], batches.targets[user, window])
        assert positions[start:start + length].tolist() == list(range(48 - length, 48))
        start += length
    assert not items[start:].any() and not targets[start:].any()
    assert layout.cu_seqlens.tolist()[-1] == tokens


@pytest.mark.parametrize("loss", [LossConfig("ce"),
                                  LossConfig("ce_minus", num_negatives=8,
                                             negative_mode="shared")])
def test_a_packed_batch_has_the_padded_batchs_loss_and_gradients(data, loss):
    """The same users, weights and negatives, no dropout: packed or padded, one loss."""
    results = []
    for order in ("random", "packed"):
        setup = Setup(config(loss=loss, batches=order), data)
        users = torch.arange(10, 30)
        real = int(setup.lengths[users.numpy()].sum())
        width = packed_tokens(real, len(users), 48) if order == "packed" else 48
        torch.manual_seed(0)
        value = setup.forward(users, width)
        value.backward()
        results.append((value, [p.grad for p in setup.model.parameters()]))
    (padded, padded_grads), (packed, packed_grads) = results
    torch.testing.assert_close(packed, padded)
    for a, b in zip(packed_grads, padded_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_packed_training_learns(data):
    result = train(config(epochs=3, batch_size=128, lr=3e-3), data, final_test=False)
    losses = [epoch.loss for epoch in result.epochs]
    assert losses[-1] < losses[0]
    assert result.epochs[-1].valid.ndcg10 > 0


def test_bert4rec_refuses_packed_batches():
    with pytest.raises(ValueError, match="not packed yet"):
        ClozeConfig(batches="packed")


def test_an_unknown_batching_names_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of length, random, packed"):
        replace(config(), batches="sorted")
