"""The sparse-gradient benchmark runs end to end at a tiny size (the kernels interpreted)."""

import json
import sys

from benchmarks import sparse_item_grad


def test_the_benchmark_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        "sparse_item_grad", "--catalogs", "300", "--tokens", "256", "--negatives", "32",
        "--dim", "16", "--device", "cpu", "--out-dir", str(tmp_path)])
    sparse_item_grad.main()
    rows = json.loads((tmp_path / "sparse-item-grad-cpu.json").read_text())["rows"]
    assert [(r["mode"], r["sparse"]) for r in rows] == [
        ("tile", False), ("tile", True), ("shared", False), ("shared", True)]
    assert "| 300 | shared | sparse |" in (tmp_path / "sparse-item-grad-cpu.md").read_text()
