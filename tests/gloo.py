"""Processes of a gloo group on this machine, for tests that train on several ranks."""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gloo_group(rank: int, world: int, port: int) -> Iterator[None]:
    """This process as `rank` of a gloo group of `world` on localhost:`port`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        yield
        # Every rank done communicating before any tears its connections down: twice in
        # fresh-clone CI runs a DLRM rank aborted at exit ("terminate called without an
        # active exception") after its results were written (not reproduced in 60 runs here).
        dist.barrier()
    finally:
        dist.destroy_process_group()
