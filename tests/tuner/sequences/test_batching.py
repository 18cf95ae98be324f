"""Length-grouped batches: every user once an epoch, each batch as wide as its longest
sequence needs, far less padding than random batches, and the same loss as full windows."""

import numpy as np
import pytest
import torch

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.batching import WIDTH_MULTIPLE, batch_width, epoch_batches
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.train import Setup

# A long-tailed length distribution, like MovieLens's: most users short, a few long.
LENGTHS = np.random.default_rng(0).geometric(1 / 40, size=5000).clip(max=300)


def padded_positions(batches, lengths: np.ndarray) -> int:
    return sum(b.positions - lengths[b.users.numpy()].sum() for b in batches)


@pytest.mark.parametrize("order", ["length", "random"])
def test_every_user_once_in_a_batch_wide_enough(order):
    batches = epoch_batches(LENGTHS, 64, np.random.default_rng(1), order, 256,
                            torch.device("cpu"))
    users = torch.cat([b.users for b in batches]).numpy()
    assert sorted(users) == list(range(len(LENGTHS)))
    assert all(len(b.users) == 64 for b in batches[:-1]) or order == "length"
    assert sum(len(b.users) < 64 for b in batches) <= 1
    for b in batches:
        longest = LENGTHS[b.users.numpy()].max()
        assert b.width == min(256, -(-longest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE)


def test_grouping_by_length_cuts_most_padding_and_reshuffles_every_epoch():
    rng = np.random.default_rng(2)
    random = epoch_batches(LENGTHS, 64, rng, "random", 300, torch.device("cpu"))
    first = epoch_batches(LENGTHS, 64, rng, "length", 300, torch.device("cpu"))
    second = epoch_batches(LENGTHS, 64, rng, "length", 300, torch.device("cpu"))
    assert padded_positions(first, LENGTHS) < 0.2 * padded_positions(random, LENGTHS)
    assert not torch.equal(first[0].users, second[0].users)
    # Batches are shuffled, not served from the longest down.
    widths = [b.width for b in first]
    assert widths != sorted(widths, reverse=True) and widths != sorted(widths)


@pytest.mark.parametrize("order", ["length", "random", "packed"])
def test_every_token_of_an_epoch_weighs_the_same(order):
    """A batch's mean loss times its weight: a token's weight is its batch's weight over
    the batch's tokens, the same for every batch, and the weights average 1."""
    batches = epoch_batches(LENGTHS, 64, np.random.default_rng(3), order, 300,
                            torch.device("cpu"))
    per_token = [b.weight / LENGTHS[b.users.numpy()].sum() for b in batches]
    np.testing.assert_allclose(per_token, per_token[0])
    assert np.mean([b.weight for b in batches]) == pytest.approx(1.0)


def test_a_small_dataset_still_draws_new_batches_every_epoch():
    """One group (users < GROUP batches): sorted by width, users of a width in random order,
    so batch-mates change from epoch to epoch."""
    rng = np.random.default_rng(4)
    epochs = [epoch_batches(LENGTHS, 128, rng, "length", 300, torch.device("cpu"))
              for _ in range(2)]
    mates = [{user: set(b.host_users) for b in batches for user in b.host_users}
             for batches in epochs]
    kept = np.mean([len(mates[0][u] & mates[1][u]) / len(mates[0][u]) for u in mates[0]])
    assert kept < 0.5


def test_users_with_nothing_to_train_on_are_left_out_and_weights_count_loss_tokens():
    lengths = np.array([0, 3, 5, 0, 7, 2])
    tokens = np.array([0.0, 1.0, 1.0, 0.0, 2.0, 1.0])  # e.g. BERT4Rec's expected masks
    batches = epoch_batches(lengths, 2, np.random.default_rng(0), "length", 16,
                            torch.device("cpu"), tokens)
    assert sorted(np.concatenate([b.host_users for b in batches])) == [1, 2, 4, 5]
    for b in batches:
        assert b.weight == pytest.approx(tokens[b.host_users].sum() / (5 / 2))


def test_width_is_never_zero_nor_past_the_window():
    assert batch_width(np.array([0, 0]), 50) == WIDTH_MULTIPLE
    assert batch_width(np.array([3, 49]), 50) == 50
    assert batch_width(np.array([17]), 512) == 32


@pytest.mark.parametrize("loss", ["ce", "ce_minus"])
def test_a_cut_batch_has_the_full_windows_loss(loss):
    """The same users, model and negatives: SASRec's loss over the cut windows is the full
    one (BERT4Rec's masks are drawn per position, so its cut batch draws others: its model's
    outputs are compared in `tests/models`)."""
    data = load(DataOptions("synthetic"))
    config = TrainConfig(loss=LossConfig(loss, num_negatives=8, negative_mode="shared"),
                         max_len=48, hidden=16, dropout=0.0, device="cpu")
    setup = Setup(config, data)
    users = torch.as_tensor(np.argsort(setup.lengths)[:16])  # the shortest: a cut to make
    width = batch_width(setup.lengths[users.numpy()], config.max_len)
    assert width < config.max_len  # the test cuts something
    losses = []
    for cut in (None, width):
        torch.manual_seed(0)  # the same negatives and masks
        losses.append(setup.forward(users, cut))
    torch.testing.assert_close(losses[1], losses[0])
