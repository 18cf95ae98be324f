"""Steps replayed from CUDA graphs train as eager steps do (GPU only: graphs are CUDA's)."""

from dataclasses import replace

import pytest

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences import graphed_steps
from cce_tune.tuner.sequences.train import TrainConfig, train

pytestmark = pytest.mark.gpu


@pytest.fixture
def captures(monkeypatch):
    """How many graphs the runs capture."""
    shapes = []
    capture = graphed_steps.GraphedSteps._capture

    def counted(self, users, width):
        shapes.append((len(users), width))
        return capture(self, users, width)

    monkeypatch.setattr(graphed_steps.GraphedSteps, "_capture", counted)
    return shapes


def runs(config: TrainConfig):
    data = load(DataOptions("synthetic"))
    return (train(config, data, final_test=False),
            train(replace(config, cuda_graphs=True), data, final_test=False))


def test_graphs_replay_the_eager_step(captures):
    """Full-catalog CE without dropout has no randomness: the same losses, epoch by epoch,
    up to the order of atomic adds."""
    config = TrainConfig(loss=LossConfig("cce"), batch_size=64, max_len=40, hidden=32,
                         dropout=0.0, epochs=3, device="cuda")
    eager, graphed = runs(config)
    assert len(captures) >= 2 and len(set(captures)) == len(captures)
    for a, b in zip(eager.epochs, graphed.epochs, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-3)
        assert b.valid.ndcg10 == pytest.approx(a.valid.ndcg10, rel=0.02)


def test_graphs_draw_new_negatives_and_dropout_each_replay(captures):
    """With in-kernel negatives and dropout a replay must draw anew: a graph that froze one
    draw would fit it, and its loss would fall below the eager run's. Memory: the graphs
    hold what the eager step needs, plus the capture stream's library workspaces (about
    64 MB on the H200 at both of issue 18's settings, `benchmarks/results/step-h200.md`)."""
    config = TrainConfig(loss=LossConfig("cce_minus", num_negatives=64,
                                         in_kernel_negatives=True),
                         batch_size=64, max_len=40, hidden=32, dropout=0.2, epochs=3,
                         bf16=True, device="cuda")
    eager, graphed = runs(config)
    assert captures
    for a, b in zip(eager.epochs, graphed.epochs, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=0.05)
    eager_peak = max(epoch.peak_memory_bytes for epoch in eager.epochs)
    assert graphed.epochs[-1].peak_memory_bytes <= eager_peak + 128 * 2**20


def test_graphs_replay_the_packed_step(captures):
    """Packed batches (FlashAttention's variable-length kernel, bf16) replay too: a
    shape per rounded token count, the same losses as the eager packed step up to bf16's
    and the kernel's atomic adds."""
    from cce_tune.models.packing import varlen_attn

    if varlen_attn is None:
        pytest.skip("this torch has no variable-length attention: packing would not use it")
    config = TrainConfig(loss=LossConfig("cce"), batch_size=64, max_len=40, hidden=32,
                         dropout=0.0, epochs=3, bf16=True, batches="packed", device="cuda")
    eager, graphed = runs(config)
    # Rounded up to 1,024 tokens, or the batch's full windows and one token
    assert captures and all(width % 1024 == 0 or width == users * 40 + 1
                            for users, width in captures)
    for a, b in zip(eager.epochs, graphed.epochs, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-2)
        assert b.valid.ndcg10 == pytest.approx(a.valid.ndcg10, rel=0.05)
