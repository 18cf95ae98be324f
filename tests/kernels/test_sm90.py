"""Every fused kernel compiles for sm_90 as the library launches it, on the CPU
(tests.kernels.sm90): the interpreter runs code that the compiler refuses, so the CPU tests
alone let such a kernel through to the GPU."""

import os
import subprocess
import sys
from pathlib import Path

KERNELS = {"cce_minus_forward_kernel", "cce_minus_backward_hidden_kernel",
           "cce_minus_backward_items_kernel", "draw_negatives_kernel", "count_kernel",
           "place_kernel", "items_kernel", "claim_rows_kernel", "expand_rows_kernel",
           "catalog_lse_kernel", "directions_backward_kernel"}


def test_every_kernel_compiles_for_sm90_as_launched(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # Triton 3.9 warns otherwise; 1 is its default
    result = subprocess.run([sys.executable, "-m", "tests.kernels.sm90"], env=env,
                            cwd=Path(__file__).parents[2], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    compiled = [line.split(" | ") for line in result.stdout.splitlines()]
    assert {name for _loss, name, _registers in compiled} == KERNELS
    assert all("registers" in registers for *_names, registers in compiled), result.stdout
