"""Trials on a Ray cluster of several nodes, joined with --address: a local two-node cluster
with a (fake) GPU on each, so that the trials spread as they would over two GPU machines."""

import json

import pandas as pd
import pytest

from cce_tune.tuner.cli import main


@pytest.mark.slow
def test_trials_spread_over_the_nodes_of_a_cluster_joined_with_address(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "num_gpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    run_dir = tmp_path / "run"
    try:
        assert main(["--dataset", "synthetic", "--epochs", "2", "--gpu-mem", "40GB",
                     "--trials", "4", "--address", cluster.address,
                     "--out", str(run_dir)]) == 0
    finally:
        cluster.shutdown()
    trials = pd.read_csv(run_dir / "report" / "trials.csv")
    assert len(trials) == 4 and trials["status"].isin(["completed", "converged"]).all()
    nodes = set()
    for result in run_dir.glob("trial_*/result.json"):
        nodes |= {json.loads(line)["node_id"] for line in result.read_text().splitlines()}
    assert len(nodes) == 2  # both nodes trained trials
    # one whole (fake) GPU per trial: the driver sees none to cut fractions from
    assert (trials["gpu_fraction"] == 1.0).all()
