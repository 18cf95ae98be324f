"""The multi-GPU DLRM benchmark runs end to end on CPUs (gloo) and says what each rank held."""

import json

from benchmarks.dlrm_hybrid import main


def test_two_cpu_ranks_write_their_figures(tmp_path):
    main(["--world", "2", "--device", "cpu", "--small", "--samples", "2048", "--pool", "2",
          "--out-dir", str(tmp_path)])
    result = json.loads((tmp_path / "dlrm-hybrid-cpu-2.json").read_text())
    assert result["steps"] == 2 and result["seconds"] > 0
    assert sorted(t for rank in result["ranks"] for t in rank["tables"]) == [0, 1, 2, 3]
    assert all(rank["estimate_bytes"] > 0 for rank in result["ranks"])
    assert "| 1 |" in (tmp_path / "dlrm-hybrid-cpu-2.md").read_text()
