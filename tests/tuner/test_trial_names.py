"""Trials named by their id and knobs where Ray shows them (the dashboard reads the same
state API as `ray.util.state`)."""

from types import SimpleNamespace

import pytest

from cce_tune.tuner.cli import main
from cce_tune.tuner.trial_names import TrialNamer

COLUMNS = (("loss", "loss"), ("batch_size", "B"), ("negatives", "N"), ("lr", "lr"))


def test_a_trials_name_is_its_id_and_the_knobs_it_has():
    trial = SimpleNamespace(trial_id="ab12cd34",
                            config={"batch_size": 256, "negatives": 128, "lr": 0.003,
                                    "estimate_bytes": 10**9})
    assert TrialNamer(COLUMNS)(trial) == "trial_ab12cd34 B=256 N=128 lr=0.003"
    assert TrialNamer(COLUMNS)(SimpleNamespace(trial_id="x", config={})) == "trial_x"


@pytest.mark.slow
def test_with_actor_per_trial_the_dashboard_shows_each_trial_by_id_and_knobs(tmp_path):
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors, list_tasks

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    run_dir = tmp_path / "run"
    try:
        assert main(["--dataset", "synthetic", "--epochs", "1", "--gpu-mem", "40GB",
                     "--trials", "2", "--actor-per-trial", "--address", cluster.address,
                     "--out", str(run_dir)]) == 0
        ray.init(address=cluster.address)
        actors = list_actors(detail=True)
        tasks = {task.name for task in list_tasks(detail=True, limit=1000)}
    finally:
        ray.shutdown()
        cluster.shutdown()
    trials = sorted(path.name for path in run_dir.glob("trial_*"))
    names = sorted(actor.repr_name for actor in actors if actor.class_name == "TrialActor")
    assert len(trials) == 2 and len(names) == 2  # one actor per trial, none reused
    for trial, name in zip(trials, names, strict=True):
        assert name.startswith(f"{trial} loss=cce_minus B=") and " N=" in name and " lr=" in name
        assert f"{name}.train" in tasks  # its epochs, by the trial's name
