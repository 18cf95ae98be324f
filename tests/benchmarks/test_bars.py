"""The bar check reads kernel results as benchmarks.kernels writes them."""

import json

from benchmarks.bars import main, sampled_bars, single_bars


def row(impl, mode, ms, peak_mb, workspace_mb, *, kind="sampled", dtype="bf16", tokens=32_768,
        negatives=512, dim=64, catalog=26_744, rounds=None):
    return {"kind": kind, "impl": impl, "mode": mode, "dtype": dtype, "tokens": tokens,
            "negatives": negatives, "dim": dim, "catalog": catalog, "ms": ms,
            "peak_mb": peak_mb, "workspace_mb": workspace_mb, "floor_ms": 0.1,
            "status": "ok", "round_ms": rounds}


ROWS = [
    row("torch", "tile", 3.0, 300.0, 290.0, rounds=[3.0, 2.0, 3.2]),
    row("ours", "tile (in-kernel)", 1.0, 40.0, 30.0, rounds=[1.0, 1.25, 0.9]),
    row("ours", "tile", 2.0, 20.0, 10.0),
    row("ours", "shared", 1.0, 20.0, 10.0),  # no PyTorch row to compare with: left out
    row("torch", "tile", 9.0, 900.0, 890.0, negatives=256),  # below the bar's N
    row("ours", "tile", 1.0, 20.0, 10.0, negatives=256),
    row("ours", "full", 3.5, 16.0, 7.0, kind="full", tokens=51_200, negatives=26_744),
]


def test_sampled_bars_pair_each_of_ours_with_pytorch_in_its_mode():
    bars = {b.mode: b for b in sampled_bars(ROWS)}
    assert set(bars) == {"tile", "tile (in-kernel)"}
    in_kernel, tile = bars["tile (in-kernel)"], bars["tile"]
    assert in_kernel.speedup == 3.0 and in_kernel.speed_met
    assert in_kernel.worst_round_speedup == 2.0 / 1.25  # round 2's turns
    assert in_kernel.peak_ratio == 7.5 and not in_kernel.memory_met
    assert in_kernel.at_most == 30.0  # 300 MB over ours' 10 MB of gradients
    assert tile.speedup == 1.5 and not tile.speed_met and tile.memory_met
    assert tile.worst_round_speedup is None  # one round: nothing to pair


def test_full_catalog_bar_and_report(tmp_path, monkeypatch, capsys):
    assert single_bars(ROWS) == [{"bar": "full catalog ('bf16', 51200, 64, 26744): <= 4.0 ms",
                                  "ms": 3.5, "peak_mb": 16.0, "workspace_mb": 7.0,
                                  "time_met": True}]
    results = tmp_path / "kernels-h100-bars.json"
    results.write_text(json.dumps({"meta": {"gpu_slug": "h100", "gpu": "NVIDIA H100 80GB HBM3",
                                                "date": "2026-11-22"}, "rows": ROWS}))
    monkeypatch.setattr("sys.argv", ["bars", str(results)])
    main()
    report = (tmp_path / "bars-h100.md").read_text()
    assert "Speed (>= 2x): met at 1 of 2" in report and "**1.5x**" in report
    assert "Measured on NVIDIA H100 80GB HBM3 (2026-11-22)." in report
    saved = json.loads((tmp_path / "bars-h100.json").read_text())["sampled"]
    assert {b["mode"]: b["speed_met"] for b in saved} == {"tile": False,
                                                          "tile (in-kernel)": True}
