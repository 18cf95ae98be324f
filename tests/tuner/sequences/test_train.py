import torch

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.train import TrainConfig, _BestEpoch, clear_of, train


def test_sasrec_learns_what_popularity_cannot():
    """A scaled-down `cce-tune train` on the synthetic default: 3x the popularity baseline."""
    data = load(DataOptions("synthetic"))
    config = TrainConfig(loss=LossConfig("ce_minus", num_negatives=128), batch_size=64,
                         max_len=30, lr=3e-3, epochs=8, hidden=32, dropout=0.1)
    seen = []
    result = train(config, data, on_epoch=seen.append)
    assert [r.epoch for r in seen] == list(range(1, 9))
    assert result.test.ndcg10 >= 3 * result.popularity_test.ndcg10
    assert result.epochs[-1].valid.ndcg10 > result.epochs[0].valid.ndcg10
    on_gpu = result.device.startswith("cuda")
    assert (result.epochs[-1].peak_memory_bytes is not None) == on_gpu
    setup_flops = result.epochs[0].tflops * 1e12 * result.epochs[0].seconds
    assert setup_flops > 0 and all(r.eval_seconds > 0 for r in seen)


def test_seed_makes_training_repeatable():
    data = load(DataOptions("synthetic"))
    config = TrainConfig(batch_size=256, max_len=10, epochs=1, hidden=16, num_blocks=1)
    first, second = train(config, data), train(config, data)
    assert first.epochs[0].loss == second.epochs[0].loss
    assert first.test == second.test


def test_patience_stops_once_validation_stalls_and_tests_the_best_epoch():
    data = load(DataOptions("synthetic"))
    config = TrainConfig(batch_size=128, max_len=20, epochs=12, patience=1, lr=0.1,
                         hidden=16, num_blocks=1)
    result = train(config, data)
    curve = [r.valid.ndcg10 for r in result.epochs]
    best = 1 + curve.index(max(curve))
    assert result.epochs[-1].converged and not any(r.converged for r in result.epochs[:-1])
    assert result.epochs[-1].epoch == best + 1 < 12  # one epoch without improvement
    assert result.tested_epoch == best


def test_patience_does_not_count_before_the_model_beats_popularity():
    """With a learning rate of 0 the model never learns: no stall is convergence, so it
    trains to the cap."""
    data = load(DataOptions("synthetic"))
    config = TrainConfig(batch_size=256, max_len=10, epochs=4, patience=1, lr=0.0,
                         hidden=16, num_blocks=1)
    result = train(config, data)
    assert [r.epoch for r in result.epochs] == [1, 2, 3, 4]
    assert not any(r.converged for r in result.epochs)
    assert result.test.ndcg10 < result.popularity_test.ndcg10


def test_a_hair_above_popularity_is_still_the_plateau():
    """BERT4Rec on the H200 sat at 0.0249 against popularity's 0.0248 and was stopped there."""
    assert not clear_of(0.0248, 0.0249)
    assert not clear_of(0.0248, 0.0248 * 1.1)
    assert clear_of(0.0248, 0.03)
    assert clear_of(0.0, 1e-6)  # without patience the floor is 0: any quality counts


def test_the_best_epochs_weights_are_the_ones_restored():
    """Epochs after the best one change the weights; restoring brings back the best's."""
    model = torch.nn.Linear(3, 2)
    best = _BestEpoch(model, keep=True)
    assert best.update(1, 0.2) == 0
    kept = {name: value.clone() for name, value in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    assert best.update(2, 0.1) == 1  # worse: one epoch since the best
    best.restore()
    for name, value in model.state_dict().items():
        assert torch.equal(value, kept[name]), name
