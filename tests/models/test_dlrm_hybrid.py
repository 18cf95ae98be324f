"""DLRM's hybrid parallelism: tables placed one rank each, and two gloo processes training
step for step as one process does on the whole batch (losses, MLPs and every table)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cce_tune.models.dlrm import DLRM
from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.models.dlrm_hybrid import HybridDLRM, place_tables
from cce_tune.tuner.clicks.batches import ClickGenerator, ClickSpec
from cce_tune.tuner.clicks.rowwise_adagrad import RowWiseAdagrad
from tests.gloo import free_port, gloo_group

SIZES = (50, 7, 30, 12, 20)
STEPS, BATCH, WORLD = 4, 16, 2


def config(interaction: str) -> DLRMConfig:
    return DLRMConfig(table_sizes=SIZES, bottom=(4, 8), top=(16, 1), embedding_dim=8,
                      interaction=interaction)


def test_tables_are_placed_once_each_with_rows_balanced():
    owners = place_tables((100, 60, 50, 10, 5), world=2)
    assert owners == (0, 1, 1, 0, 0)  # rows 115 against 110, largest first
    assert sorted(set(place_tables(SIZES, 3))) == [0, 1, 2]
    with pytest.raises(ValueError, match="3 ranks for 2 tables"):
        place_tables((10, 10), 3)


def optimizers(model, optimizer: str) -> list[torch.optim.Optimizer]:
    if optimizer == "sgd":  # the DLRM default: fused table SGD, dense SGD
        model.fuse_table_sgd(0.5)
        return [torch.optim.SGD(model.dense_parameters(), lr=0.1)]
    return [RowWiseAdagrad(model.sparse_parameters(), lr=0.3),
            torch.optim.Adam(model.dense_parameters(), lr=0.01)]


def train(model, batches, slicer, optimizer: str) -> list[float]:
    steps, losses = optimizers(model, optimizer), []
    for batch in batches:
        for step in steps:
            step.zero_grad(set_to_none=True)
        part = slicer(batch)
        loss = F.binary_cross_entropy_with_logits(
            model(batch.dense[part], batch.indices, batch.offsets), batch.labels[part])
        loss.backward()
        for step in steps:
            step.step()
        losses.append(loss.detach())
    return losses


def batches(seed: int) -> list:
    generator = ClickGenerator(ClickSpec(SIZES, dense_features=4, lookups=3,
                                         fixed_lookups=False), planted=True, seed=seed)
    return [generator.batch(BATCH) for _ in range(STEPS)]


def rank_worker(rank: int, port: int, interaction: str, optimizer: str, out: str) -> None:
    with gloo_group(rank, WORLD, port):
        torch.manual_seed(0)
        model = DLRM(config(interaction))
        owners = place_tables(SIZES, WORLD)
        hybrid = HybridDLRM.from_model(model, owners).data_parallel()
        part = BATCH // WORLD
        losses = torch.stack(train(hybrid, batches(1), lambda b: slice(rank * part,
                                                                       (rank + 1) * part),
                                   optimizer))
        dist.all_reduce(losses)  # the global batch's mean: the mean of the slices' means
        tables = {t: hybrid.tables.weight[first:first + SIZES[t]].detach().clone()
                  for t, first in zip(hybrid.local, hybrid.first_rows, strict=True)}
        torch.save({"losses": losses / WORLD, "tables": tables,
                    "bottom": hybrid.bottom.module.state_dict(),
                    "top": hybrid.top.module.state_dict()}, f"{out}/rank{rank}.pt")


@pytest.mark.parametrize("interaction,optimizer", [("dot", "sgd"), ("cat", "adagrad")])
def test_two_gloo_ranks_train_as_one_process_does(tmp_path, interaction, optimizer):
    mp.spawn(rank_worker, args=(free_port(), interaction, optimizer, str(tmp_path)),
             nprocs=WORLD)
    torch.manual_seed(0)
    single = DLRM(config(interaction))
    expected = torch.stack(train(single, batches(1), lambda b: slice(None), optimizer))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for result in ranks:
        torch.testing.assert_close(result["losses"], expected)
        for name, value in single.bottom.state_dict().items():
            torch.testing.assert_close(result["bottom"][name], value)
        for name, value in single.top.state_dict().items():
            torch.testing.assert_close(result["top"][name], value)
    placed = {t: rows for result in ranks for t, rows in result["tables"].items()}
    assert sorted(placed) == list(range(len(SIZES)))
    for t, rows in placed.items():
        torch.testing.assert_close(rows, single.table(t).detach())
    assert not torch.equal(expected[0], expected[-1])  # it trained
