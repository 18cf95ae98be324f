"""What a training step and an evaluation pass hold at their peaks, allocation by allocation.

    python -m benchmarks.step_memory --out-dir benchmarks/results

`verify-memory` says by how much the memory model misses a point; this says why. For each
point it runs the trainer's own step (`tuner.memory_verify.measure`'s sequence: a warm-up
step, then forward, backward, optimizer step and evaluation) with the caching allocator's
history on, and lists the allocations alive when each phase peaked, largest first, each with
the line of our code that made it. Results: step-memory-<gpu>.json (every allocation above
`--min-mb`) and .md (the phases' peaks against the model's).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import torch

from cce_tune.tuner.memory_grid import GRIDS, GridPoint
from cce_tune.tuner.memory_verify import estimate_row, gpu_slug, random_sequences, step_width
from cce_tune.tuner.sequences.train import Setup
from cce_tune.tuner.units import format_bytes

# The points whose phases the model missed most on the H200 (issue 20's grid), one per
# distinct cause: the backward of fused and reference losses in float32 and bf16, the
# compacted item gradient over 1M items, the per-position kernels, the tile and gbce
# references' forward, and evaluation over 1M items under autocast.
POINTS = [
    GridPoint("cce", 256, 256, 400, 256, 26_744, False),
    GridPoint("ce_minus", 256, 256, 400, 256, 26_744, False),
    GridPoint("cce_minus", 1024, 4096, 200, 256, 1_000_000, True),
    GridPoint("cce_minus", 256, 512, 400, 64, 1_000_000, False, "tile"),
    GridPoint("cce_minus", 256, 511, 512, 256, 26_744, True, "per_position"),
    GridPoint("cce_minus", 512, 2048, 200, 64, 26_744, False, "per_position", True),
    GridPoint("ce_minus", 256, 4096, 200, 128, 26_744, True, "tile"),
    GridPoint("gbce", 512, 8192, 100, 256, 26_744, False),
    GridPoint("cce_minus", 256, 512, 200, 64, 1_000_000, True),
]
# The packed step (`--packed`): the paper's setting, a small-d corner and a reference loss.
PACKED = [
    GridPoint("cce_minus", 256, 511, 512, 256, 26_744, True, "tile", True, batches="packed"),
    GridPoint("cce_minus", 1024, 512, 200, 64, 26_744, True, "tile", True, batches="packed"),
    GridPoint("ce_minus", 256, 256, 400, 256, 26_744, True, batches="packed"),
]
PHASES = ("forward", "backward", "optimizer step", "evaluation")
ROOT = Path(__file__).resolve().parents[1]
OURS = tuple(str(ROOT / package) + "/" for package in ("models", "kernels", "tuner"))


def origin(frames: list[dict]) -> str:
    """The innermost frame in our code: the line that asked for the bytes. Paths are
    resolved: on the device machine the packages are links (run_gpu.sh's cce_namespace)."""
    for frame in frames:
        path = os.path.realpath(frame["filename"])
        if path.startswith(OURS):
            return f"{Path(path).relative_to(ROOT)}:{frame['line']} {frame['name']}"
    return "?"


def allocated_blocks(snapshot: dict) -> dict[int, tuple[int, str]]:
    """Every block allocated when `snapshot` was taken, by address: what a phase starts
    with, so that frees of tensors made before tracing are counted too."""
    return {block["address"]: (block["size"], "before the phase")
            for segment in snapshot["segments"] for block in segment["blocks"]
            if block["state"] == "active_allocated"}


def alive_at_peak(events: list[dict], base: dict[int, tuple[int, str]],
                  min_bytes: int) -> tuple[int, list[tuple[int, str]]]:
    """Bytes alive at the traced peak and the allocations of at least `min_bytes` then;
    `base` holds the blocks alive before tracing started."""
    alive = dict(base)
    total = peak = sum(size for size, _ in base.values())
    at_peak = list(alive.values())
    for event in events:
        action, addr, size = event.get("action"), event.get("addr"), event.get("size", 0)
        if action == "alloc":
            alive[addr] = (size, origin(event.get("frames", [])))
            total += size
            if total > peak:
                peak, at_peak = total, list(alive.values())
        elif action == "free_completed" and addr in alive:
            total -= alive.pop(addr)[0]
    return peak, sorted((item for item in at_peak if item[0] >= min_bytes), reverse=True)


def trace(point: GridPoint, min_bytes: int) -> dict:
    config = point.config()
    data = random_sequences(point.shape(), point.max_len)
    setup = Setup(config, data)
    batch = torch.arange(point.batch_size, device=setup.device)
    width = step_width(point)
    setup.model.train()
    setup.step(batch, width)
    torch.cuda.synchronize()
    phases = {}

    def traced(name: str, action):
        torch.cuda.synchronize()
        torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
        start = allocated_blocks(torch.cuda.memory._snapshot())
        result = action()
        torch.cuda.synchronize()
        events = torch.cuda.memory._snapshot()["device_traces"][0]
        torch.cuda.memory._record_memory_history(enabled=None)
        peak, alive = alive_at_peak(events, start, min_bytes)
        phases[name] = {"peak": peak, "alive": alive}
        return result

    loss = traced("forward", lambda: setup.forward(batch, width))
    traced("backward", loss.backward)
    del loss
    traced("optimizer step", setup.optimizer.step)
    setup.optimizer.zero_grad(set_to_none=True)
    traced("evaluation", lambda: setup.evaluate("valid", data))
    row = estimate_row(point)
    return {"point": row, "phases": phases}


def markdown(results: list[dict], gpu: str, command: str) -> str:
    lines = [f"# Step memory at each phase's peak: {gpu}", "",
             f"Command: `{command}`; {time.strftime('%Y-%m-%d')}, torch {torch.__version__}.",
             "", "Estimate against the traced peak per phase, and the largest allocations "
             "alive at the peak (the line that made them; counts of equal ones).", ""]
    for result in results:
        point = result["point"]
        lines.append(f"## {point['group']}, {'bf16' if point['bf16'] else 'fp32'}: B "
                     f"{point['batch_size']}, N {point['negatives']}, L {point['max_len']}, "
                     f"d {point['hidden']}, catalog {point['num_items']:,}")
        lines.append("")
        for phase in PHASES:
            traced = result["phases"][phase]
            estimate = point[f"estimate_{phase.replace(' ', '_')}"]
            lines.append(f"- **{phase}**: estimate {format_bytes(estimate)}, traced "
                         f"{format_bytes(traced['peak'])} "
                         f"({estimate / traced['peak'] - 1:+.1%})")
            counts = Counter((size, where) for size, where in traced["alive"])
            for (size, where), count in sorted(counts.items(), reverse=True)[:14]:
                lines.append(f"  - {count} x {format_bytes(size)}: {where}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--min-mb", type=float, default=1.0,
                        help="list allocations of at least this many MB")
    points = parser.add_mutually_exclusive_group()
    points.add_argument("--packed", action="store_true",
                        help="trace packed steps (--batches packed, bf16) instead")
    points.add_argument("--grid", choices=tuple(GRIDS),
                        help="trace this verify-memory grid's points instead (--bf16: its "
                             "bf16 ones)")
    parser.add_argument("--bf16", action="store_true", help="with --grid, its bf16 points")
    args = parser.parse_args()
    if args.bf16 and not args.grid:
        parser.error("--bf16 selects a --grid's points: give --grid too")
    gpu = torch.cuda.get_device_name(0)
    if args.grid:
        chosen = [point for point in GRIDS[args.grid]() if point.bf16 or not args.bf16]
    else:
        chosen = PACKED if args.packed else POINTS
    results = []
    for point in chosen:
        results.append(trace(point, int(args.min_mb * 10**6)))
        print(f"traced {point}", flush=True)
    suffix = ("-packed" if args.packed else "") + (f"-{args.grid}" if args.grid else "")
    stem = args.out_dir / (f"step-memory-{gpu_slug(gpu)}{suffix}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(
        {"gpu": gpu, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
         "results": results}, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(
        results, gpu, f"python -m benchmarks.step_memory --min-mb {args.min_mb}"
        + (" --packed" if args.packed else "") + (f" --grid {args.grid}" if args.grid else "")
        + (" --bf16" if args.bf16 else "")))
    print(f"written: {stem}.json, .md")


if __name__ == "__main__":
    main()
