"""Training steps replayed from CUDA graphs (`--cuda-graphs`): one graph per batch shape.

Once batches are cut to their users' real length (`tuner.sequences.batching`), a step is a
few milliseconds of kernels that the host takes longer to launch than the device takes to
run (benchmarks/results/step-h200.md: 2.8 ms of kernels in a 6.9 ms step). A graph launches
the whole step (forward, loss, backward, Adam) at once. An epoch's batches come in at most
max_len / 16 widths (packed: a few token counts, multiples of 1,024) and a ragged size or
two, so a few dozen graphs cover it. A shape's first batch trains eagerly (kernels compile,
libraries initialise), its second is captured and replayed, the rest replay. Nothing in the
step waits for the host: the fused losses read their seed from device memory and Adam keeps
its step count there.

Every graph shares one memory pool, and evaluation borrows it too, so the process holds about
what an eager step would; the reported peak is the highest since training began, as a
graph's memory stays held between epochs.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from cce_tune.tuner.errors import CceTuneError

if TYPE_CHECKING:
    from cce_tune.tuner.data.sequences import SequenceData
    from cce_tune.tuner.sequences.evaluate import RankingMetrics
    from cce_tune.tuner.sequences.train import Setup


def check_graphable(device: torch.device) -> None:
    """Raises CceTuneError when `--cuda-graphs` cannot apply to a run on `device`, saying why
    (BERT4Rec's config refuses it itself; data-parallel training is refused by
    `tuner.sequences.config.data_parallel_refusal`)."""
    if device.type != "cuda":
        raise CceTuneError("--cuda-graphs needs a CUDA GPU; leave it out on the CPU")


@functools.cache
def capture_stream(device: torch.device) -> torch.cuda.Stream:
    """The process's one capture stream on `device`. cuBLAS keeps a workspace per stream it
    runs on (64 MiB on an H200, held for the process's life), so a stream per run left one
    behind per run (measured: 64 MiB more allocated after each graphed point of a grid);
    with one, a graphed run holds a single workspace, as an eager one does, which is what the
    memory model counts (a process that also trained eagerly holds both)."""
    return torch.cuda.Stream(device)


@dataclass
class _Graph:
    """A captured step and the tensors it reads and writes: replay after filling the inputs."""

    graph: torch.cuda.CUDAGraph
    users: torch.Tensor  # (batch,) user ids
    weight: torch.Tensor  # () the batch's loss weight
    loss: torch.Tensor  # () the weighted loss, detached


class GraphedSteps:
    """`Setup.step` and `Setup.evaluate`, the steps replayed from graphs by batch shape."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.pool = torch.cuda.MemPool()
        # One side stream for warm-up and every capture: graphs that share a pool must be
        # captured on the same stream.
        self.stream = capture_stream(setup.device)
        self.graphs: dict[tuple[int, int], _Graph] = {}
        self.warmed: set[tuple[int, int]] = set()

    def step(self, users: torch.Tensor, width: int, weight: float) -> torch.Tensor:
        """One optimizer step on `users`' windows cut to `width` (or packed into `width`
        tokens); returns the loss, which the next replay of the same shape overwrites (read
        it in stream order, as `+=`)."""
        shape = (len(users), width)
        graph = self.graphs.get(shape)
        if graph is None:
            if shape not in self.warmed:
                self.warmed.add(shape)
                return self._eager(users, width, weight)
            graph = self.graphs[shape] = self._capture(users, width)
        graph.users.copy_(users)
        graph.weight.fill_(weight)
        graph.graph.replay()
        return graph.loss

    def evaluate(self, split: str, data: SequenceData) -> RankingMetrics:
        with self.borrowed_pool():
            return self.setup.evaluate(split, data)

    @contextmanager
    def borrowed_pool(self):
        """Work between epochs on the capture stream, its allocations in the graphs' pool,
        whose blocks are free between replays (the allocator hands a free block only to
        its own stream): it needs no memory beside what the graphs hold."""
        with self._on_capture_stream(), torch.cuda.use_mem_pool(self.pool,
                                                                self.setup.device.index):
            yield

    @contextmanager
    def _on_capture_stream(self):
        """Work on the capture stream, ordered after what was queued before and before
        what is queued after."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)

    def _eager(self, users: torch.Tensor, width: int, weight: float) -> torch.Tensor:
        with self._on_capture_stream():
            return self.setup.step(users, width, weight)

    def _capture(self, users: torch.Tensor, width: int) -> _Graph:
        static_users = users.clone()
        weight = torch.ones((), device=users.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool.id, stream=self.stream):
            loss = self.setup.step(static_users, width, weight)
        return _Graph(graph, static_users, weight, loss)
