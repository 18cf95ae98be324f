"""The model-FLOPs formula by hand, and what each objective feeds it."""

import torch

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig
from cce_tune.tuner.sequences.device_windows import DeviceSequences
from cce_tune.tuner.sequences.flops import candidates, epoch_flops
from cce_tune.tuner.sequences.masking import cloze_mask
from cce_tune.tuner.sequences.objectives import Cloze, NextItem


def test_flops_of_two_short_sequences_by_hand():
    lengths = torch.tensor([2, 3])
    # d = 4, one block: linear 6 * 16 * 5 = 480; the loss: 3 tokens x 4 x 5 candidates = 60.
    causal = 480 + 2 * 4 * (3 + 6)  # keys: 1 + 2, then 1 + 2 + 3
    assert epoch_flops(lengths, 3, 4, 1, True, 5) == 6 * (causal + 60)
    bidirectional = 480 + 2 * 4 * (4 + 9)
    assert epoch_flops(lengths, 3, 4, 1, False, 5) == 6 * (bidirectional + 60)
    assert epoch_flops(lengths, 3, 4, 2, True, 5) == 6 * (2 * causal + 60)


def test_candidates_are_the_catalog_or_the_sampled_ones():
    assert candidates(LossConfig("ce"), 500) == candidates(LossConfig("cce"), 500) == 500
    assert candidates(LossConfig("cce_minus", num_negatives=127), 500) == 128


def test_sasrec_counts_real_positions_only():
    data = load(DataOptions("synthetic"))
    config = TrainConfig(loss=LossConfig("ce_minus", num_negatives=63), max_len=30, hidden=8,
                         num_blocks=2)
    objective = NextItem(config, DeviceSequences(data, torch.device("cpu")))
    naive = 0
    for row in objective.inputs:
        real = int((row != 0).sum())
        naive += 2 * (6 * 8 * 8 * real + 2 * 8 * real * (real + 1) // 2)
    naive += objective.tokens_per_epoch * 8 * 64
    assert objective.flops_per_epoch == 6 * naive
    assert objective.tokens_per_epoch < config.max_len * data.num_users  # padding left out


def test_bert4rec_expects_the_masked_tokens_it_draws():
    data = load(DataOptions("synthetic"))
    config = ClozeConfig(max_len=30, mask_prob=0.3, last_item_prob=0.25)
    objective = Cloze(config, DeviceSequences(data, torch.device("cpu")))
    torch.manual_seed(0)
    drawn = sum(int(cloze_mask(objective.windows, 0.3, last_item_prob=0.25).sum())
                for _ in range(20)) / 20
    expected = objective.loss_tokens.sum().item()
    assert abs(drawn - expected) < 0.02 * expected
