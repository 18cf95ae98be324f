"""A DLRM training step captured once in a CUDA graph and replayed for every batch of its shape.

DLRM's step is launch-bound: at the paper's batch of 1,024 an H100 does about 1.8 ms of work
behind about 3 ms of Python and kernel launches (forward, backward and optimizer, some
hundred kernels). Replayed from a graph the step costs one launch. What a step may do to be
captured: no host-device copies or `.item()` (DLRM's forward has none; a GPU test checks),
optimizers that keep their state on the device (`Adam(capturable=True)`, plain SGD), and no
sparse gradients (the tables are updated inside the backward instead).

The first `WARMUP` batches of each shape run eagerly on a side stream, as CUDA graphs need
(lazy initialisations, the allocator's per-stream pools); the next one is captured and then
replayed: every batch is trained on exactly once. Warm-up and capture share one side stream
per device for the whole process: cuBLAS keeps a workspace (65 MiB) per stream until the
process ends, so a stream per trial of a reused Ray actor leaked one each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cce_tune.tuner.clicks.batches import ClickBatch

WARMUP = 3

Shape = tuple[int, ...]
_SIDE_STREAMS: dict[int, torch.cuda.Stream] = {}


def side_stream() -> torch.cuda.Stream:
    """This process's stream for warming up and capturing steps on the current device."""
    device = torch.cuda.current_device()
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: ClickBatch  # the captured step reads these tensors: batches are copied in
    loss: torch.Tensor  # and it writes its loss here


class CapturedStep:
    """`step(batch) -> loss`, replayed from one CUDA graph per batch shape."""

    def __init__(self, step: Callable[[ClickBatch], torch.Tensor]) -> None:
        self.step = step
        self.seen: dict[Shape, int] = {}
        self.graphs: dict[Shape, _Graph] = {}
        self.side = side_stream()
        self.pool = None  # graphs of all shapes share one memory pool

    def __call__(self, batch: ClickBatch) -> torch.Tensor:
        shape = (len(batch), *(len(ids) for ids in batch.indices))
        captured = self.graphs.get(shape)
        if captured is None:
            self.seen[shape] = self.seen.get(shape, 0) + 1
            if self.seen[shape] <= WARMUP:
                return self._eager(batch)
            captured = self.graphs[shape] = self._capture(batch)
        _copy_into(captured.inputs, batch)
        captured.graph.replay()
        return captured.loss.clone()

    def _eager(self, batch: ClickBatch) -> torch.Tensor:
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            loss = self.step(batch)
        torch.cuda.current_stream().wait_stream(self.side)
        return loss

    def _capture(self, batch: ClickBatch) -> _Graph:
        inputs = ClickBatch(batch.dense.clone(), [ids.clone() for ids in batch.indices],
                            [bags.clone() for bags in batch.offsets], batch.labels.clone())
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph, pool=self.pool, stream=self.side):
            loss = self.step(inputs)
        self.pool = graph.pool()
        return _Graph(graph, inputs, loss)


def _copy_into(target: ClickBatch, batch: ClickBatch) -> None:
    target.dense.copy_(batch.dense, non_blocking=True)
    target.labels.copy_(batch.labels, non_blocking=True)
    for mine, theirs in zip(target.indices + target.offsets, batch.indices + batch.offsets,
                            strict=True):
        mine.copy_(theirs, non_blocking=True)
