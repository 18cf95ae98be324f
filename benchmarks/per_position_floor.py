"""The floor under the per-position fused loss: what its memory traffic alone costs.

    python -m benchmarks.per_position_floor --out-dir benchmarks/results

Per position, every token scores its own N item rows, so no pass is a matrix product: each
reads tokens x N rows of d. Two kernels here do only the traffic, with no arithmetic worth
the name: `gather` reads the rows a pass reads (and sums them, so nothing is optimised away)
and `scatter` adds tokens x N rows of d float32 into the item gradient atomically, as the
backward of commit 92fd809 did. At each point of issue 19's table their times make two
floors of the loss's forward+backward: that design's (a gather in each direction and the
scatter) and the bucketed one's (`kernels.cce_buckets`: a gather of table rows forward, one
of hidden rows for the item gradient, no scatter; its counting sort, int32 atomics per
pair, left out). Results: per-position-floor-<gpu>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

from benchmarks.kernels import DTYPES, command_line, gpu_slug, median_ms

POINTS = [  # (tokens, d, N): issue 19's per-position rows, catalog 26,744, fp16
    (131_072, 256, 511), (131_072, 256, 4_095), (131_072, 64, 1_511), (32_768, 256, 1_511)]


@triton.jit
def _block_ids(ids_ptr, offs_t, start, num_negatives, BLOCK_N: tl.constexpr):
    """Ids (int64, 0 past N) of negatives start..start+BLOCK_N of tokens `offs_t`, and
    which of those negatives exist."""
    offs_n = start + tl.arange(0, BLOCK_N)
    n_mask = offs_n < num_negatives
    ids = tl.load(ids_ptr + offs_t[:, None].to(tl.int64) * num_negatives + offs_n[None, :],
                  mask=n_mask[None, :], other=0).to(tl.int64)
    return ids, n_mask


@triton.jit
def gather_kernel(e_ptr, ids_ptr, out_ptr, num_negatives, dim,
                  BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Sums, per token, the N rows it names: one read of each (token, negative) row."""
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    total = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
    for start in range(0, num_negatives, BLOCK_N):
        ids, n_mask = _block_ids(ids_ptr, offs_t, start, num_negatives, BLOCK_N)
        # As the loss loads rows: lanes past N read row 0, masked on d alone (a mask over
        # negatives too measured 3.8x slower than the loss's own forward pass).
        rows = tl.load(e_ptr + ids[:, :, None] * dim + offs_d[None, None, :],
                       mask=d_mask[None, None, :], other=0.0)
        total += tl.sum(rows.to(tl.float32), axis=1)
    tl.store(out_ptr + offs_t[:, None] * dim + offs_d[None, :], total, mask=d_mask[None, :])


@triton.jit
def scatter_kernel(h_ptr, ids_ptr, grad_ptr, num_negatives, dim,
                   BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Adds each token's row into the float32 rows of the N items it names, atomically."""
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    h = tl.load(h_ptr + offs_t[:, None] * dim + offs_d[None, :], mask=d_mask[None, :],
                other=0.0).to(tl.float32)
    for start in range(0, num_negatives, BLOCK_N):
        ids, n_mask = _block_ids(ids_ptr, offs_t, start, num_negatives, BLOCK_N)
        tl.atomic_add(grad_ptr + ids[:, :, None] * dim + offs_d[None, None, :],
                      tl.broadcast_to(h[:, None, :], (BLOCK_T, BLOCK_N, BLOCK_D)),
                      mask=n_mask[None, :, None] & d_mask[None, None, :], sem="relaxed")


def blocks(dim: int) -> dict:
    """The register tile of commit 92fd809's per-position passes, whose traffic this is:
    (BLOCK_T, 16 rows, d) of 4,096 values over 4 warps."""
    block_d = max(16, triton.next_power_of_2(dim))
    return dict(BLOCK_T=max(1, min(16, 4096 // (16 * block_d))), BLOCK_N=16, BLOCK_D=block_d,
                num_warps=4)


def measure(tokens: int, dim: int, negatives: int, catalog: int, dtype: torch.dtype) -> dict:
    """ms of one gather pass and of one scatter pass at a point (tokens a multiple of the
    token block)."""
    generator = torch.Generator(device="cuda").manual_seed(0)
    table = torch.randn(catalog + 1, dim, device="cuda", generator=generator).to(dtype)
    hidden = torch.randn(tokens, dim, device="cuda", generator=generator).to(dtype)
    ids = torch.randint(1, catalog + 1, (tokens, negatives), device="cuda",
                        generator=generator, dtype=torch.int32)
    sums = torch.empty(tokens, dim, device="cuda")
    grad = torch.zeros(catalog + 1, dim, device="cuda")
    shape = blocks(dim)
    grid = (triton.cdiv(tokens, shape["BLOCK_T"]),)
    gather = median_ms(lambda: gather_kernel[grid](table, ids, sums, negatives, dim, **shape))
    scatter = median_ms(lambda: scatter_kernel[grid](hidden, ids, grad, negatives, dim,
                                                     **shape))
    moved = tokens * negatives * dim
    return {"tokens": tokens, "dim": dim, "negatives": negatives, "catalog": catalog,
            "gather_ms": gather, "scatter_ms": scatter,
            "gather_tbps": moved * dtype.itemsize / gather / 1e9,
            "scatter_tbps": moved * 4 / scatter / 1e9,
            "floor_atomic_ms": 2 * gather + scatter, "floor_bucketed_ms": 2 * gather}


def write(rows: list[dict], meta: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"per-position-floor-{meta['gpu_slug']}"
    (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# The per-position loss's traffic floor on {meta['gpu']} ({meta['date']})", "",
             f"`{meta['command']}`; {meta['dtype']} rows, torch {meta['torch']}, triton "
             f"{meta['triton']}. One gather pass reads tokens x N rows from the table (in "
             "L2); one scatter pass adds tokens x N float32 rows into the item gradient "
             "atomically. Floors of the loss's forward+backward: with atomic item gradients "
             "(2 gathers + 1 scatter, commit 92fd809's design) and bucketed (2 gathers).", "",
             "| tokens | d | N | gather ms | TB/s | scatter ms | TB/s | floor, atomic | "
             "floor, bucketed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tokens']:,} | {r['dim']} | {r['negatives']:,} | "
                     f"{r['gather_ms']:.2f} | {r['gather_tbps']:.1f} | {r['scatter_ms']:.2f} | "
                     f"{r['scatter_tbps']:.1f} | {r['floor_atomic_ms']:.1f} ms | "
                     f"{r['floor_bucketed_ms']:.1f} ms |")
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=int, default=26_744)
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    meta = {"gpu": torch.cuda.get_device_name(), "gpu_slug": gpu_slug(),
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "triton": triton.__version__, "dtype": args.dtype,
            "command": command_line("benchmarks.per_position_floor", args)}
    rows = [measure(tokens, dim, n, args.catalog, DTYPES[args.dtype])
            for tokens, dim, n in POINTS]
    write(rows, meta, args.out_dir)


if __name__ == "__main__":
    main()
