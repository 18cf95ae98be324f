import math

import pytest
import torch

from cce_tune.kernels import reference
from cce_tune.kernels.losses import LossConfig, make_loss
from tests.kernels import naive
from tests.kernels.problems import grads, make_problem

MODES = ["shared", "per_position", "tile"]


def assert_same(ours, expected):
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_minus_matches_naive(mode, reduction):
    problem = make_problem(mode)
    kwargs = {"tile_size": problem.tile_size, "reduction": reduction}
    assert_same(grads(reference.ce_minus, problem, **kwargs),
                grads(naive.ce_minus, problem, **kwargs))


@pytest.mark.parametrize("mode", MODES)
def test_ce_minus_options_match_naive(mode):
    problem = make_problem(mode)
    log_q = torch.log_softmax(torch.randn(problem.num_items + 1, dtype=torch.float64), 0)
    kwargs = {"tile_size": problem.tile_size, "temperature": 0.7, "log_q": log_q,
              "sampled_softmax": True}
    assert_same(grads(reference.ce_minus, problem, **kwargs),
                grads(naive.ce_minus, problem, **kwargs))


def test_ce_matches_naive_full_catalog():
    problem = make_problem("shared")
    ours = grads(lambda h, e, t, n: reference.ce(h, e, t, temperature=0.5), problem)
    expected = grads(lambda h, e, t, n: naive.ce_minus(h, e, t, n, full_catalog=True,
                                                       temperature=0.5), problem)
    assert_same(ours, expected)


def test_ce_minus_over_every_other_item_is_full_ce():
    problem = make_problem("shared", num_items=9)
    every_item = torch.arange(1, 10)
    full = reference.ce(problem.hidden, problem.emb, problem.targets)
    sampled = reference.ce_minus(problem.hidden, problem.emb, problem.targets, every_item)
    torch.testing.assert_close(sampled, full)


def test_bce_matches_naive():
    problem = make_problem("per_position", num_negatives=1)
    problem.negatives[1, 0] = problem.targets[1]  # an accidental hit
    assert_same(grads(reference.bce, problem), grads(naive.gbce, problem, beta=1.0))


@pytest.mark.parametrize("mode", ["shared", "per_position"])
def test_gbce_matches_naive(mode):
    problem = make_problem(mode)
    beta = reference.gbce_beta(problem.negatives.shape[-1], problem.num_items, 0.75)
    assert_same(grads(reference.gbce, problem, t=0.75), grads(naive.gbce, problem, beta=beta))


def test_gbce_beta_limits():
    # t = 0 is plain BCE (beta = 1); t = 1 is fully calibrated (beta = alpha = N / (V - 1))
    assert reference.gbce_beta(10, 101, 0.0) == pytest.approx(1.0)
    assert reference.gbce_beta(10, 101, 1.0) == pytest.approx(0.1)


@pytest.mark.parametrize("loss", [reference.ce_minus, reference.gbce])
def test_padding_tokens_get_no_loss_and_no_gradient(loss):
    problem = make_problem("per_position")
    value, d_hidden, _ = grads(loss, problem, reduction="none")
    padding = problem.targets == 0
    assert (value[padding] == 0).all() and (d_hidden[padding] == 0).all()
    assert (value[~padding] != 0).all()


def test_accidental_hit_is_masked_not_counted():
    problem = make_problem("per_position")
    t = 3  # negatives[3, :2] equal the target
    value = reference.ce_minus(problem.hidden, problem.emb, problem.targets, problem.negatives,
                               reduction="none")[t]
    others = problem.negatives[t, 2:]
    others = others[others != problem.targets[t]]  # random draws may hit the target too
    scores = problem.hidden[t] @ problem.emb[torch.cat([problem.targets[t:t + 1], others])].T
    assert value.item() == pytest.approx((torch.logsumexp(scores, 0) - scores[0]).item())


def test_tile_mode_equals_per_position_with_repeated_rows():
    problem = make_problem("tile")
    expanded = problem.negatives.repeat_interleave(problem.tile_size, 0)[:len(problem.targets)]
    tile = reference.ce_minus(problem.hidden, problem.emb, problem.targets, problem.negatives,
                              tile_size=problem.tile_size, reduction="none")
    per_position = reference.ce_minus(problem.hidden, problem.emb, problem.targets, expanded,
                                      reduction="none")
    torch.testing.assert_close(tile, per_position)


def test_sampled_softmax_shift():
    """With every negative kept, the shift is log((V - 1) / N) exactly."""
    problem = make_problem("shared", num_items=50, num_negatives=5)
    negatives = torch.tensor([41, 42, 43, 44, 45])
    problem.targets[:] = 1
    plain = reference.ce_minus(problem.hidden, problem.emb, problem.targets, negatives,
                               reduction="none")
    corrected = reference.ce_minus(problem.hidden, problem.emb, problem.targets, negatives,
                                   reduction="none", sampled_softmax=True)
    shift = math.log(49 / 5)
    scores = problem.hidden @ problem.emb[torch.tensor([1, 41, 42, 43, 44, 45])].T
    scores[:, 1:] += shift
    torch.testing.assert_close(corrected, torch.logsumexp(scores, 1) - scores[:, 0])
    assert (corrected > plain).all()


@pytest.mark.parametrize("name,negatives", [("ce", 1), ("ce_minus", 16), ("bce", 1),
                                            ("gbce", 16)])
def test_loss_modules_train(name, negatives):
    torch.manual_seed(0)
    module = make_loss(LossConfig(name=name, num_negatives=negatives), num_items=30)
    hidden = torch.randn(12, 8, requires_grad=True)
    emb = torch.randn(31, 8, requires_grad=True)
    targets = torch.randint(1, 31, (12,))
    loss = module(hidden, emb, targets)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert hidden.grad.abs().sum() > 0


def test_loss_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown loss 'softmax'; choose one of ce, ce_minus"):
        LossConfig(name="softmax")
    with pytest.raises(ValueError, match="bce takes exactly one negative per position, got 4"):
        LossConfig(name="bce", num_negatives=4)
    with pytest.raises(ValueError, match="unknown negative mode 'row'"):
        LossConfig(negative_mode="row")
    with pytest.raises(ValueError, match="tile size 24 does not suit cce_minus's kernels: "
                                         "give a power of two of at least 16"):
        LossConfig("cce_minus", negative_mode="tile", tile_size=24)
    LossConfig("ce_minus", negative_mode="tile", tile_size=24)  # the reference takes any
