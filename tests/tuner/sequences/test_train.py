from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.train import TrainConfig, train


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


def test_seed_makes_training_repeatable():
    data = load(DataOptions("synthetic"))
    config = TrainConfig(batch_size=256, max_len=10, epochs=1, hidden=16, num_blocks=1)
    first, second = train(config, data), train(config, data)
    assert first.epochs[0].loss == second.epochs[0].loss
    assert first.test == second.test
