"""DLRM's step estimate and the table-wise split (`tuner/clicks/memory.py`)."""

import math

import pytest

from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.models.dlrm_hybrid import place_tables
from cce_tune.models.dlrm_memory import table_bytes
from cce_tune.tuner.clicks.memory import estimate_dlrm, estimate_hybrid_rank, gpus_for_tables
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


def test_a_hybrid_rank_holds_its_tables_and_a_slice_of_the_step():
    """The paper's benchmark over 2 ranks: each holds 4 of the 8 tables (1,000,000 x 64
    float32 each) and the replicated MLPs; the whole model's estimate exceeds a rank's by
    at least the other rank's tables."""
    config = DLRMConfig((10**6,) * 8, bottom=(512, 512, 64), top=(1024, 1024, 1024, 1),
                        embedding_dim=64)
    owners = place_tables(config.table_sizes, 2)
    ranks = [estimate_hybrid_rank(config, owners, rank, 1024, 100) for rank in range(2)]
    one_table = table_bytes(config)[0]
    assert [r.terms["embedding tables"] for r in ranks] == [4 * one_table] * 2
    assert ranks[0].terms["MLP parameters"] == estimate_dlrm(config, 1024, 100).terms[
        "MLP parameters"]
    whole = estimate_dlrm(config, 1024, 100)
    assert whole.peak_allocated - ranks[0].peak_allocated > 4 * one_table * 0.99
    # Row-wise Adagrad's state follows the rank's rows: 4 bytes a row
    adagrad = estimate_hybrid_rank(config, owners, 0, 1024, 100, "rowwise_adagrad")
    assert adagrad.terms["table optimizer state"] == pytest.approx(4 * 10**6 * 4, rel=1e-3)
    # The MLP side of a step shrinks with the ranks; the pooling side does not
    four = estimate_hybrid_rank(config, place_tables(config.table_sizes, 4), 0, 1024, 100)
    assert four.terms["MLP activations"] < ranks[0].terms["MLP activations"]
    assert four.terms["embedding bags"] < ranks[0].terms["embedding bags"]  # 2 tables, not 4
