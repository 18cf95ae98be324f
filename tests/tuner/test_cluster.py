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


@pytest.mark.slow
def test_a_trial_over_two_gpus_trains_data_parallel_through_ray_train(tmp_path,
                                                                       monkeypatch):
    """`--gpus-per-trial 2`: each trial a Ray Train run of two workers (a fake GPU each; on
    this CPU machine they form a gloo group), whose epochs reach Tune and the reports."""
    from ray.cluster_utils import Cluster

    from cce_tune.tuner.sequences.parallel_trial import BACKEND_ENV

    monkeypatch.setenv(BACKEND_ENV, "gloo")  # the cluster's processes inherit it

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 3, "num_gpus": 2, "include_dashboard": False})
    cluster.wait_for_nodes()
    run_dir = tmp_path / "run"
    try:
        assert main(["--dataset", "synthetic", "--epochs", "2", "--gpu-mem", "40GB",
                     "--trials", "2", "--gpus-per-trial", "2", "--address", cluster.address,
                     "--out", str(run_dir)]) == 0
    finally:
        cluster.shutdown()
    trials = pd.read_csv(run_dir / "report" / "trials.csv")
    assert len(trials) == 2 and trials["status"].isin(["completed", "converged"]).all()
    assert (trials["gpu_fraction"] == 2.0).all()
    for result in run_dir.glob("trial_*/result.json"):
        epochs = [json.loads(line) for line in result.read_text().splitlines()]
        assert [e["epoch"] for e in epochs] == [1, 2]
        assert all(e["ranks"] == 2 for e in epochs)  # rank 0 of a group of two reported


def test_gpus_per_trial_is_a_share_of_one_or_a_whole_number(capsys, tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        main(["--dataset", "synthetic", "--gpus-per-trial", "1.5"])
    assert "1.5 is neither a share of one GPU" in capsys.readouterr().err
    # more than this machine has: refused before Ray starts or anything is written
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    run_dir = tmp_path / "run"
    assert main(["--dataset", "synthetic", "--gpu-mem", "40GB", "--gpus-per-trial", "2",
                 "--out", str(run_dir)]) == 2
    assert "GPUs to train on: 1 (this machine's" in capsys.readouterr().err
    assert not run_dir.exists()


def test_more_gpus_per_trial_than_the_cluster_has_is_refused():
    from cce_tune.tuner.errors import CceTuneError
    from cce_tune.tuner.search import _parallel_trials_at_once, check_gpus_per_trial

    with pytest.raises(CceTuneError, match="--gpus-per-trial 4: GPUs to train on: 2"):
        check_gpus_per_trial(4.0, 2.0)
    check_gpus_per_trial(0.5, 0.0)  # a share of one GPU: Ray places it, or waits
    assert _parallel_trials_at_once(2.0, 5.0) == 2 and _parallel_trials_at_once(1.0, 5.0) is None
