"""Data-parallel training: each batch's users shared out with weights that add up to the
batch's loss, and two gloo processes training SASRec as one process does, epoch for epoch."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from cce_tune.kernels import LossConfig
from cce_tune.tuner.cli import main
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.data_parallel import rank_share
from cce_tune.tuner.sequences.train import train
from tests.gloo import free_port, gloo_group

CONFIG = TrainConfig(loss=LossConfig("ce"), batch_size=96, max_len=30, hidden=16, num_heads=2,
                     dropout=0.0, lr=3e-3, epochs=2, device="cpu")
LENGTHS = np.random.default_rng(0).integers(1, 60, size=500)


def test_shares_split_every_batch_and_weigh_as_its_tokens():
    batches = epoch_batches(LENGTHS, 64, np.random.default_rng(0), "length", 30,
                            torch.device("cpu"))
    for batch in batches:
        shares = [rank_share(batch, LENGTHS, LENGTHS, rank, 3, 30) for rank in range(3)]
        assert np.array_equal(np.concatenate([s.host_users for s in shares]), batch.host_users)
        assert torch.equal(torch.cat([s.users for s in shares]), batch.users)
        # the weights of the shares' mean losses, over the ranks, make the batch's
        tokens = [LENGTHS[s.host_users].sum() for s in shares]
        assert sum(s.weight / 3 for s in shares) == pytest.approx(batch.weight * sum(
            t / sum(tokens) for t in tokens))
        assert all(s.width <= batch.width for s in shares)
    short = batches[-1].__class__(batches[-1].users[:2], 16, 1.0, batches[-1].host_users[:2])
    assert rank_share(short, LENGTHS, LENGTHS, 0, 3, 30) is None  # fewer users than ranks


def rank_worker(rank: int, port: int, out: str) -> None:
    with gloo_group(rank, 2, port):
        result = train(CONFIG, load(DataOptions("synthetic")), final_test=False)
        if rank == 0:
            torch.save({"losses": [e.loss for e in result.epochs],
                        "ndcg10": [e.valid.ndcg10 for e in result.epochs]}, f"{out}/ranks.pt")


def test_two_gloo_ranks_train_as_one_process_does(tmp_path):
    mp.spawn(rank_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = torch.load(tmp_path / "ranks.pt")
    single = train(CONFIG, load(DataOptions("synthetic")), final_test=False)
    np.testing.assert_allclose(ranks["losses"], [e.loss for e in single.epochs], rtol=1e-4)
    np.testing.assert_allclose(ranks["ndcg10"], [e.valid.ndcg10 for e in single.epochs],
                               atol=2e-3)
    assert single.epochs[1].loss < single.epochs[0].loss  # it trained


def test_cce_tune_train_under_torchrun_trains_as_one_process(tmp_path):
    """The user's way: `torchrun --nproc_per_node 2 -m cce_tune.tuner.cli train ...`; rank
    0 prints and writes the results, which match a plain run's."""
    flags = ["train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "96",
             "--max-len", "30", "--hidden", "16", "--heads", "2", "--dropout", "0", "--loss",
             "ce", "--lr", "3e-3", "--device", "cpu"]
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(free_port()), "-m", "cce_tune.tuner.cli", *flags,
         "--out", str(tmp_path / "dp.json")], capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert launched.stdout.count("results written to") == 1  # rank 0 alone speaks
    assert main([*flags, "--out", str(tmp_path / "one.json")]) == 0
    dp, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("dp", "one"))
    np.testing.assert_allclose([e["loss"] for e in dp["epochs"]],
                               [e["loss"] for e in one["epochs"]], rtol=1e-4)
    assert dp["test"]["ndcg10"] == pytest.approx(one["test"]["ndcg10"], abs=2e-3)
