"""`cce-tune report` and `cce-tune estimate` need neither Ray, torch nor Triton: run in a fresh
interpreter, they must not import them (a report on a laptop, an estimate in a notebook)."""

import json
import subprocess
import sys
import time

import pytest

from tests.tuner.run_dirs import fake_sasrec_run

HEAVY = ("ray", "torch", "triton")
PROBE = f"""
import json, sys
from cce_tune.tuner.cli import main
status = main(sys.argv[1:])
print(json.dumps({{"status": status, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def run_cli(*argv: str) -> tuple[dict, float]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def test_report_imports_no_ray_torch_or_triton(tmp_path):
    run_dir = fake_sasrec_run(tmp_path / "run")
    result, seconds = run_cli("report", str(run_dir))
    assert result == {"status": 0, "heavy": []}, result
    assert (run_dir / "report" / "summary.md").is_file()
    assert (run_dir / "report" / "report.html").is_file()
    print(f"cce-tune report: {seconds:.2f} s")


@pytest.mark.parametrize("argv", [
    ("estimate", "--num-users", "138493", "--num-items", "26744", "--batch-size", "256",
     "--negatives", "4096", "--loss", "cce_minus", "--gpu-mem", "40GB"),
    ("estimate", "--model", "dlrm", "--batch-size", "2048", "--gpu-mem", "40GB"),
])
def test_estimate_imports_no_ray_torch_or_triton(argv):
    result, seconds = run_cli(*argv)
    assert result == {"status": 0, "heavy": []}, result
    print(f"cce-tune {' '.join(argv[:3])}: {seconds:.2f} s")
