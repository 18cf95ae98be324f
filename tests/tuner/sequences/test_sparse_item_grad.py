"""`--sparse-item-grad`: the item table's gradient sparse (the loss's and the input lookup's),
stepped by SparseAdam; on the CPU through the PyTorch reference, on a GPU through the kernel."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.train import Setup, TrainConfig, train

DENSE = TrainConfig(loss=LossConfig("ce_minus", num_negatives=32, negative_mode="tile",
                                    tile_size=16),
                    batch_size=64, max_len=20, hidden=16, dropout=0.0, device="cpu")


def table_gradient(config: TrainConfig, data) -> torch.Tensor:
    """The item table's gradient after one step's backward on the first batch."""
    setup = Setup(config, data)
    batch = epoch_batches(setup.lengths, config.batch_size, np.random.default_rng(0), "length",
                          config.max_len, setup.device, setup.loss_tokens)[0]
    torch.manual_seed(1)  # the same negatives for both
    setup.forward(batch.users, batch.width, batch.weight).backward()
    return setup.model.item_emb.weight.grad


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_sparse_gradient_is_the_dense_one(device):
    data = load(DataOptions("synthetic"))
    loss = "cce_minus" if device == "cuda" else "ce_minus"
    dense = replace(DENSE, device=device, loss=replace(DENSE.loss, name=loss),
                    bf16=device == "cuda")
    sparse = replace(dense, loss=replace(dense.loss, sparse_item_grad=True))
    expected = table_gradient(dense, data)
    got = table_gradient(sparse, data)
    assert got.is_sparse and not expected.is_sparse
    tolerance = 2e-2 if device == "cuda" else 1e-5  # bf16 on the GPU
    assert torch.allclose(got.to_dense(), expected, atol=tolerance * expected.abs().max())


def test_a_sparse_run_trains_with_sparse_adam():
    data = load(DataOptions("synthetic"))
    config = replace(DENSE, loss=replace(DENSE.loss, sparse_item_grad=True), epochs=4, lr=3e-3)
    setup = Setup(config, data)
    assert isinstance(setup.optimizer.parts[0], torch.optim.SparseAdam)
    result = train(config, data)
    assert result.test.ndcg10 > 2 * result.popularity_test.ndcg10
