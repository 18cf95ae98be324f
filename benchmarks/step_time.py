"""Where one forward+backward step's time goes: the GPU's kernels, or the host launching them.

    python -m benchmarks.step_time

`benchmarks.kernels` reports the median time of a step between device events; when the
host takes longer to launch a step's kernels than the GPU takes to run them, that time is
the host's. This benchmark says which: per step, the wall time (`do_bench`), the time the GPU
spends in kernels and the kernel count (torch.profiler over a few steps), and each kernel's
share. Results: step-time-<gpu>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
import triton
from torch.profiler import ProfilerActivity, profile

from benchmarks.kernels import (
    DTYPES,
    full_impls,
    gpu_slug,
    grad_step,
    inputs,
    median_ms,
    sampled_impls,
)

PROFILED_STEPS = 20


def kernel_times(step) -> tuple[float, int, dict[str, float]]:
    """(GPU kernel ms per step, kernels per step, ms per step by kernel name)."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED_STEPS):
            step()
        torch.cuda.synchronize()
    by_name: dict[str, float] = defaultdict(float)
    launches = 0
    for event in prof.key_averages():
        if event.self_device_time_total > 0:
            by_name[event.key[:60]] += event.self_device_time_total / 1e3 / PROFILED_STEPS
            launches += event.count
    return sum(by_name.values()), launches // PROFILED_STEPS, dict(by_name)


def host_ms(step) -> float:
    """Host time to enqueue one step, measured over steps the GPU keeps up with."""
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(PROFILED_STEPS):
        step()
    enqueued = time.perf_counter() - started
    torch.cuda.synchronize()
    return enqueued / PROFILED_STEPS * 1e3


def measure(point: tuple, impl: str, mode: str, fn) -> dict:
    dtype_name, tokens, negatives, dim, catalog = point
    hidden, emb, targets = inputs(DTYPES[dtype_name], tokens, dim, catalog)

    step = grad_step(fn, hidden, emb, targets)
    step()
    wall = median_ms(step)
    busy, launches, by_name = kernel_times(step)
    return {"dtype": dtype_name, "tokens": tokens, "negatives": negatives, "dim": dim,
            "catalog": catalog, "impl": impl, "mode": mode, "wall_ms": wall,
            "host_ms": host_ms(step), "gpu_ms": busy, "kernels": launches,
            "by_kernel_ms": dict(sorted(by_name.items(), key=lambda kv: -kv[1]))}


def parse_point(text: str) -> tuple:
    dtype, tokens, negatives, dim, catalog = text.split(":")
    if dtype not in DTYPES:
        raise SystemExit(f"unknown dtype {dtype!r} in {text!r}; choose one of {list(DTYPES)}")
    return dtype, int(tokens), int(negatives), int(dim), int(catalog)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampled", nargs="*", type=parse_point,
                        default=[parse_point(p) for p in (
                            "bf16:32768:512:64:26744", "bf16:32768:512:256:26744",
                            "bf16:131072:512:64:26744", "bf16:32768:512:64:1000000")],
                        help="DTYPE:TOKENS:N:D:CATALOG points of the sampled losses")
    parser.add_argument("--full", nargs="*", type=parse_point,
                        default=[parse_point("bf16:51200:0:64:26744")],
                        help="DTYPE:TOKENS:0:D:CATALOG points of full-catalog CE")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    rows = []
    for point in args.sampled:
        _, tokens, negatives, _, catalog = point
        for (impl, mode), fn in sampled_impls(tokens, negatives, catalog, False).items():
            rows.append(measure(point, impl, mode, fn))
            print({k: v for k, v in rows[-1].items() if k != "by_kernel_ms"}, flush=True)
    for point in args.full:
        for (impl, mode), fn in full_impls().items():
            if impl in ("ours", "apple-cce"):
                rows.append(measure(point, impl, mode, fn))
                print({k: v for k, v in rows[-1].items() if k != "by_kernel_ms"}, flush=True)

    stem = args.out_dir / "-".join(filter(None, ["step-time", gpu_slug(), args.tag]))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__, "triton": triton.__version__}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Step time: GPU or host? {meta['gpu']} ({meta['date']})", "",
             f"`python -m benchmarks.step_time`; torch {meta['torch']}, triton "
             f"{meta['triton']}. wall: do_bench median of forward+backward; host: time to "
             "enqueue a step; GPU: kernel time per step (torch.profiler); top kernels in ms.",
             "", "| impl | mode | dtype | tokens | N | d | catalog | wall ms | host ms | GPU ms "
             "| kernels | top kernels |", "|" + "---|" * 12]
    for r in rows:
        top = "; ".join(f"{name} {ms:.3f}" for name, ms in list(r["by_kernel_ms"].items())[:4])
        lines.append(f"| {r['impl']} | {r['mode']} | {r['dtype']} | {r['tokens']} | "
                     f"{r['negatives']} | {r['dim']} | {r['catalog']} | {r['wall_ms']:.3f} | "
                     f"{r['host_ms']:.3f} | {r['gpu_ms']:.3f} | {r['kernels']} | {top} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
