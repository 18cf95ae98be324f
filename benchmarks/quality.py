"""Training quality of each loss variant on the same data and seeds: fused equals reference,
tile-shared negatives equal per-position ones (within seed noise).

    python -m benchmarks.quality --dataset synthetic-ml-1m --seeds 0 1 2 3 4

Besides each variant's mean and spread over seeds, the report pairs every variant with the
per-position baseline seed by seed (same initialisation, same batches): the mean of those
differences, relative to the baseline's mean, and their 95 % interval (Student's t) say
whether a gap is systematic, which the spread over seeds alone cannot. Issue 19's bar for
a tile size: an interval that holds 0, or a mean under 0.3 % relative.

Results: quality-<device>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.kernels import command_line, gpu_slug
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.train import TrainConfig, train

VARIANTS = {
    "ce_minus shared (torch)": LossConfig("ce_minus", negative_mode="shared"),
    "cce_minus shared": LossConfig("cce_minus", negative_mode="shared"),
    "ce_minus per_position (torch)": LossConfig("ce_minus", negative_mode="per_position"),
    "cce_minus per_position (in-kernel)": LossConfig(
        "cce_minus", negative_mode="per_position", in_kernel_negatives=True),
    "cce_minus tile 128 (in-kernel)": LossConfig(
        "cce_minus", negative_mode="tile", tile_size=128, in_kernel_negatives=True),
    "cce_minus tile 64 (in-kernel)": LossConfig(
        "cce_minus", negative_mode="tile", tile_size=64, in_kernel_negatives=True),
    "cce_minus tile 32 (in-kernel)": LossConfig(
        "cce_minus", negative_mode="tile", tile_size=32, in_kernel_negatives=True),
    "cce_minus tile 16 (in-kernel)": LossConfig(
        "cce_minus", negative_mode="tile", tile_size=16, in_kernel_negatives=True),
}
BASELINE = "cce_minus per_position (in-kernel)"  # what the paired differences are against


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic-ml-1m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--negatives", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--patience", type=int, default=0,
                        help="stop a run once validation has not improved for this many "
                             "epochs (0: every run trains --epochs)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--tag", default="", help="suffix of the results' file names")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    data = load(DataOptions(args.dataset))
    print(data.summary())
    results = []
    for name in args.variants:
        loss = LossConfig(**{**asdict(VARIANTS[name]), "num_negatives": args.negatives})
        for seed in args.seeds:
            config = TrainConfig(loss=loss, batch_size=args.batch_size, max_len=args.max_len,
                                 epochs=args.epochs, patience=args.patience, seed=seed,
                                 bf16=args.bf16)
            result = train(config, data)
            results.append({"variant": name, "seed": seed, "test_ndcg10": result.test.ndcg10,
                            "test_hr10": result.test.hr10,
                            "epoch_s": statistics.median(e.seconds for e in result.epochs),
                            "peak_mb": (result.epochs[-1].peak_memory_bytes or 0) / 2**20})
            print(results[-1], flush=True)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    slug = "-".join(filter(None, [gpu_slug() if torch.cuda.is_available() else "cpu",
                                  args.tag]))
    command = command_line("benchmarks.quality", args, omit=("out_dir",))
    lines = [f"# Training quality by loss variant on {device} ({time.strftime('%Y-%m-%d')})", "",
             f"`{command}`: {data.summary()}; test NDCG@10 over seeds {args.seeds}.", "",
             f"| variant | mean NDCG@10 | std | per seed | minus {BASELINE}, paired: mean "
             "(std) | relative mean [95 % interval] | epoch s | peak MB |",
             "|---|---|---|---|---|---|---|---|"]
    baseline = {r["seed"]: r["test_ndcg10"] for r in results if r["variant"] == BASELINE}
    for name in args.variants:
        mine = [r for r in results if r["variant"] == name]
        scores = [r["test_ndcg10"] for r in mine]
        lines.append(f"| {name} | {statistics.mean(scores):.4f} | {_spread(scores):.4f} | "
                     f"{', '.join(f'{s:.4f}' for s in scores)} | {_paired(mine, baseline)} | "
                     f"{_relative(mine, baseline)} | "
                     f"{statistics.median(r['epoch_s'] for r in mine):.2f} | "
                     f"{statistics.median(r['peak_mb'] for r in mine):.0f} |")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"quality-{slug}.json").write_text(json.dumps(results, indent=1))
    (args.out_dir / f"quality-{slug}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _differences(runs: list[dict], baseline: dict[int, float]) -> list[float]:
    """This variant's NDCG@10 less the baseline's, seed by seed."""
    return [r["test_ndcg10"] - baseline[r["seed"]] for r in runs if r["seed"] in baseline]


def _paired(runs: list[dict], baseline: dict[int, float]) -> str:
    """Mean (std) of the paired differences."""
    differences = _differences(runs, baseline)
    if not differences:
        return "-"
    return f"{statistics.mean(differences):+.4f} ({_spread(differences):.4f})"


def _relative(runs: list[dict], baseline: dict[int, float]) -> str:
    """The paired differences' mean and 95 % interval, in % of the baseline's mean."""
    differences = _differences(runs, baseline)
    if len(differences) < 2:
        return "-"
    scale = 100 / statistics.mean(baseline.values())
    mean = statistics.mean(differences)
    t = T_975.get(len(differences) - 1, T_975[10])  # past 10: slightly wide, never narrow
    half = t * _spread(differences) / len(differences) ** 0.5
    return f"{mean * scale:+.2f} % [{(mean - half) * scale:+.2f}, {(mean + half) * scale:+.2f}]"


# Student's t, 97.5th percentile, by degrees of freedom (a 95 % two-sided interval).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


if __name__ == "__main__":
    main()
