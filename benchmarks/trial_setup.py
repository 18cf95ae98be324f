"""Where a tuning trial's time before its first step goes, trial after trial in one process
(as in a reused Ray actor): building the setup, the first step, a second step.

    python -m benchmarks.trial_setup --dataset synthetic-ml-20m
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cce_tune.kernels.config import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.train import Setup

TRIALS = [(512, 4096, 50, 128), (256, 8192, 100, 128), (1024, 512, 200, 64),
          (512, 16384, 100, 128), (128, 1024, 50, 128)]  # batch, negatives, max_len, hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic-ml-20m")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    data = load(DataOptions(args.dataset))
    rows = []
    for batch, negatives, length, hidden in TRIALS:
        config = TrainConfig(loss=LossConfig("cce_minus", num_negatives=negatives),
                             batch_size=batch, max_len=length, hidden=hidden, bf16=True,
                             device="cuda")
        times = {}
        started = time.perf_counter()
        setup = Setup(config, data)
        torch.cuda.synchronize()
        times["setup"] = time.perf_counter() - started
        users = torch.arange(batch, device="cuda")
        for name in ("first step", "second step"):
            mark = time.perf_counter()
            setup.step(users)
            torch.cuda.synchronize()
            times[name] = time.perf_counter() - mark
        rows.append({"batch": batch, "negatives": negatives, "max_len": length,
                     "hidden": hidden, **times})
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in rows[-1].items()), flush=True)
        del setup
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "trial-setup.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
