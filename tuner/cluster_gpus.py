"""The GPUs of a Ray cluster that `--address` joins: what the trials will run on, not this
machine's. Ray counts each node's GPUs but does not know their memory, so a task that takes
no resources asks `nvidia-smi` on every node with GPUs (no torch import, no CUDA context
left behind in a pooled worker). On a MIG-partitioned GPU nvidia-smi gives the whole GPU's
memory, where a trial sees its slice: the check is then only an upper bound.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass

MIB = 2**20
QUERY = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    name: str
    total_bytes: int
    node: str  # the node's address


@dataclass(frozen=True)
class ClusterGpus:
    gpus: list[Gpu]  # of the nodes that answered
    unknown: list[str]  # nodes with GPUs whose memory could not be read (no nvidia-smi)


def cluster_gpus(address: str, timeout_s: float = 60.0) -> ClusterGpus:
    """Every GPU of the cluster at `address`, asked of each node that has GPUs; a node that
    does not answer within `timeout_s` counts as unknown."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        probe = ray.remote(num_cpus=0)(node_gpus)
        asked = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                     node["NodeID"], soft=False)).remote(): node["NodeManagerAddress"]
                 for node in ray.nodes() if node["Alive"] and node["Resources"].get("GPU")}
        if not asked:
            return ClusterGpus([], [])
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=timeout_s)
        gpus, unknown = [], []
        for ref, node in asked.items():
            found = _answer(ref) if ref in ready else None
            if found:
                gpus += [Gpu(name, total, node) for name, total in found]
            else:
                unknown.append(node)
        return ClusterGpus(gpus, unknown)
    finally:
        ray.shutdown()


def _answer(ref) -> list[tuple[str, int]] | None:
    """A node's probe result; None where its worker failed (the node counts as unknown,
    not as a traceback of the whole command)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError:
        return None


def node_gpus() -> list[tuple[str, int]] | None:
    """(name, bytes) of each GPU `nvidia-smi` lists on this node; None without it, or where
    it gives no size (`[N/A]`)."""
    try:
        out = subprocess.run(QUERY, capture_output=True, text=True, check=True, timeout=30)
        return [parse_gpu_line(line) for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def parse_gpu_line(line: str) -> tuple[str, int]:
    """`NVIDIA H100 80GB HBM3, 81559` (memory in MiB) -> (name, bytes)."""
    name, mib = line.rsplit(",", 1)
    return name.strip(), int(mib) * MIB
