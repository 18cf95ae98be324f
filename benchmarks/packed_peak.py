"""Does the memory model hold for packed batches of real sequence lengths? Each setting is
estimated from the dataset's lengths (`DatasetShape.of`: the packed token cap) and then
trained for an epoch, eager and replayed from CUDA graphs; the epoch's peak is set beside
the estimate, with the largest batch the epoch built.

    python -m benchmarks.packed_peak --out-dir benchmarks/results

`verify-memory --grid packed` checks the model's terms at full windows (B x L tokens); this
checks the cap that sizes a batch of real users, which is what a tuning trial runs, and
the training step's peak apart from validation's (which at some settings is the larger).
Each setting runs in a process of its own. Writes packed-peak-<gpu>.json and .md under
--out-dir.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from benchmarks.kernels import command_line
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.memory import DatasetShape, estimate
from cce_tune.tuner.memory_verify import gpu_slug
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.graphed_steps import GraphedSteps
from cce_tune.tuner.sequences.train import Setup
from cce_tune.tuner.units import format_bytes

TILE = LossConfig("cce_minus", num_negatives=511, negative_mode="tile", tile_size=128,
                  in_kernel_negatives=True)
SETTINGS = {  # issue 18's two settings, and a small batch, where the cap is loosest
    "paper (B 256, L 512, d 256)": TrainConfig(loss=TILE, batch_size=256, max_len=512,
                                               hidden=256, num_heads=2),
    "corner (B 1024, L 200, d 64)": TrainConfig(loss=TILE, batch_size=1024, max_len=200),
    "small (B 64, L 200, d 128)": TrainConfig(loss=TILE, batch_size=64, max_len=200,
                                              hidden=128, num_heads=2),
    "large (B 1024, L 512, d 256)": TrainConfig(loss=TILE, batch_size=1024, max_len=512,
                                                hidden=256, num_heads=2),
}
TRAINING = ("forward", "backward", "optimizer step")


def measure(name: str, config: TrainConfig, dataset: str) -> dict:
    """An epoch of the trainer's own packed batches (capped as it caps them), eager or
    replayed from graphs, then validation: each one's peak beside the estimate's."""
    data = load(DataOptions(dataset))
    shape = DatasetShape.of(data)
    breakdown = estimate(config, shape)
    setup = Setup(config, data)
    runner = GraphedSteps(setup) if config.cuda_graphs else setup
    batches = epoch_batches(setup.lengths, config.batch_size, np.random.default_rng(0),
                            "packed", config.max_len, setup.device, setup.loss_tokens,
                            setup.token_cap)
    setup.model.train()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for batch in batches:
        runner.step(batch.users, batch.width, batch.weight)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    training = torch.cuda.max_memory_allocated()
    runner.evaluate("valid", data)
    torch.cuda.synchronize()
    overall = torch.cuda.max_memory_allocated()
    estimated_training = max(breakdown.phases[phase] for phase in TRAINING)
    return {"setting": name, "graphs": config.cuda_graphs, "dataset": data.name,
            "estimate_tokens": shape.packed_tokens(config.batch_size, config.max_len),
            "widest_batch_tokens": max(batch.width for batch in batches),
            "full_windows": config.batch_size * config.max_len,
            "split_batches": len(batches) - -(-int((setup.lengths > 0).sum())
                                                // config.batch_size),
            "estimate_training": estimated_training, "measured_training": training,
            "training_error": estimated_training / training - 1,
            "estimate_allocated": breakdown.peak_allocated, "estimate_phase": breakdown.phase,
            "measured_allocated": overall, "error": breakdown.peak_allocated / overall - 1,
            "epoch_seconds": seconds}


def markdown(rows: list[dict], gpu: str, command: str) -> str:
    lines = [f"# Packed batches of real lengths: estimate against an epoch's peak, {gpu}", "",
             f"Command: `{command}`; {time.strftime('%Y-%m-%d')}, torch {torch.__version__}.",
             "", "Tokens: the estimate's packed batch (the cap, rounded), the widest batch of "
             "an epoch (seed 0, rounded; batches split at the cap) and the full windows "
             "B x L. Measured: `max_memory_allocated` over the epoch's training, then with "
             "its validation.", "",
             "| setting | graphs | dataset | tokens: estimate | widest | full windows | split | "
             "training: estimate | measured | error | with validation: estimate | measured | "
             "error | epoch s |", "|" + "---|" * 14]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {'yes' if row['graphs'] else 'no'} | {row['dataset']} | "
            f"{row['estimate_tokens']:,} | {row['widest_batch_tokens']:,} | "
            f"{row['full_windows']:,} | {row['split_batches']} | "
            f"{format_bytes(row['estimate_training'])} | "
            f"{format_bytes(row['measured_training'])} | {row['training_error']:+.1%} | "
            f"{format_bytes(row['estimate_allocated'])} | "
            f"{format_bytes(row['measured_allocated'])} | {row['error']:+.1%} | "
            f"{row['epoch_seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic-ml-20m"])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    gpu = torch.cuda.get_device_name(0)
    rows = []
    for dataset, (name, setting), graphs in itertools.product(
            args.datasets, SETTINGS.items(), (False, True)):
        config = replace(setting, batches="packed", bf16=True, device="cuda",
                         cuda_graphs=graphs)
        # A process of its own: nothing of another setting (a stream's cuBLAS workspace, a
        # graph's pool) stays allocated beside it, as in a trial of its own.
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            rows.append(pool.submit(measure, name, config, dataset).result())
        print(json.dumps(rows[-1]), flush=True)
    stem = args.out_dir / f"packed-peak-{gpu_slug(gpu)}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"gpu": gpu, "rows": rows}, indent=1) + "\n")
    text = markdown(rows, gpu, command_line("benchmarks.packed_peak", args))
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
