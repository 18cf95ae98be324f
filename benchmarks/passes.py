"""Where the time of one fused loss goes, and which block shapes make it fastest.

    python -m benchmarks.passes --tokens 131072 --negatives 4095 --dim 256 --dtype fp16

For each negative mode (explicit ids and in-kernel) and each candidate block shape: the
forward pass alone and forward+backward, median of `triton.testing.do_bench`. Results:
passes-<gpu>.json and .md; the best shape per mode is what `kernels.fused.choose_blocks`
should pick.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
import triton

import kernels.fused as fused
from benchmarks.kernels import DTYPES, gpu_slug
from kernels import InKernelNegatives, cce, cce_minus


def variants(tokens: int, negatives: int, catalog: int, tile_sizes: list[int]):
    ids = torch.randint(1, catalog + 1, (negatives,), device="cuda")
    yield "shared", lambda h, e, t: cce_minus(h, e, t, ids)
    yield "shared (in-kernel)", lambda h, e, t: cce_minus(
        h, e, t, InKernelNegatives(negatives, "shared", seed=0))
    for tile in tile_sizes:
        tiles = torch.randint(1, catalog + 1, (triton.cdiv(tokens, tile), negatives),
                              device="cuda")
        yield f"tile {tile}", lambda h, e, t, tiles=tiles, tile=tile: cce_minus(
            h, e, t, tiles, tile_size=tile)
        yield f"tile {tile} (in-kernel)", lambda h, e, t, tile=tile: cce_minus(
            h, e, t, InKernelNegatives(negatives, "tile", tile, seed=0))
    yield "full catalog", cce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=131072)
    parser.add_argument("--negatives", type=int, default=4095)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--catalog", type=int, default=26744)
    parser.add_argument("--dtype", default="fp16", choices=DTYPES)
    parser.add_argument("--tile-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--block-t", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--block-n", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--stages", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    dtype = DTYPES[args.dtype]
    hidden = (torch.randn(args.tokens, args.dim, device="cuda") / args.dim**0.25).to(dtype)
    emb = (torch.randn(args.catalog + 1, args.dim, device="cuda") / args.dim**0.25).to(dtype)
    targets = torch.randint(1, args.catalog + 1, (args.tokens,), device="cuda")
    hidden.requires_grad_()
    emb.requires_grad_()
    default_blocks = fused.choose_blocks
    rows = []
    for name, fn in variants(args.tokens, args.negatives, args.catalog, args.tile_sizes):
        shapes = [None, *itertools.product(args.block_t, args.block_n, args.warps, args.stages)]
        for shape in shapes:
            if shape is not None:
                fused.choose_blocks = lambda *a, shape=shape: fused.Blocks(*shape)
            try:
                forward = triton.testing.do_bench(lambda fn=fn: fn(hidden, emb, targets),
                                                  return_mode="median")
                both = triton.testing.do_bench(
                    lambda fn=fn: torch.autograd.grad(fn(hidden, emb, targets), (hidden, emb)),
                    return_mode="median")
                status = "ok"
            except Exception as error:  # a shape that does not compile or fit: note it
                forward = both = None
                status = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
            finally:
                fused.choose_blocks = default_blocks
            rows.append({"variant": name, "blocks": "default" if shape is None else shape,
                         "forward_ms": forward, "forward_backward_ms": both, "status": status})
            print(rows[-1], flush=True)
    slug = gpu_slug()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"),
            **{k: v for k, v in vars(args).items() if k != "out_dir"}}
    (args.out_dir / f"passes-{slug}.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    lines = [f"# Fused loss passes on {meta['gpu']} ({meta['date']})", "",
             f"tokens {args.tokens}, N {args.negatives}, d {args.dim}, catalog {args.catalog}, "
             f"{args.dtype}. Best block shape (BLOCK_T, BLOCK_N, warps, stages) per variant:",
             "", "| variant | default fwd ms | default fwd+bwd ms | best shape | best fwd+bwd ms |",
             "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name and r["forward_backward_ms"]]
        default = next((r for r in mine if r["blocks"] == "default"), None)
        best = min(mine, key=lambda r: r["forward_backward_ms"], default=None)
        lines.append(f"| {name} | {default and round(default['forward_ms'], 3)} | "
                     f"{default and round(default['forward_backward_ms'], 3)} | "
                     f"{best and best['blocks']} | "
                     f"{best and round(best['forward_backward_ms'], 3)} |")
    (args.out_dir / f"passes-{slug}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
