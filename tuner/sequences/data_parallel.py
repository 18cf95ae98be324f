"""Data-parallel training of a sequence model over the ranks of a torch.distributed process
group: one trial on several GPUs (NCCL), or several CPU processes (gloo).

Every rank draws the same epoch of batches (the run's seed), takes its share of each batch's
users (`rank_share`: contiguous, cut to the share's own longest sequence), and steps on it
under DistributedDataParallel, which averages the gradients. A share's loss is weighted by
its tokens over its batch's, times the ranks: the averaged gradient is then the one-process
step's on the whole batch, exactly where the loss sees every real token (SASRec;
BERT4Rec's masked count is random, weighted by its expectation). Negatives and dropout are
drawn per rank, so they differ from one process's. A last batch of fewer users than ranks is
left out on every rank.

`tuner.sequences.train.train` calls `replicate` when a process group of several ranks is
initialised; evaluation runs on every rank over every user (the same weights, the same
figures). `cce-tune train` launched by torchrun joins torchrun's group
(`process_group_from_env`):

    torchrun --nproc_per_node 2 -m cce_tune.tuner.cli train --dataset ml-20m ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from cce_tune.tuner.sequences.batching import Batch, batch_width


def world_size() -> int:
    """Ranks of the initialised process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class Replicated(DistributedDataParallel):
    """The model under DistributedDataParallel, still giving the loss its item table."""

    @property
    def output_embedding(self) -> torch.Tensor:
        return self.module.output_embedding


def replicate(model: torch.nn.Module, device: torch.device) -> Replicated:
    cuda = device.type == "cuda"
    return Replicated(model, device_ids=[torch.cuda.current_device()] if cuda else None)


def rank_share(batch: Batch, lengths: np.ndarray, tokens: np.ndarray, rank: int, world: int,
               max_width: int) -> Batch | None:
    """This rank's users of `batch`, their width (by `lengths`), and their loss weight (by
    the loss `tokens` each user brings); None for a batch of fewer users than ranks."""
    if batch.host_users is None:
        raise ValueError("a batch without its users on the host cannot be shared out")
    if len(batch.host_users) < world:
        return None
    bounds = np.linspace(0, len(batch.host_users), world + 1).astype(int)
    start, stop = bounds[rank], bounds[rank + 1]
    mine = batch.host_users[start:stop]
    total = tokens[batch.host_users].sum()
    weight = float(batch.weight * world * tokens[mine].sum() / total) if total else 0.0
    return Batch(batch.users[start:stop], batch_width(lengths[mine], max_width), weight, mine)


@contextmanager
def process_group_from_env(device: torch.device) -> Iterator[int]:
    """Under torchrun (WORLD_SIZE > 1), join its process group for the duration, NCCL with
    each local rank on its own GPU, else gloo; yields this process's rank (0 when alone)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield 0
        return
    cuda = device.type == "cuda"
    if cuda:
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast off: the device notes
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()
