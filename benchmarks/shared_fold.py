"""Batch-shared negatives: where should their item gradient be added, in the hidden pass or
in a pass of its own? The source of `kernels.fused.SHARED_FOLD_ATOMICS`.

    python -m benchmarks.shared_fold

Folded, the hidden pass adds each token block's P^T H for the N shared rows atomically:
one launch fewer, but token blocks x N x d atomic adds, all on the same N rows. For each
point both ways are timed in turns (three rounds of `do_bench`, median), and their kernels by
torch.profiler. Results: shared-fold-<gpu>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import triton

import cce_tune.kernels.fused as fused
from benchmarks.kernels import command_line, gpu_slug, grad_step, inputs
from benchmarks.step_time import kernel_times
from cce_tune.kernels import cce_minus

WAYS = {"fold": 2**62, "own pass": 0}  # SHARED_FOLD_ATOMICS that forces each way


def measure(catalog: int, dim: int, tokens: int, negatives: int, rounds: int) -> dict:
    hidden, emb, targets = inputs(torch.bfloat16, tokens, dim, catalog)
    ids = torch.randint(1, catalog + 1, (negatives,), device="cuda",
                        generator=torch.Generator("cuda").manual_seed(0))

    step = grad_step(lambda h, e, t: cce_minus(h, e, t, ids), hidden, emb, targets)

    block_t = fused.choose_blocks("hidden", torch.bfloat16, dim, False, True, None).t
    row = {"catalog": catalog, "dim": dim, "tokens": tokens, "negatives": negatives,
           "atomics": triton.cdiv(tokens, block_t) * negatives * dim}
    walls: dict[str, list[float]] = {way: [] for way in WAYS}
    default = fused.SHARED_FOLD_ATOMICS
    try:
        for _ in range(rounds):
            for way, limit in WAYS.items():
                fused.SHARED_FOLD_ATOMICS = limit
                step()
                walls[way].append(triton.testing.do_bench(step, warmup=10, rep=50,
                                                          return_mode="median"))
        for way, limit in WAYS.items():
            fused.SHARED_FOLD_ATOMICS = limit
            gpu, launches, _ = kernel_times(step)
            row[way] = {"wall_ms": statistics.median(walls[way]), "gpu_ms": gpu,
                        "kernels": launches}
    finally:
        fused.SHARED_FOLD_ATOMICS = default
    row["chosen"] = "fold" if row["atomics"] <= default else "own pass"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--catalogs", type=int, nargs="+", default=[26_744, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--tokens", type=int, nargs="+", default=[32_768, 131_072])
    parser.add_argument("--negatives", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for catalog in args.catalogs:
        for dim in args.dims:
            for tokens in args.tokens:
                for negatives in args.negatives:
                    rows.append(measure(catalog, dim, tokens, negatives, args.rounds))
                    print(json.dumps(rows[-1]), flush=True)
                    torch.cuda.empty_cache()
    command = command_line("benchmarks.shared_fold", args)
    lines = [f"# Shared negatives' item gradient: folded or its own pass, "
             f"{torch.cuda.get_device_name()} ({time.strftime('%Y-%m-%d')})", "",
             f"`{command}`; bf16; torch {torch.__version__}, triton {triton.__version__}. "
             "Wall: median of the rounds' do_bench medians, the two ways in turns. "
             f"Chosen: what SHARED_FOLD_ATOMICS = {fused.SHARED_FOLD_ATOMICS:,} picks.", "",
             "| catalog | d | tokens | N | atomic adds | fold wall ms | own pass wall ms | "
             "fold GPU ms | own pass GPU ms | kernels (fold, own) | faster | chosen |",
             "|" + "---|" * 12]
    for r in rows:
        fold, own = r["fold"], r["own pass"]
        faster = "fold" if fold["wall_ms"] < own["wall_ms"] else "own pass"
        lines.append(f"| {r['catalog']:,} | {r['dim']} | {r['tokens']:,} | {r['negatives']:,} | "
                     f"{r['atomics']:,} | {fold['wall_ms']:.3f} | {own['wall_ms']:.3f} | "
                     f"{fold['gpu_ms']:.3f} | {own['gpu_ms']:.3f} | "
                     f"{fold['kernels']}, {own['kernels']} | {faster} | {r['chosen']} |")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"shared-fold-{gpu_slug()}"
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
