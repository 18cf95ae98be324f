"""How many configurations per second the memory model estimates, on the CPU.

    python -m benchmarks.memory_model --configs 20000

The search estimates every proposal; the bar is 10,000 per second. Results:
memory-estimator-<host>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

from cce_tune.kernels.config import LOSSES, LossConfig
from cce_tune.tuner.memory import DatasetShape, estimate
from cce_tune.tuner.sequences.config import TrainConfig


def configurations(count: int, seed: int) -> list[tuple[TrainConfig, DatasetShape]]:
    """Random points over the knobs a search moves, on MovieLens-20M and a 1M catalog."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        loss = LossConfig(rng.choice(LOSSES), num_negatives=1, negative_mode="shared")
        if loss.name in ("ce_minus", "cce_minus", "gbce"):
            loss = LossConfig(loss.name, num_negatives=2 ** rng.randint(6, 14),
                              negative_mode=rng.choice(("shared", "tile", "per_position")))
        config = TrainConfig(loss=loss, batch_size=2 ** rng.randint(5, 11),
                             max_len=rng.choice((50, 100, 200, 400)),
                             hidden=rng.choice((64, 128, 256)), bf16=rng.random() < 0.5)
        out.append((config, DatasetShape(138_493, rng.choice((26_744, 1_000_000)))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    points = configurations(args.configs, seed=0)
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for config, shape in points:
            estimate(config, shape)
        rates.append(len(points) / (time.perf_counter() - started))
    host = platform.node() or "cpu"
    result = {"configs": args.configs, "repeats": args.repeats,
              "median_per_s": statistics.median(rates), "min_per_s": min(rates),
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "python": platform.python_version(),
              "command": f"python -m benchmarks.memory_model --configs {args.configs}"}
    table = (f"| configs | repeats | median / s | slowest / s | bar |\n|---|---|---|---|---|\n"
             f"| {args.configs:,} | {args.repeats} | {result['median_per_s']:,.0f} | "
             f"{result['min_per_s']:,.0f} | 10,000 / s |")
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"memory-estimator-{host}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(
        f"# Memory-model throughput ({result['cores']} cores, Python {result['python']})\n\n"
        f"Command: `{result['command']}`\n\n{table}\n")


if __name__ == "__main__":
    main()
