"""Issue 3's bars, checked against kernel benchmark results: which are met, by how much.

    python -m benchmarks.bars benchmarks/results/kernels-h100-bars.json \
        benchmarks/results/kernels-h100-bars-full.json

Reads `benchmarks.kernels` results (no GPU needed) and writes bars-<gpu>.json and .md beside
the first file. The bars, on an H100 in bf16:

- sampled CE-, every point with N >= 512 and tokens >= 32k: ours at least 2x faster and at
  least 10x less peak memory than PyTorch's `ce_minus` in the same negative mode;
- tile-shared in-kernel, 131,072 tokens, N = 4,095, d = 256, catalog 26,744, fp16: at most
  8 ms and under 100 MB;
- full-catalog CE at 51,200 tokens x 26,744 items x d = 64: at most 4 ms.

Besides the peak ratio the table shows the ratio that no implementation returning both dense
gradients can beat at that point ("at most": PyTorch's peak over those gradients) and the
ratio of workspaces (peak less the gradients).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

SPEED_BAR, MEMORY_BAR = 2.0, 10.0
HEADLINE = ("fp16", 131_072, 4_095, 256, 26_744)
HEADLINE_MS, HEADLINE_MB = 8.0, 100.0
FULL = ("bf16", 51_200, 64, 26_744)
FULL_MS = 4.0


@dataclass
class SampledBar:
    catalog: int
    dim: int
    tokens: int
    negatives: int
    mode: str
    ours_ms: float
    torch_ms: float
    speedup: float
    worst_round_speedup: float | None  # the lowest torch/ours ratio of one round's turns
    ours_peak_mb: float
    torch_peak_mb: float
    peak_ratio: float
    at_most: float  # torch's peak over the two dense gradients ours returns
    workspace_ratio: float

    @property
    def speed_met(self) -> bool:
        return self.speedup >= SPEED_BAR

    @property
    def memory_met(self) -> bool:
        return self.peak_ratio >= MEMORY_BAR


def _key(row: dict) -> tuple:
    return row["dtype"], row["tokens"], row["negatives"], row["dim"], row["catalog"]


def _reference_mode(mode: str) -> str:
    """PyTorch's mode for one of ours: in-kernel ids are a tile or per-position layout too."""
    return mode.replace(" (in-kernel)", "")


def sampled_bars(rows: list[dict]) -> list[SampledBar]:
    torch_rows = {(_key(r), r["mode"]): r for r in rows
                  if r["kind"] == "sampled" and r["impl"] == "torch" and r["status"] == "ok"}
    bars = []
    for ours in rows:
        if (ours["kind"] != "sampled" or ours["impl"] != "ours" or ours["dtype"] != "bf16"
                or ours["negatives"] < 512 or ours["tokens"] < 32_768
                or ours["status"] != "ok"):
            continue
        theirs = torch_rows.get((_key(ours), _reference_mode(ours["mode"])))
        if theirs is None:
            continue
        gradients = ours["peak_mb"] - ours["workspace_mb"]
        their_rounds, our_rounds = theirs.get("round_ms") or [], ours.get("round_ms") or []
        paired = len(their_rounds) == len(our_rounds) > 1  # taken in turns, round by round
        bars.append(SampledBar(
            catalog=ours["catalog"], dim=ours["dim"], tokens=ours["tokens"],
            negatives=ours["negatives"], mode=ours["mode"], ours_ms=ours["ms"],
            torch_ms=theirs["ms"], speedup=theirs["ms"] / ours["ms"],
            worst_round_speedup=min(t / o for t, o in zip(their_rounds, our_rounds, strict=True))
            if paired else None,
            ours_peak_mb=ours["peak_mb"], torch_peak_mb=theirs["peak_mb"],
            peak_ratio=theirs["peak_mb"] / ours["peak_mb"], at_most=theirs["peak_mb"] / gradients,
            workspace_ratio=theirs["workspace_mb"] / ours["workspace_mb"]))
    return sorted(bars, key=lambda b: (b.catalog, b.dim, b.tokens, b.negatives, b.mode))


def single_bars(rows: list[dict]) -> list[dict]:
    """The tile-shared headline and the full-catalog bar, where the results hold them."""
    found = []
    for row in rows:
        if row["impl"] != "ours" or row["status"] != "ok":
            continue
        if row["kind"] == "sampled" and _key(row) == HEADLINE and row["mode"] == "tile (in-kernel)":
            found.append({"bar": f"tile-shared in-kernel {HEADLINE}: <= {HEADLINE_MS} ms, "
                                 f"< {HEADLINE_MB} MB", "ms": row["ms"],
                          "peak_mb": row["peak_mb"], "workspace_mb": row["workspace_mb"],
                          "time_met": row["ms"] <= HEADLINE_MS,
                          "peak_met": row["peak_mb"] < HEADLINE_MB,
                          "workspace_met": row["workspace_mb"] < HEADLINE_MB})
        full_key = (row["dtype"], row["tokens"], row["dim"], row["catalog"])
        if row["kind"] == "full" and full_key == FULL:
            found.append({"bar": f"full catalog {FULL}: <= {FULL_MS} ms", "ms": row["ms"],
                          "peak_mb": row["peak_mb"], "workspace_mb": row["workspace_mb"],
                          "time_met": row["ms"] <= FULL_MS})
    return found


def _ratio(value: float, met: bool) -> str:
    text = f"{value:.1f}x"
    return text if met else f"**{text}**"


def markdown(bars: list[SampledBar], singles: list[dict], sources: list[str],
             measured: str) -> str:
    speed = sum(b.speed_met for b in bars)
    memory = sum(b.memory_met for b in bars)
    impossible = sum(b.at_most < MEMORY_BAR for b in bars)
    lines = [f"# Issue 3's bars against {', '.join(sources)}", "",
             f"Measured on {measured}.", "",
             "`python -m benchmarks.bars " + " ".join(sources) + "`. Bold: bar missed. "
             "Speed-up: PyTorch's median over ours (with several timing rounds, the medians of "
             "the rounds; worst round: the lowest ratio of one round's turns). At most: "
             "PyTorch's peak over the two bf16 gradients both return, the best ratio any "
             "implementation returning dense gradients can reach.", "",
             f"Speed (>= {SPEED_BAR:g}x): met at {speed} of {len(bars)}. Peak memory "
             f"(>= {MEMORY_BAR:g}x): met at {memory} of {len(bars)}; {impossible} of the rows "
             "cannot be met by any implementation that returns dense gradients.", "",
             "| catalog | d | tokens | N | mode | ours ms | torch ms | speed-up | worst round | "
             "ours peak MB | torch peak MB | peak ratio | at most | workspace ratio |",
             "|" + "---|" * 14]
    for b in bars:
        worst = "-" if b.worst_round_speedup is None else f"{b.worst_round_speedup:.1f}x"
        lines.append(
            f"| {b.catalog:,} | {b.dim} | {b.tokens:,} | {b.negatives:,} | {b.mode} | "
            f"{b.ours_ms:.2f} | {b.torch_ms:.2f} | {_ratio(b.speedup, b.speed_met)} | {worst} | "
            f"{b.ours_peak_mb:,.0f} | {b.torch_peak_mb:,.0f} | "
            f"{_ratio(b.peak_ratio, b.memory_met)} | {b.at_most:.1f}x | "
            f"{b.workspace_ratio:.0f}x |")
    if singles:
        lines += ["", "| bar | ms | peak MB | workspace MB | met |", "|---|---|---|---|---|"]
        for s in singles:
            verdicts = [k for k in ("time_met", "peak_met", "workspace_met") if k in s]
            met = ", ".join(f"{k.removesuffix('_met')} {'yes' if s[k] else '**no**'}"
                            for k in verdicts)
            lines.append(f"| {s['bar']} | {s['ms']:.2f} | {s['peak_mb']:.1f} | "
                         f"{s['workspace_mb']:.1f} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="benchmarks.kernels JSON files")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where bars-<gpu>.{json,md} go (default: beside the first file)")
    args = parser.parse_args()
    rows, slugs, runs = [], set(), {}
    for path in args.results:
        saved = json.loads(path.read_text())
        rows += saved["rows"]
        slugs.add(saved["meta"]["gpu_slug"])
        runs[f"{saved['meta']['gpu']} ({saved['meta']['date']})"] = None
    if len(slugs) != 1:
        raise SystemExit(f"results come from different GPUs ({sorted(slugs)}); "
                         "check one GPU's at a time")
    bars, singles = sampled_bars(rows), single_bars(rows)
    sources = [path.name for path in args.results]
    text = markdown(bars, singles, sources, ", ".join(runs))
    out_dir = args.out_dir or args.results[0].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"bars-{slugs.pop()}"
    stem.with_suffix(".json").write_text(json.dumps(
        {"sources": sources, "sampled": [asdict(b) | {"speed_met": b.speed_met,
                                                      "memory_met": b.memory_met}
                                         for b in bars],
         "single": singles}, indent=1))
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"median speed-up {statistics.median(b.speedup for b in bars):.1f}x" if bars else
          "no sampled bar points in these results")


if __name__ == "__main__":
    main()
