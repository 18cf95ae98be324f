"""DLRM's peak memory and, when its tables outgrow one GPU, how many a table-wise split needs.

    >>> breakdown = estimate_dlrm(DLRMConfig(table_sizes=(10**6,) * 8), batch=1024, lookups=100)
"""

from __future__ import annotations

from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.models.dlrm_memory import (
    dense_parameter_bytes,
    hybrid_step_bytes,
    optimizer_state_bytes,
    step_bytes,
    table_bytes,
)
from cce_tune.tuner.memory import DEFAULT_PROFILE, MemoryBreakdown, MemoryProfile


def estimate_dlrm(config: DLRMConfig, batch: int, lookups: int, sparse_optimizer: str = "sgd",
                  dense_optimizer: str = "sgd", profile: MemoryProfile | None = None,
                  cuda_graph: bool = False) -> MemoryBreakdown:
    """Peak of a training step: parameters, optimizer state and the step's own bytes. A step
    replayed from a CUDA graph runs on a stream of its own, with its own cuBLAS workspaces
    beside the default stream's (which validation uses)."""
    profile = profile or DEFAULT_PROFILE
    terms = {
        "embedding tables": sum(table_bytes(config)),
        "MLP parameters": dense_parameter_bytes(config),
        **optimizer_state_bytes(config, sparse_optimizer, dense_optimizer),
        "library workspaces": profile.workspace_bytes * (2 if cuda_graph else 1),
        **step_bytes(config, batch, lookups),
    }
    peak = sum(terms.values())
    reserved = int(peak * (1 + profile.fragmentation))
    return MemoryBreakdown(terms, "training step", {"training step": peak}, peak, reserved,
                           reserved + profile.context_bytes)


def estimate_hybrid_rank(config: DLRMConfig, owners: tuple[int, ...], rank: int, batch: int,
                         lookups: int, sparse_optimizer: str = "sgd",
                         dense_optimizer: str = "sgd",
                         profile: MemoryProfile | None = None) -> MemoryBreakdown:
    """Peak of a hybrid-parallel training step on `rank` (`models.dlrm_hybrid`: table t on
    rank `owners[t]`, `batch` the global batch): its tables and their optimizer state, the
    replicated MLPs, and its step's bytes. NCCL's own buffers are outside PyTorch's
    allocator and not counted."""
    profile = profile or DEFAULT_PROFILE
    world = max(owners) + 1
    local = DLRMConfig(table_sizes=tuple(rows for rows, owner in zip(
        config.table_sizes, owners, strict=True) if owner == rank), bottom=config.bottom,
        top=config.top, embedding_dim=config.embedding_dim, interaction=config.interaction)
    terms = {
        "embedding tables": sum(table_bytes(local)),
        "MLP parameters": dense_parameter_bytes(config),
        "table optimizer state": optimizer_state_bytes(local, sparse_optimizer, "sgd")[
            "table optimizer state"],
        "MLP optimizer state": optimizer_state_bytes(config, "sgd", dense_optimizer)[
            "MLP optimizer state"],
        "library workspaces": profile.workspace_bytes,
        **hybrid_step_bytes(config, len(local.table_sizes), world, batch, lookups),
    }
    peak = sum(terms.values())
    reserved = int(peak * (1 + profile.fragmentation))
    return MemoryBreakdown(terms, "training step", {"training step": peak}, peak, reserved,
                           reserved + profile.context_bytes)


def gpus_for_tables(config: DLRMConfig, budget_bytes: float, sparse_optimizer: str,
                    batch: int, lookups: int) -> int | None:
    """GPUs a table-wise split needs under `budget_bytes` each (first-fit decreasing: each
    table with its optimizer state and its share of a step goes whole to one GPU); None when
    one table alone does not fit a GPU."""
    state_per_row = 4 if sparse_optimizer == "rowwise_adagrad" else 0
    one = DLRMConfig(table_sizes=(1,), bottom=config.bottom, top=config.top,
                     embedding_dim=config.embedding_dim, interaction=config.interaction)
    per_step = sum(step_bytes(one, batch, lookups).values())
    sizes = sorted((bytes_ + rows * state_per_row + per_step for rows, bytes_ in
                    zip(config.table_sizes, table_bytes(config), strict=True)), reverse=True)
    if sizes[0] > budget_bytes:
        return None
    free: list[float] = []
    for size in sizes:
        for index, room in enumerate(free):
            if size <= room:
                free[index] -= size
                break
        else:
            free.append(budget_bytes - size)
    return len(free)
