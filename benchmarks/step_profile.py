"""Where a whole SASRec (or BERT4Rec) training step's time goes: the profile issue 18 asks for
before the step is made faster.

    python -m benchmarks.step_profile --bf16 --out-dir benchmarks/results

At the paper's MovieLens-20M setting by default (synthetic-ml-20m; 2 blocks, 2 heads, d 256,
length 512, batch 256, 511 negatives, cce_minus with tile-shared in-kernel negatives), after
warm-up steps, `--steps` optimizer steps are profiled with torch.profiler. Each step runs in
named phases (forward and loss, which builds the batch's windows and negatives too;
backward; optimizer), and every device kernel is put in a part by its name (attention, matrix
products: the projections and the feed-forward, norms / dropout / element-wise, the loss's
kernels, embedding gathers and scatters, the optimizer, other). Host gaps are the wall time
the device was idle. Model FLOPs per step (`tuner.sequences.flops`) over the wall time give
the achieved TFLOP/s. Results: step-profile-<gpu>[-tag].json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.kernels import command_line, gpu_slug
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.batching import Batch, epoch_batches
from cce_tune.tuner.sequences.config import ORDERS, ClozeConfig, TrainConfig
from cce_tune.tuner.sequences.train import Setup, train

PHASES = ("forward and loss", "backward", "optimizer")
# A kernel's part, by the first of these patterns its lower-cased name holds (in this order:
# "multi_tensor_apply" holds "mul", the loss's Triton kernels are all "cce_..._kernel",
# "..._rows_kernel" or "draw_negatives_kernel", the embedding's backward is "sum_and_scatter",
# cuBLAS's Hopper GEMMs are "nvjet_...").
PARTS = (
    ("attention", ("attention", "fmha", "flash")),
    ("loss", ("cce_", "rows_kernel", "draw_negatives", "log_softmax", "nll", "cross_entropy")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("gathers and scatters", ("index", "gather", "scatter", "embedding", "sort", "unique")),
    ("matrix products", ("gemm", "cutlass", "xmma", "matmul", "addmm", "linear", "nvjet")),
    ("norms, dropout, element-wise", ("norm", "dropout", "elementwise", "vectorized",
                                      "gelu", "relu", "where", "add", "mul", "copy",
                                      "reduce")),
)


def part_of(kernel: str) -> str:
    """The part of the step a device kernel of this name belongs to."""
    name = kernel.lower()
    return next((part for part, patterns in PARTS if any(p in name for p in patterns)),
                "other")


def profiled_step(setup: Setup, batch: Batch, marks: list[torch.cuda.Event] | None) -> None:
    """One optimizer step, its phases named for the profiler and (on a GPU) bounded by
    device events: a phase's device time is the span between its marks."""

    def mark() -> None:
        if marks is not None:
            marks.append(torch.cuda.Event(enable_timing=True))
            marks[-1].record()

    mark()
    setup.optimizer.zero_grad(set_to_none=True)
    with record_function(PHASES[0]), setup.autocast:
        loss = setup.batches.loss(setup.model, setup.loss_fn, batch.users,
                                  batch.width) * batch.weight
    mark()
    with record_function(PHASES[1]):
        loss.backward()
    mark()
    with record_function(PHASES[2]):
        setup.optimizer.step()
    mark()


def profile_steps(setup: Setup, batches: list[Batch]) -> dict:
    """Wall ms per step, and device ms per step by phase and by part."""
    cuda = setup.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    marks: list[torch.cuda.Event] | None = [] if cuda else None
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        for batch in batches:
            profiled_step(setup, batch, marks)
        if cuda:
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - started) * 1e3 / len(batches)
    steps = len(batches)
    phases = {phase: {"host_ms": 0.0, "device_ms": math.nan} for phase in PHASES}
    for event in prof.key_averages():
        if event.key in PHASES and event.cpu_time_total > 0:
            phases[event.key]["host_ms"] = event.cpu_time_total / 1e3 / steps
    if marks:
        for i, phase in enumerate(PHASES):
            spans = [marks[4 * s + i].elapsed_time(marks[4 * s + i + 1]) for s in range(steps)]
            phases[phase]["device_ms"] = sum(spans) / steps
    parts, kernels = defaultdict(float), defaultdict(float)
    for event in prof.events():
        # The phases' own ranges appear on the device timeline too: they are not kernels.
        if cuda and event.device_type == torch.autograd.DeviceType.CUDA \
                and event.name not in PHASES:
            ms = event.time_range.elapsed_us() / 1e3 / steps
            parts[part_of(event.name)] += ms
            kernels[event.name] += ms
    device_ms = sum(parts.values())
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:12]
    return {"wall_ms": wall_ms, "device_ms": device_ms,
            "host_gap_ms": max(wall_ms - device_ms, 0.0) if cuda else math.nan,
            "phases": phases, "parts": dict(parts),
            "padding": padding_share(setup, batches),
            "top_kernels": [{"name": name[:120], "ms": ms} for name, ms in top]}


def padding_share(setup: Setup, batches: list[Batch]) -> float:
    """Of the positions the profiled steps computed, the share that held no item."""
    computed = sum(b.positions for b in batches)
    real = sum(int(setup.lengths[b.users.cpu().numpy()].sum()) for b in batches)
    return 1 - real / computed


def epoch_figures(config: TrainConfig, data) -> dict:
    """What `cce-tune train` reports for the second epoch (the first compiles kernels)."""
    if torch.cuda.is_available():  # the profiled steps' cache and peaks are not the epoch's
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = train(replace(config, epochs=2, patience=0), data, final_test=False)
    epoch = result.epochs[-1]
    # What the process held at most (the allocator's reserve): where graphs keep a pool of
    # their own, this is what would show it.
    reserved = torch.cuda.max_memory_reserved() if torch.cuda.is_available() else math.nan
    return {"epoch_s": epoch.seconds, "tokens_per_s": epoch.tokens_per_s,
            "epoch_tflops": epoch.tflops, "eval_s": epoch.eval_seconds,
            "ndcg10": epoch.valid.ndcg10, "peak_bytes": epoch.peak_memory_bytes or math.nan,
            "reserved_bytes": reserved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic-ml-20m")
    parser.add_argument("--model", choices=("sasrec", "bert4rec"), default="sasrec")
    parser.add_argument("--loss", default="cce_minus")
    parser.add_argument("--negative-mode", default="tile")
    parser.add_argument("--tile-size", type=int, default=128, help="as the committed profiles")
    parser.add_argument("--negative-ids", choices=("in-kernel", "explicit"),
                        default="in-kernel", help="cce_minus's negatives: drawn in the kernel "
                                                  "or passed as ids")
    parser.add_argument("--negatives", type=int, default=511)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="the epoch's steps replayed from CUDA graphs (the profiled steps "
                             "run eagerly)")
    parser.add_argument("--batches", choices=ORDERS, default="length",
                        help="which users share a batch (default: grouped by length, as "
                             "`train` does without --bf16)")
    parser.add_argument("--epoch", action="store_true",
                        help="also train two epochs and report the second, as `train` does")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tag", default="")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()

    data = load(DataOptions(args.dataset))
    loss = LossConfig(args.loss, num_negatives=args.negatives, negative_mode=args.negative_mode,
                      tile_size=args.tile_size, in_kernel_negatives=args.negative_ids == "in-kernel"
                      and args.loss == "cce_minus")
    kind = ClozeConfig if args.model == "bert4rec" else TrainConfig
    config = kind(loss=loss, batch_size=args.batch_size, max_len=args.max_len,
                  hidden=args.hidden, num_blocks=args.blocks, num_heads=args.heads,
                  bf16=args.bf16, batches=args.batches, compile=args.compile,
                  device=args.device)
    # The profile's steps run eagerly (a replayed graph is one opaque launch to the profiler);
    # the epoch of --epoch trains as configured.
    epoch_config = replace(config, cuda_graphs=args.cuda_graphs)
    setup = Setup(config, data)
    # The batches an epoch trains on, full ones only (the last of an epoch may be short).
    batches = [batch for batch in epoch_batches(
        setup.lengths, config.batch_size, np.random.default_rng(0), config.batches,
        config.max_len, setup.device, setup.loss_tokens, setup.token_cap)
        if len(batch.users) == config.batch_size]
    setup.model.train()
    for batch in batches[:args.warmup]:
        setup.step(batch.users, batch.width)
    timed = [batches[(args.warmup + i) % len(batches)] for i in range(args.steps)]
    result = profile_steps(setup, timed)
    steps_per_epoch = math.ceil(data.num_users / config.batch_size)
    flops_per_step = setup.batches.flops_per_epoch / steps_per_epoch
    result |= {"tflops": flops_per_step / (result["wall_ms"] / 1e3) / 1e12,
               "epoch_s_estimate": result["wall_ms"] / 1e3 * steps_per_epoch,
               "flops_per_step": flops_per_step}
    cuda = setup.device.type == "cuda"
    del setup  # its memory, before the epoch's own
    if args.epoch:
        result["epoch"] = epoch_figures(epoch_config, data)
        result["cuda_graphs"] = args.cuda_graphs
    device = torch.cuda.get_device_name() if cuda else "cpu"
    command = command_line("benchmarks.step_profile", args)
    text = markdown(result, command, device)
    print(text)
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        slug = gpu_slug() if cuda else "cpu"
        stem = args.out_dir / "-".join(filter(None, ["step-profile", slug, args.tag]))
        stem.with_suffix(".json").write_text(json.dumps(
            {"command": command, "device": device, "torch": torch.__version__, **result},
            indent=1))
        stem.with_suffix(".md").write_text(text)


def markdown(result: dict, command: str, device: str) -> str:
    lines = [f"# One training step, profiled: {device}", "", f"    {command}", "",
             f"Wall {result['wall_ms']:.2f} ms a step (an epoch about "
             f"{result['epoch_s_estimate']:.1f} s), device kernels {result['device_ms']:.2f} ms,"
             f" host gaps {result['host_gap_ms']:.2f} ms; {result['tflops']:.2f} TFLOP/s of "
             "model FLOPs (`tuner/sequences/flops.py`) over the wall time; "
             f"{result['padding']:.0%} of the computed positions were padding.", ""]
    if "epoch" in result:
        epoch = result["epoch"]
        graphs = " with its steps replayed from CUDA graphs" if result.get("cuda_graphs") else ""
        lines += [f"A whole epoch as `cce-tune train` reports it{graphs} (the second; the "
                  f"first compiles): {epoch['epoch_s']:.2f} s training, "
                  f"{epoch['tokens_per_s'] / 1e6:.2f} M real tokens/s, "
                  f"{epoch['epoch_tflops']:.1f} TFLOP/s, evaluation {epoch['eval_s']:.2f} s, "
                  f"peak {epoch['peak_bytes'] / 2**30:.2f} GiB (reserved at most "
                  f"{epoch.get('reserved_bytes', math.nan) / 2**30:.2f} GiB), "
                  f"validation NDCG@10 {epoch['ndcg10']:.4f}.", ""]
    lines += ["| phase | host ms | device ms |", "|---|---|---|"]
    for phase in PHASES:
        figures = result["phases"].get(phase, {"host_ms": math.nan, "device_ms": math.nan})
        lines.append(f"| {phase} | {figures['host_ms']:.2f} | {figures['device_ms']:.2f} |")
    lines += ["", "| part (by kernel name) | device ms | share |", "|---|---|---|"]
    total = result["device_ms"] or math.nan
    for part, ms in sorted(result["parts"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {part} | {ms:.3f} | {ms / total:.0%} |")
    lines += ["", "| kernel | device ms |", "|---|---|"]
    lines += [f"| `{k['name']}` | {k['ms']:.3f} |" for k in result["top_kernels"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
