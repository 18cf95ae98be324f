"""DLRM trained by hybrid parallelism, as its paper lays it out (Naumov et al., 2019, sec. 4):
each embedding table lives on one rank (model parallel), the MLPs on every rank (data
parallel), and an all-to-all joins the two.

A step over a global batch of B samples on W ranks: every rank pools the whole batch's ids
of its own tables (B x its tables x d); the all-to-all hands each rank, from every table, the
pooled vectors of its slice of the batch (B / W samples); the bottom MLP, the interaction and
the top MLP run on the slice, and DistributedDataParallel averages their gradients. The
all-to-all is PyTorch's functional collective with autograd (`all_to_all_single_autograd`,
what `torch.distributed.nn.functional`'s deprecation points to), whose backward sends each
table's gradient back to its owner, which alone updates its rows. NCCL on GPUs, gloo on
CPUs.

Each rank's loss is the mean over its slice, so the MLPs' averaged gradient is the global
batch's; a table's gradient, though, sums every rank's slice mean, W times the global
batch's, and is scaled back by 1 / W on its way. Training matches one process on the whole
batch step for step (`tests/models/test_dlrm_hybrid.py`, 2 gloo processes).

    >>> owners = place_tables(config.table_sizes, world=2)
    >>> model = HybridDLRM.from_model(DLRM(config), owners)   # inside each rank's process
    >>> logits = model(batch.dense[my_slice], batch.indices, batch.offsets)
"""

from __future__ import annotations

import itertools

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._functional_collectives import all_to_all_single_autograd
from torch.nn.parallel import DistributedDataParallel

from cce_tune.models.dlrm import DLRM, interact, mlp, pool
from cce_tune.models.dlrm_config import DLRMConfig


def place_tables(table_sizes: tuple[int, ...], world: int) -> tuple[int, ...]:
    """Each table's rank: largest first, each onto the rank holding the fewest rows so far
    (balanced rows, hence memory, better than filling one GPU before the next)."""
    if world > len(table_sizes):
        raise ValueError(f"{world} ranks for {len(table_sizes)} tables: each rank needs a "
                         "table of its own")
    rows, owners = [0] * world, [0] * len(table_sizes)
    for table in sorted(range(len(table_sizes)), key=lambda t: -table_sizes[t]):
        owners[table] = min(range(world), key=lambda r: rows[r])
        rows[owners[table]] += table_sizes[table]
    return tuple(owners)


class _ScaleGradient(torch.autograd.Function):
    """The identity forward; the gradient times `scale` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


class HybridDLRM(nn.Module):
    """This rank's part: its tables (`owners[t]` is table t's rank) and the replicated MLPs.
    Built inside an initialised process group."""

    def __init__(self, config: DLRMConfig, owners: tuple[int, ...],
                 group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        if len(owners) != len(config.table_sizes):
            raise ValueError(f"{len(owners)} owners for {len(config.table_sizes)} tables")
        self.config, self.owners, self.group = config, owners, group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        owned = [[t for t, owner in enumerate(owners) if owner == rank]
                 for rank in range(self.world)]
        if not all(owned):
            raise ValueError(f"placement {owners}: every one of {self.world} ranks needs a table")
        self.local = tuple(owned[self.rank])
        self.counts = [len(tables) for tables in owned]  # tables per rank
        # Received vectors come grouped by rank; this puts them back in table order.
        arrival = list(itertools.chain.from_iterable(owned))
        self.register_buffer("table_order", torch.tensor(
            [arrival.index(t) for t in range(len(owners))]), persistent=False)
        sizes = [config.table_sizes[t] for t in self.local]
        self.tables = nn.EmbeddingBag(sum(sizes), config.embedding_dim, mode="sum",
                                      sparse=config.sparse)
        self.first_rows = tuple(itertools.accumulate(sizes[:-1], initial=0))
        self.bottom = mlp(config.bottom, last_activation=True)
        self.top = mlp((config.interaction_dim, *config.top), last_activation=False)
        self.table_lr: float | None = None

    @classmethod
    def from_model(cls, model: DLRM, owners: tuple[int, ...],
                   group: dist.ProcessGroup | None = None) -> HybridDLRM:
        """This rank's part of `model`: its tables' rows and the MLPs, copied."""
        hybrid = cls(model.config, owners, group).to(model.tables.weight.device)
        with torch.no_grad():
            for table, first in zip(hybrid.local, hybrid.first_rows, strict=True):
                rows = model.config.table_sizes[table]
                hybrid.tables.weight[first:first + rows] = model.table(table)
        hybrid.bottom.load_state_dict(model.bottom.state_dict())
        hybrid.top.load_state_dict(model.top.state_dict())
        return hybrid

    def data_parallel(self) -> HybridDLRM:
        """Wraps the MLPs in DistributedDataParallel (their gradients averaged across ranks);
        call once, before building the optimizers."""
        self.bottom = DistributedDataParallel(self.bottom, process_group=self.group)
        self.top = DistributedDataParallel(self.top, process_group=self.group)
        return self

    def fuse_table_sgd(self, lr: float) -> None:
        """As `DLRM.fuse_table_sgd`: SGD on this rank's rows inside the backward."""
        self.table_lr = lr

    def forward(self, dense: torch.Tensor, indices: list[torch.Tensor],
                offsets: list[torch.Tensor]) -> torch.Tensor:
        """`dense`: this rank's slice of the global batch (its B / W samples, in rank order);
        `indices`, `offsets`: every table's ids for the whole global batch (only this
        rank's tables are read) -> logits for the slice."""
        batch, d = len(offsets[0]), self.config.embedding_dim
        if batch % self.world:
            raise ValueError(f"global batch {batch} does not split over {self.world} ranks")
        part = batch // self.world
        pooled = pool(self.tables, self.first_rows, [indices[t] for t in self.local],
                      [offsets[t] for t in self.local],
                      self.table_lr if self.training else None)  # (batch, local, d)
        send = pooled.reshape(self.world, -1)  # rank w's slice: row w
        arriving = [part * count * d for count in self.counts]  # from each rank
        received = all_to_all_single_autograd(
            send.reshape(-1), arriving, [part * len(self.local) * d] * self.world,
            self.group or dist.group.WORLD)
        vectors = torch.cat([chunk.view(part, count, d) for chunk, count in zip(
            received.split(arriving), self.counts, strict=True)],
            dim=1).index_select(1, self.table_order)
        vectors = _ScaleGradient.apply(vectors, 1.0 / self.world)
        return self.top(interact(self.bottom(dense), vectors, self.config.interaction)
                        ).squeeze(1)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.tables.weight]

    def dense_parameters(self) -> list[nn.Parameter]:
        return [*self.bottom.parameters(), *self.top.parameters()]
