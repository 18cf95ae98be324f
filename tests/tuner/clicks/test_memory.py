"""DLRM's step estimate and the table-wise split (`tuner/clicks/memory.py`)."""

import math

from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.models.dlrm_memory import table_bytes
from cce_tune.tuner.clicks.memory import estimate_dlrm, gpus_for_tables
from cce_tune.tuner.memory import DEFAULT_PROFILE


def small() -> DLRMConfig:
    return DLRMConfig((1000, 50, 7), bottom=(13, 32, 16), top=(16, 1), embedding_dim=16)


def test_the_estimate_grows_with_the_batch_and_the_lookups():
    small_batch = estimate_dlrm(small(), 64, 2).peak_allocated
    assert small_batch < estimate_dlrm(small(), 256, 2).peak_allocated
    assert small_batch < estimate_dlrm(small(), 64, 8).peak_allocated


def test_a_table_wise_split_counts_gpus():
    config = DLRMConfig((10**8,) * 8, bottom=(13, 64), top=(64, 1), embedding_dim=64)
    per_table = 10**8 * 64 * 4  # 25.6 GB
    assert gpus_for_tables(config, 40e9, "sgd", 1024, 1) == 8  # one 25.6 GB table per GPU
    assert gpus_for_tables(config, 80e9, "sgd", 1024, 1) == 3  # three per GPU
    assert gpus_for_tables(config, per_table / 2, "sgd", 1024, 1) is None
    assert math.isclose(sum(table_bytes(config)), 8 * per_table, rel_tol=1e-6)


def test_a_step_replayed_from_a_graph_adds_its_streams_workspaces():
    eager = estimate_dlrm(small(), 64, 2, dense_optimizer="adam")
    graphed = estimate_dlrm(small(), 64, 2, dense_optimizer="adam", cuda_graph=True)
    assert graphed.peak_allocated - eager.peak_allocated == DEFAULT_PROFILE.workspace_bytes
