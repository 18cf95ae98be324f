"""DLRM's bytes on the GPU, by term: tables, their optimizer state, MLPs, one step's
activations and gradients. Embedding tables dominate; their gradients are sparse (only the
rows a batch looked up), so a step costs far less than the tables."""

from __future__ import annotations

from cce_tune.kernels.memory import allocation
from cce_tune.models.dlrm_config import DLRMConfig

SPARSE_OPTIMIZERS = ("sgd", "rowwise_adagrad")
DENSE_OPTIMIZERS = ("sgd", "adam")


def mlp_shapes(sizes: tuple[int, ...]) -> list[int]:
    """Element counts of an MLP's weights and biases."""
    out = []
    for width_in, width_out in zip(sizes, sizes[1:], strict=False):
        out += [width_in * width_out, width_out]
    return out


def dense_parameter_bytes(config: DLRMConfig) -> int:
    shapes = mlp_shapes(config.bottom) + mlp_shapes((config.interaction_dim, *config.top))
    return sum(allocation(n, 4) for n in shapes)


def table_bytes(config: DLRMConfig) -> list[int]:
    return [allocation(rows * config.embedding_dim, 4) for rows in config.table_sizes]


def optimizer_state_bytes(config: DLRMConfig, sparse_optimizer: str,
                          dense_optimizer: str) -> dict[str, int]:
    tables = (sum(allocation(rows, 4) for rows in config.table_sizes)
              if sparse_optimizer == "rowwise_adagrad" else 0)
    dense = 2 * dense_parameter_bytes(config) if dense_optimizer == "adam" else 0
    return {"table optimizer state": tables, "MLP optimizer state": dense}


def step_bytes(config: DLRMConfig, batch: int, lookups: int) -> dict[str, int]:
    """One training step's bytes beyond parameters and optimizer state."""
    return {**_step_bytes(config, batch, batch, len(config.table_sizes), lookups),
            "MLP gradients": dense_parameter_bytes(config)}


def hybrid_step_bytes(config: DLRMConfig, local_tables: int, world: int, batch: int,
                      lookups: int) -> dict[str, int]:
    """One hybrid-parallel step's bytes on a rank that holds `local_tables` of the tables
    (`models.dlrm_hybrid`), `batch` the global batch: its tables pool the whole batch, the
    MLPs and the interaction see its slice (batch / world) of every table's vectors."""
    d, tables, part = config.embedding_dim, len(config.table_sizes), batch // world
    terms = _step_bytes(config, part, batch, local_tables, lookups)
    # What is sent (the pooled vectors in batch order), what arrives, and the arrival put
    # in table order (a concatenation, then a selection).
    terms["all-to-all"] = (allocation(batch * local_tables * d, 4)
                           + 3 * allocation(part * tables * d, 4))
    # DistributedDataParallel reduces the MLP gradients through buckets of its own.
    return {**terms, "MLP gradients": dense_parameter_bytes(config),
            "gradient buckets": dense_parameter_bytes(config)}


def _step_bytes(config: DLRMConfig, part: int, batch: int, tables: int,
                lookups: int) -> dict[str, int]:
    """A step's activations: the MLPs and the interaction over `part` samples, the lookups
    of `tables` tables over `batch` samples (the same on one device)."""
    d = config.embedding_dim
    ids = batch * lookups  # per table
    inputs = (allocation(part * config.dense_features, 4) + allocation(part, 4)
              + tables * (allocation(ids, 8) + allocation(batch, 8)))
    widths = [*config.bottom[1:], *config.top]
    # Each layer keeps its Linear output and its ReLU output for the backward.
    mlp = sum(2 * allocation(part * w, 4) for w in widths) + allocation(
        part * config.interaction_dim, 4)
    n = config.num_vectors
    # One EmbeddingBag over the tables: the shifted ids and bag starts, each id's bag
    # (offset2bag), each bag's size, the pooled output and its (batch, n, d) arrangement.
    bags = (2 * allocation(tables * ids, 8) + 3 * allocation(tables * batch, 8)
            + 2 * allocation(tables * batch * d, 4))
    interaction = (allocation(part * n * d, 4) + allocation(part * n * n, 4)
                   + allocation(part * n * (n - 1) // 2, 4))
    # The sparse table gradient: an (ids, d) block of values and the ids, for the tables;
    # SGD adds it into the table uncoalesced (measured on an H100: no second copy).
    sparse_grads = allocation(tables * ids * d, 4) + allocation(tables * ids, 8)
    return {"batch on device": inputs, "MLP activations": mlp, "embedding bags": bags,
            "interaction": interaction, "sparse gradients": sparse_grads}
