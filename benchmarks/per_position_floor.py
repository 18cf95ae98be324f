"""The floor under the per-position fused loss: what reading its rows alone costs.

    python -m benchmarks.per_position_floor --out-dir benchmarks/results

Per position every token scores its own N item rows, so the loss reads tokens x N rows of d
twice whatever it computes: the forward gathers the table's rows (the catalog's, which stay
in L2 at 26,744 x 256 fp16 = 13.7 MB), and the item gradient, bucketed by item
(`kernels.cce_buckets`), gathers a hidden row per pair (from a chunk of tokens at a time).
`gather_kernel` does only that traffic: it sums the rows that a list of ids names, with no
other arithmetic, and the fastest of a few register tiles counts. At each point of issue
19's table the two gathers make the floor of the loss's forward+backward; the counting sort
that buckets the pairs (int32 atomics per pair) is left out, so the floor is below what any
bucketed design reaches. Results: per-position-floor-<gpu>.json and .md.
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
from cce_tune.kernels.config import pair_chunks

POINTS = [  # (tokens, d, N): issue 19's per-position rows, catalog 26,744, fp16
    (131_072, 256, 511), (131_072, 256, 4_095), (131_072, 64, 1_511), (32_768, 256, 1_511)]
TILES = [(32, 4), (64, 4), (64, 8), (128, 8)]  # (rows per step, warps) tried at each point


@triton.jit
def gather_kernel(src_ptr, ids_ptr, out_ptr, num_ids, ids_per_program, dim,
                  ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    """Sums the rows of `src` that this program's ids name into one output row: each row
    read once, added into a register tile that is reduced only at the end."""
    first = tl.program_id(0) * ids_per_program
    last = tl.minimum(first + ids_per_program, num_ids)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < dim
    total = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    for start in range(first, last, ROWS):
        offs = start + tl.arange(0, ROWS)
        ids = tl.load(ids_ptr + offs, mask=offs < last, other=0).to(tl.int64)
        total += tl.load(src_ptr + ids[:, None] * dim + offs_d[None, :],
                         mask=d_mask[None, :], other=0.0).to(tl.float32)
    tl.store(out_ptr + tl.program_id(0) * dim + offs_d, tl.sum(total, axis=0), mask=d_mask)


def gather_ms(src: torch.Tensor, ids: torch.Tensor, rows: int, warps: int) -> float:
    """ms of one gather of the rows `ids` names, over eight programs per multiprocessor."""
    programs = 8 * torch.cuda.get_device_properties(src.device).multi_processor_count
    per_program = triton.cdiv(triton.cdiv(ids.numel(), programs), rows) * rows
    grid = (triton.cdiv(ids.numel(), per_program),)
    out = torch.empty(grid[0], src.shape[1], device=src.device)
    block_d = triton.next_power_of_2(src.shape[1])
    return median_ms(lambda: gather_kernel[grid](src, ids, out, ids.numel(), per_program,
                                                 src.shape[1], ROWS=rows, BLOCK_D=block_d,
                                                 num_warps=warps))


def best_gather(src: torch.Tensor, ids: torch.Tensor) -> tuple[float, tuple[int, int]]:
    """The fastest gather over TILES, and its tile."""
    return min((gather_ms(src, ids, rows, warps), (rows, warps)) for rows, warps in TILES)


def measure(tokens: int, dim: int, negatives: int, catalog: int, dtype: torch.dtype) -> dict:
    """The two gathers' ms at a point: table rows per (token, negative), then hidden rows in
    the item pass's order (a random token per pair, within a chunk of tokens)."""
    generator = torch.Generator(device="cuda").manual_seed(0)
    table = torch.randn(catalog + 1, dim, device="cuda", generator=generator).to(dtype)
    hidden = torch.randn(tokens, dim, device="cuda", generator=generator).to(dtype)
    pairs = tokens * negatives
    item_ids = torch.randint(1, catalog + 1, (pairs,), device="cuda", generator=generator,
                             dtype=torch.int32)
    table_ms, table_tile = best_gather(table, item_ids)
    del item_ids
    # The item pass's order: pairs by item, so each pair's token is a random one of its chunk.
    chunk = pair_chunks(tokens, negatives)[0]
    starts = torch.arange(pairs, device="cuda") // negatives // chunk * chunk
    sizes = (tokens - starts).clamp(max=chunk)
    offsets = (torch.rand(pairs, device="cuda", generator=generator) * sizes).long()
    token_ids = (starts + torch.minimum(offsets, sizes - 1)).to(torch.int32)
    del starts, sizes, offsets
    hidden_ms, hidden_tile = best_gather(hidden, token_ids)
    row_bytes = dim * dtype.itemsize
    return {"tokens": tokens, "dim": dim, "negatives": negatives, "catalog": catalog,
            "table_ms": table_ms, "table_tile": table_tile,
            "table_tbps": pairs * row_bytes / table_ms / 1e9,
            "hidden_ms": hidden_ms, "hidden_tile": hidden_tile,
            "hidden_tbps": pairs * row_bytes / hidden_ms / 1e9,
            "floor_ms": table_ms + hidden_ms}


def write(rows: list[dict], meta: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"per-position-floor-{meta['gpu_slug']}"
    (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# The per-position loss's traffic floor on {meta['gpu']} ({meta['date']})", "",
             f"`{meta['command']}`; {meta['dtype']} rows, torch {meta['torch']}, triton "
             f"{meta['triton']}. Two gathers of tokens x N rows, each the fastest of the tiles "
             f"(rows per step, warps) {TILES}: the table's rows (the forward's reads) and "
             "hidden rows in random order within a chunk of tokens (the bucketed item "
             "gradient's reads). Their sum is the floor of the loss's forward+backward; the "
             "counting sort that buckets the pairs is not in it.", "",
             "| tokens | d | N | table rows ms | TB/s | hidden rows ms | TB/s | floor ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tokens']:,} | {r['dim']} | {r['negatives']:,} | "
                     f"{r['table_ms']:.2f} | {r['table_tbps']:.1f} | {r['hidden_ms']:.2f} | "
                     f"{r['hidden_tbps']:.1f} | {r['floor_ms']:.1f} |")
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
