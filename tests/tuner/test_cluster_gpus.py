"""--gpu-mem checked against the GPUs of the cluster that --address joins: a local cluster of
nodes with fake GPUs, each node's `nvidia-smi` a script that prints its GPUs."""

import os
import stat

import pytest

from cce_tune.tuner.cli import main
from cce_tune.tuner.cluster_gpus import cluster_gpus, parse_gpu_line

H100, A100 = "NVIDIA H100 80GB HBM3, 81559", "NVIDIA A100-SXM4-40GB, 40960"


def test_an_nvidia_smi_line_is_a_name_and_bytes():
    assert parse_gpu_line(H100) == ("NVIDIA H100 80GB HBM3", 81559 * 2**20)


def fake_node(tmp_path, name: str, gpus: list[str] | None) -> dict:
    """Node arguments whose `nvidia-smi` lists `gpus`, or fails as without a driver."""
    folder = tmp_path / name
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + ("".join(f"echo '{gpu}'\n" for gpu in gpus) if gpus
                                       else "echo 'NVIDIA-SMI has failed' >&2; exit 9\n"))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"num_cpus": 1, "num_gpus": len(gpus or [None]), "include_dashboard": False,
            "env_vars": {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}}


@pytest.mark.slow
def test_a_budget_beyond_a_gpu_of_the_cluster_is_refused(tmp_path, capsys):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=fake_node(tmp_path, "head", [H100]))
    try:
        cluster.add_node(**fake_node(tmp_path, "two", [A100, A100]))
        cluster.add_node(**fake_node(tmp_path, "broken", None))
        cluster.add_node(num_cpus=1)  # no GPU: not asked
        cluster.wait_for_nodes()
        found = cluster_gpus(cluster.address)
        assert sorted((gpu.name, gpu.total_bytes) for gpu in found.gpus) == [
            ("NVIDIA A100-SXM4-40GB", 40960 * 2**20)] * 2 + [
            ("NVIDIA H100 80GB HBM3", 81559 * 2**20)]
        assert len(found.unknown) == 1
        capsys.readouterr()
        assert main(["--dataset", "synthetic", "--gpu-mem", "50GB", "--address",
                     cluster.address, "--out", str(tmp_path / "run")]) == 2
    finally:
        cluster.shutdown()
    printed = capsys.readouterr()
    assert ("(nvidia-smi gave no answer there); --gpu-mem is not checked against it"
            in printed.err)
    assert ("--gpu-mem 50.00 GB is more than a GPU of the cluster has (42.95 GB on NVIDIA "
            "A100-SXM4-40GB, node ") in printed.err
    assert not (tmp_path / "run").exists()
