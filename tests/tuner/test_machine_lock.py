"""A second local run on a machine is refused with the way to share it; a dead run's lock is
no obstacle."""

import json
import os
import subprocess
import sys

from cce_tune.tuner.cli import main
from cce_tune.tuner.data.cache import cache_dir
from cce_tune.tuner.machine_lock import LOCK_FILE, only_local_run


def test_a_second_local_run_is_refused_naming_the_first(tmp_path, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = cache_dir() / LOCK_FILE
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(json.dumps({"pid": other.pid, "run_dir": "/runs/first"}))
        run_dir = tmp_path / "second"
        assert main(["--gpu-mem", "40GB", "--dataset", "synthetic", "--no-dashboard",
                     "--out", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert f"another cce-tune run is using this machine's Ray, cores and GPUs (pid " \
               f"{other.pid}, /runs/first)" in err and "--address auto" in err
        assert not (run_dir / "run.json").exists()  # nothing written for the refused run
    finally:
        other.kill()
        other.wait()


def test_a_dead_runs_lock_is_taken_over_and_released(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = cache_dir() / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"pid": gone.pid, "run_dir": "/runs/crashed"}))
    with only_local_run(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
