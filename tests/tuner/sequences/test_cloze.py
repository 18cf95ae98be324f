"""BERT4Rec's cloze task: masks, what training sees, the loss over masked positions only (every
loss, the fused ones on Triton's interpreter), and a short run that beats popularity."""

import numpy as np
import pytest
import torch

from cce_tune.kernels import InKernelNegatives, LossConfig, cce, cce_minus, in_kernel_ids, reference
from cce_tune.kernels.losses import make_loss
from cce_tune.models import BERT4Rec, BERT4RecConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.sequences.config import ClozeConfig
from cce_tune.tuner.sequences.device_windows import DeviceSequences
from cce_tune.tuner.sequences.masking import cloze_mask
from cce_tune.tuner.sequences.objectives import Cloze
from cce_tune.tuner.sequences.train import train

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def padded_items(batch=64, length=12, num_items=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    items = torch.randint(1, num_items + 1, (batch, length), generator=generator)
    real = torch.randint(0, length + 1, (batch, 1), generator=generator)
    items = items.masked_fill(torch.arange(length) < length - real, 0)
    items[0] = 0  # a sequence of padding only
    items[1, :-1] = 0  # one real item
    return items


def test_masks_real_items_only_and_at_least_one_per_sequence():
    items = padded_items()
    torch.manual_seed(1)
    for p in (0.01, 0.2, 0.9):
        mask = cloze_mask(items, p)
        assert not (mask & (items == 0)).any()
        has_items = (items != 0).any(1)
        assert (mask.sum(1)[has_items] >= 1).all() and not mask[0].any()
        assert mask[1, -1]


def test_mask_share_is_mask_prob():
    items = torch.randint(1, 100, (512, 100))
    torch.manual_seed(2)
    share = cloze_mask(items, 0.2).float().mean().item()
    assert 0.19 < share < 0.21


def test_capacity_drops_extra_masks_but_keeps_one_per_sequence():
    items = padded_items()
    torch.manual_seed(3)
    free = cloze_mask(items, 0.9)
    torch.manual_seed(3)
    rows = len(items)
    capped = cloze_mask(items, 0.9, capacity=rows + 5)
    assert int(free.sum()) > rows + 5 and int(capped.sum()) == rows + 5
    assert not (capped & ~free).any()
    assert (capped.sum(1)[(items != 0).any(1)] >= 1).all()
    torch.manual_seed(3)
    assert torch.equal(cloze_mask(items, 0.9, capacity=items.numel()), free)  # room for all
    with pytest.raises(ValueError, match="capacity 63 is under the 64 sequences"):
        cloze_mask(items, 0.9, capacity=rows - 1)


def test_capacity_keeps_a_uniform_choice_of_the_extra_masks():
    """Over many draws every extra (not first) masked position survives the cap about as
    often as any other."""
    items = torch.arange(1, 9).repeat(2, 1)  # two full sequences of 8
    kept = torch.zeros(items.shape)
    for seed in range(400):
        torch.manual_seed(seed)
        kept += cloze_mask(items, 0.999, capacity=6).float()
    assert (kept[:, 0] == 400).all()  # each sequence's first masked position, always
    extra = kept[:, 1:] / 400  # 4 of the 14 others a draw
    assert ((extra - 4 / 14).abs() < 0.08).all(), extra


def test_last_item_samples_mask_the_last_real_item_alone():
    items = padded_items(batch=256)
    torch.manual_seed(4)
    mask = cloze_mask(items, 0.3, last_item_prob=0.5)
    has_items = (items != 0).any(1)
    assert not (mask & (items == 0)).any() and not mask[0].any()
    one = mask.sum(1) == 1
    at_end = mask[:, -1] & one  # padding is on the left: the last real item is the last slot
    assert 0.4 < at_end[has_items].float().mean() < 0.65  # half, plus random ones landing there
    every = cloze_mask(items, 0.3, last_item_prob=1.0)
    assert torch.equal(every, has_items[:, None] & (torch.arange(12) == 11))
    left = torch.tensor([[3, 4, 5, 0, 0]])  # any layout: the last real item, not the last slot
    assert cloze_mask(left, 0.5, last_item_prob=1.0).tolist() == [[0, 0, 1, 0, 0]]


def tiny_data(users=6, num_items=25, seed=0) -> SequenceData:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 15, users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(1, num_items + 1, offsets[-1]).astype(np.int32)
    return SequenceData("tiny", num_items, offsets, items)


def test_validation_and_test_items_never_enter_training_inputs():
    data = tiny_data()
    config = ClozeConfig(max_len=20, mask_prob=0.5)
    objective = Cloze(config, DeviceSequences(data, torch.device("cpu")))
    torch.manual_seed(0)
    inputs, positions, targets = objective.batch(torch.arange(data.num_users))
    for user in range(data.num_users):
        start, end = data.offsets[user], data.offsets[user + 1]
        train_part = data.items[start:end - 2].tolist()
        row = inputs[user]
        # The row is the user's training items, some masked: the last two never appear.
        unmasked = [i if i != objective.mask_token else None for i in row.tolist() if i != 0]
        assert len(unmasked) == len(train_part)
        assert all(u in (None, t) for u, t in zip(unmasked, train_part, strict=True))
    # The masked positions, then (to the cap's fixed length) index 0 with target 0: padding.
    masked = targets != 0
    assert masked.sum() == (inputs == objective.mask_token).sum() < len(targets)
    assert not masked[masked.sum():].any() and (positions[~masked] == 0).all()
    flat = torch.as_tensor(objective.windows).view(-1)
    assert torch.equal(targets[masked], flat[positions[masked]])
    assert (inputs.view(-1)[positions[masked]] == objective.mask_token).all()
    for split, holdout in (("valid", 2), ("test", 1)):
        history = objective.histories[split]
        assert (history[:, -1] == objective.mask_token).all()
        for user in range(data.num_users):
            end = data.offsets[user + 1] - holdout
            before = data.items[data.offsets[user]:end][-(config.max_len - 1):].tolist()
            assert [i for i in history[user, :-1].tolist() if i != 0] == before


def cloze_problem(dtype=torch.float64):
    """A BERT4Rec and a masked batch: the model's hidden states at the masked positions."""
    torch.manual_seed(0)
    net = BERT4Rec(BERT4RecConfig(num_items=40, max_len=12, hidden=16, num_heads=2,
                                  dropout=0.0)).to(dtype)
    items = padded_items()[2:10]
    torch.manual_seed(5)
    mask = cloze_mask(items, 0.3)
    return net, items, mask


def masked_loss(net, items, mask, loss_fn):
    """What `Cloze.loss` computes, for a given mask: the loss's tokens are the masked ones."""
    positions = mask.view(-1).nonzero().squeeze(1)
    hidden = net(items.masked_fill(mask, net.config.mask_token))
    hidden = hidden.view(-1, net.config.hidden).index_select(0, positions)
    return loss_fn(hidden, net.output_embedding, items.view(-1)[positions])


def test_loss_is_over_masked_positions_only_against_a_naive_loop():
    net, items, mask = cloze_problem()
    loss = masked_loss(net, items, mask, lambda h, e, t: reference.ce(h, e, t))
    hidden = net(items.masked_fill(mask, net.config.mask_token))
    scores = hidden @ net.item_emb.weight.T  # (B, L, V + 2): padding, items, mask token
    naive = []
    for b, t in mask.nonzero().tolist():
        logits = scores[b, t, 1:41]  # the items only: neither padding nor the mask token
        naive.append(torch.logsumexp(logits, 0) - logits[items[b, t] - 1])
    torch.testing.assert_close(loss, torch.stack(naive).mean())
    assert len(naive) == int(mask.sum()) < mask.numel()


@pytest.mark.parametrize("name", ["ce", "ce_minus", "bce", "gbce"])
def test_every_reference_loss_trains_a_step(name):
    data = tiny_data(users=8)
    config = ClozeConfig(loss=LossConfig(name, num_negatives=1 if name in ("ce", "bce") else 7),
                         max_len=10, hidden=8, batch_size=8, device="cpu")
    from cce_tune.tuner.sequences.train import Setup

    setup = Setup(config, data)
    before = setup.model.item_emb.weight.detach().clone()
    loss = setup.step(torch.arange(8))
    assert torch.isfinite(loss)
    assert not torch.equal(before, setup.model.item_emb.weight)


def grads_of(net, items, mask, loss_fn):
    net.zero_grad()
    loss = masked_loss(net, items, mask, loss_fn)
    loss.backward()
    return [loss.detach()] + [p.grad.clone() for p in net.parameters()]


def relative_errors(ours, expected):
    return [((got.double() - want).norm() / want.norm().clamp(min=1e-30)).item()
            for got, want in zip(ours, expected, strict=True)]


@pytest.mark.parametrize("mode", ["shared", "per_position", "tile", "in-kernel tile",
                                  "in-kernel per_position", "full"])
def test_fused_matches_reference_on_a_bert4rec_step(mode):
    """Loss and every parameter's gradient of a BERT4Rec step: the fused kernel (Triton's
    interpreter on a CPU) on float32 against the reference on float64."""
    net, items, mask = cloze_problem(torch.float64)
    tokens = int(mask.sum())
    tile = 16 if "tile" in mode else None
    if mode == "full":
        fused_fn, reference_fn = cce, reference.ce
    else:
        layout = mode.removeprefix("in-kernel ")
        if mode.startswith("in-kernel"):
            negatives = InKernelNegatives(9, mode=layout, tile_size=16, seed=11)
            ids = in_kernel_ids(negatives, tokens, 40, DEVICE)
        else:
            negatives = ids = make_loss(LossConfig("ce_minus", 9, layout, tile_size=16), 40
                                        ).sample(tokens, DEVICE)

        def fused_fn(h, e, t):
            if mode.startswith("in-kernel"):
                return cce_minus(h, e, t, negatives)
            return cce_minus(h, e, t, ids, tile_size=tile)

        def reference_fn(h, e, t):
            return reference.ce_minus(h, e, t, ids.to(h.device), tile_size=tile)

    expected = grads_of(net, items, mask, reference_fn)
    net32 = net.to(torch.float32).to(DEVICE)
    ours = grads_of(net32, items.to(DEVICE), mask.to(DEVICE), fused_fn)
    errors = relative_errors(ours, expected)
    assert max(errors) < 1e-4, errors


def test_bert4rec_learns_what_popularity_cannot():
    """A scaled-down `cce-tune train --model bert4rec` on the synthetic default. The encoder
    must learn to attend to a masked item's neighbours before it beats popularity, which on
    this set takes about 9 epochs (with dropout it takes longer)."""
    data = load(DataOptions("synthetic"))
    config = ClozeConfig(loss=LossConfig("ce"), batch_size=64, max_len=30, lr=5e-3, epochs=12,
                         hidden=64, num_heads=4, dropout=0.0, mask_prob=0.2)
    result = train(config, data)
    assert result.test.ndcg10 >= 2 * result.popularity_test.ndcg10
    assert result.epochs[-1].tokens_per_s > 0
