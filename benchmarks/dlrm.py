"""DLRM's single-device benchmark from the paper (Naumov et al., 2019, section 6), on the GPU.

    python -m benchmarks.dlrm

8 tables of 1,000,000 x 64, 512 dense features, bottom MLP 512-512-64, top MLP
1024-1024-1024-1, dot interaction, 100 ids per lookup (the reference's
`bench/dlrm_s_benchmark.sh`), minibatch 1,024, one pass over 2,048K random samples, fp32,
SGD. The paper reports 62 s on one V100. Training time is timed on a pool of batches
generated on the GPU beforehand and cycled; generating a batch is timed apart. Peak memory
(one batch on the device) is set beside the estimate. With the tables updated inside the
backward the step is replayed from a CUDA graph (`--step eager` launches it kernel by kernel).
Results: dlrm-<gpu>-<table update>-<step>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.kernels import gpu_slug
from cce_tune.models.dlrm import DLRM
from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.tuner.clicks.batches import ClickGenerator, ClickSpec
from cce_tune.tuner.clicks.captured_step import CapturedStep
from cce_tune.tuner.clicks.memory import estimate_dlrm
from cce_tune.tuner.clicks.train import training_step
from cce_tune.tuner.units import GB

PAPER_SECONDS = {"V100": 62.0, "CPU": 256.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_048_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--pool", type=int, default=16, help="pre-generated batches, cycled")
    parser.add_argument("--table-update", choices=("fused", "sparse"), default="fused",
                        help="SGD inside the backward, or sparse gradients and torch's SGD")
    parser.add_argument("--step", choices=("graph", "eager"),
                        help="replay the step from a CUDA graph (the default with the fused "
                             "table update), or launch its kernels one by one (the default, "
                             "and the only way, with sparse gradients)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where 20 steps spend GPU time (torch.profiler)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    device = torch.device("cuda")
    config = DLRMConfig(table_sizes=(1_000_000,) * 8, bottom=(512, 512, 64),
                        top=(1024, 1024, 1024, 1), embedding_dim=64, interaction="dot")
    lookups = 100
    torch.manual_seed(0)
    model = DLRM(config).to(device)
    if args.table_update == "fused":
        model.fuse_table_sgd(0.01)
        optimizers = [torch.optim.SGD(model.dense_parameters(), lr=0.01)]
    else:
        optimizers = [torch.optim.SGD(model.sparse_parameters(), lr=0.01),
                      torch.optim.SGD(model.dense_parameters(), lr=0.01)]
    spec = ClickSpec(config.table_sizes, dense_features=512, lookups=lookups)
    generator = ClickGenerator(spec, planted=False, seed=0, device=device)

    eager_step = training_step(model, optimizers)
    args.step = args.step or ("graph" if args.table_update == "fused" else "eager")
    if args.step == "graph" and args.table_update != "fused":
        parser.error("--step graph needs --table-update fused (sparse gradients cannot be "
                     "captured)")
    step = CapturedStep(eager_step) if args.step == "graph" else eager_step

    one = generator.batch(args.batch_size)
    torch.cuda.synchronize()
    # From the first step: a graph's replays allocate nothing, its capture holds the peak.
    torch.cuda.reset_peak_memory_stats()
    for _ in range(15):
        step(one)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    # The benchmark's only stream is the graph's: one set of workspaces, as when eager.
    estimate = estimate_dlrm(config, args.batch_size, lookups)

    torch.cuda.synchronize()
    started = time.perf_counter()
    generated = [generator.batch(args.batch_size) for _ in range(args.pool)]
    torch.cuda.synchronize()
    generate_ms = (time.perf_counter() - started) / args.pool * 1e3
    steps = args.samples // args.batch_size
    torch.cuda.synchronize()
    started = time.perf_counter()
    for index in range(steps):
        loss = step(generated[index % args.pool])
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if args.profile:  # after the timing: the profiler's hooks slow what follows it
        print_profile(lambda index: step(generated[index % args.pool]))
    result = {
        "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
        "samples": steps * args.batch_size, "batch_size": args.batch_size, "steps": steps,
        "seconds": seconds, "ms_per_step": seconds / steps * 1e3,
        "generate_ms_per_batch": generate_ms, "final_loss": float(loss),
        "peak_allocated_bytes": peak, "estimate_bytes": estimate.peak_allocated,
        "estimate_error": estimate.peak_allocated / peak - 1,
        "paper_seconds": PAPER_SECONDS, "bar_seconds": 6.2,
        "speedup_vs_v100": PAPER_SECONDS["V100"] / seconds,
        "table_update": args.table_update, "step": args.step,
        "command": f"python -m benchmarks.dlrm --table-update {args.table_update} "
                   f"--step {args.step}",
    }
    table = (
        "| samples | batch | seconds | ms/step | speed-up vs paper V100 | bar | peak GB | "
        "estimate GB | error |\n|---|---|---|---|---|---|---|---|---|\n"
        f"| {result['samples']:,} | {args.batch_size} | {seconds:.2f} | "
        f"{result['ms_per_step']:.2f} | {result['speedup_vs_v100']:.1f}x | <= 6.2 s | "
        f"{peak / GB:.3f} | {estimate.peak_allocated / GB:.3f} | "
        f"{result['estimate_error']:+.1%} |")
    print(table)
    print(f"generating a batch on the GPU: {generate_ms:.2f} ms (not in the time above)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"dlrm-{gpu_slug()}-{args.table_update}-{args.step}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(
        f"# DLRM paper benchmark on {result['gpu']}\n\nCommand: `{result['command']}` "
        f"(torch {result['torch']})\n\n{table}\n\nGenerating a batch on the GPU: "
        f"{generate_ms:.2f} ms, not in the time. The paper: 62 s on one V100, 256 s on a "
        "CPU socket.\n")


def print_profile(step, steps: int = 20) -> None:
    """The kernels of `steps` steps by GPU time, and the CPU's time per step beside it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for index in range(steps):
            step(index)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18))


if __name__ == "__main__":
    main()
