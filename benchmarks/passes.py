"""Which block shape makes each of the fused loss's three kernels fastest.

    python -m benchmarks.passes --tokens 51200 --dim 64 --dtype bf16 --variants "full catalog"

For each variant (negative mode, or the full catalog) and each candidate block shape
(BLOCK_T, BLOCK_N, warps, stages), one forward+backward step runs with that shape in all
three kernels (or those of `--kernels`), and torch.profiler times each kernel on its own:
the kernels are separate launches, so the best shape of each can be chosen independently.
Results: passes-<gpu>.json and .md; the best shapes are what `kernels.fused.choose_blocks`
should pick.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import time
from pathlib import Path

import torch
import triton

import cce_tune.kernels.cce_buckets as buckets
import cce_tune.kernels.config as kernel_config
import cce_tune.kernels.fused as fused
from benchmarks.kernels import DTYPES, gpu_slug, grad_step, inputs
from benchmarks.step_time import kernel_times
from cce_tune.kernels import InKernelNegatives, cce, cce_minus

KERNEL_NAMES = {"forward": "cce_minus_forward_kernel",
                "hidden": "cce_minus_backward_hidden_kernel",
                "items": "cce_minus_backward_items_kernel",
                # per position (kernels.cce_buckets): the counting sort and the item pass
                "count": "count_kernel", "place": "place_kernel",
                "bucketed items": "items_kernel",
                # the full catalog in parts: the parts combined; d(hidden) from directions
                "parts": "catalog_lse_kernel", "directions": "directions_backward_kernel"}
# Every other kernel of the step, summed: cuBLAS's products (kernels.cublas_chunks), PyTorch's
# gathers, fills and index_add_.
OTHERS = "others"


# Module constants that a flag of each name sweeps: (module, name, label in the table, what
# it holds).
CONSTANTS = {
    "item_programs": (buckets, "ITEM_PROGRAMS_PER_PROCESSOR", "item programs per SM",
                      "programs per multiprocessor of the per-position item pass"),
    "max_slots": (kernel_config, "MAX_SLOTS", "slots a chunk",
                  "per-position pairs per chunk of the bucketed item gradient"),
    "drawn_steps": (kernel_config, "DRAWN_STEPS", "steps drawn ahead",
                    "steps of in-kernel per-position ids the forward draws ahead"),
    "max_forward_counts": (kernel_config, "MAX_FORWARD_COUNTS", "forward counts at most",
                           "largest table of per-position pair counts the forward fills (0: "
                           "the backward counts)"),
    "cublas_min_row_bytes": (
        kernel_config, "CUBLAS_MIN_ROW_BYTES", "cuBLAS from row bytes",
        "shortest float32 rows (bytes) whose products cuBLAS makes (a large value: never)"),
    "cublas_min_tile": (kernel_config, "CUBLAS_MIN_TILE", "cuBLAS from tiles of",
                        "smallest tile whose products cuBLAS makes"),
    "catalog_directions_row_bytes": (
        kernel_config, "CATALOG_DIRECTIONS_ROW_BYTES", "directions row bytes",
        "longest rows (bytes) over which the full catalog's forward writes d(hidden)'s "
        "directions (0: never, the hidden pass runs)"),
}


def variants(tokens: int, negatives: int, catalog: int, tile_sizes: list[int]) -> dict:
    """Builders of each variant's loss function, by name: a builder draws its ids when
    called, so variants left out allocate nothing (per position, tokens x N ids)."""
    def ids(*shape):
        return torch.randint(1, catalog + 1, shape, device="cuda")

    builders = {
        "shared": lambda: functools.partial(cce_minus, negatives=ids(negatives)),
        "shared (in-kernel)": lambda: functools.partial(
            cce_minus, negatives=InKernelNegatives(negatives, "shared", seed=0)),
    }
    for tile in tile_sizes:
        builders[f"tile {tile}"] = lambda tile=tile: functools.partial(
            cce_minus, negatives=ids(triton.cdiv(tokens, tile), negatives), tile_size=tile)
        builders[f"tile {tile} (in-kernel)"] = lambda tile=tile: functools.partial(
            cce_minus, negatives=InKernelNegatives(negatives, "tile", tile, seed=0))
    builders["full catalog"] = lambda: cce
    builders["per position"] = lambda: functools.partial(
        cce_minus, negatives=ids(tokens, negatives))
    builders["per position (in-kernel)"] = lambda: functools.partial(
        cce_minus, negatives=InKernelNegatives(negatives, "per_position", seed=0))
    return builders


def time_kernels(fn, hidden, emb, targets) -> dict[str, float]:
    """ms per step of each fused kernel that the step launches, and of the others (OTHERS)."""
    step = grad_step(fn, hidden, emb, targets)
    for _ in range(3):
        step()
    by_name = kernel_times(step)[2]
    ours = {kernel: ms for kernel, name in KERNEL_NAMES.items()
            for key, ms in by_name.items() if key.startswith(name)}
    others = sum(ms for key, ms in by_name.items()
                 if not key.startswith(tuple(KERNEL_NAMES.values())))
    return {**ours, OTHERS: others}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=131072)
    parser.add_argument("--negatives", type=int, default=4095)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--catalog", type=int, default=26744)
    parser.add_argument("--dtype", default="fp16", choices=DTYPES)
    parser.add_argument("--tile-sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--variants", nargs="*", default=None,
                        help="only these variants (names as in the table), default all")
    parser.add_argument("--block-t", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--block-n", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--stages", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--shapes", nargs="+", type=_shape, default=None,
                        help="explicit shapes T,N,WARPS,STAGES instead of the product of "
                             "the four lists above")
    parser.add_argument("--kernels", nargs="+", default=list(fused.KERNELS),
                        choices=fused.KERNELS,
                        help="the kernels that take each swept shape; the others keep theirs")
    parser.add_argument("--precisions", nargs="+", default=None,
                        choices=("tf32", "tf32x3", "ieee"),
                        help="tl.dot input precisions to sweep (each variant once per "
                             "precision, in all three kernels whatever --kernels says; a "
                             "shape's blocks then as the library sizes them for tensor cores, "
                             "or for the CUDA cores with ieee), default the library's own "
                             "per kernel (kernels.fused.on_cuda_cores)")
    for flag, (module, constant, _label, what) in CONSTANTS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", nargs="+", type=int, default=None,
                            help=f"{what} to sweep ({module.__name__}.{constant}), each "
                                 "variant once per value; default the library's")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    builders = variants(args.tokens, args.negatives, args.catalog, args.tile_sizes)
    unknown = [variant for variant in args.variants or () if variant not in builders]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(builders)}")
    hidden, emb, targets = inputs(DTYPES[args.dtype], args.tokens, args.dim, args.catalog)
    default_blocks, default_precision = fused.choose_blocks, fused.precision_for
    default_cores = fused.on_cuda_cores
    defaults = {flag: getattr(module, constant)
                for flag, (module, constant, *_text) in CONSTANTS.items()}
    rows = []
    for variant, precision, *values in itertools.product(
            args.variants or builders, args.precisions or [None],
            *(getattr(args, flag) or [None] for flag in CONSTANTS)):
        fn, name = builders[variant](), variant
        if precision is not None:
            fused.precision_for = lambda dtype, *_, precision=precision: precision
            fused.on_cuda_cores = lambda *_, precision=precision: precision == "ieee"
            name = f"{name} [{precision}]"
        for (module, constant, label, _what), value in zip(CONSTANTS.values(), values,
                                                          strict=True):
            if value is not None:
                setattr(module, constant, value)
                name = f"{name} [{value} {label}]"
        shapes = [None, *(args.shapes or itertools.product(args.block_t, args.block_n,
                                                           args.warps, args.stages))]
        for shape in shapes:
            if shape is not None:
                fused.choose_blocks = lambda kernel, *a, shape=shape: (
                    fused.Blocks(*shape) if kernel in args.kernels
                    else default_blocks(kernel, *a))
            try:
                ms, status = time_kernels(fn, hidden, emb, targets), "ok"
            except Exception as error:  # a shape that does not compile or fit: note it
                ms, status = {}, f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
            finally:
                fused.choose_blocks = default_blocks
            rows.append({"variant": name, "blocks": "default" if shape is None else shape,
                         "kernel_ms": ms, "status": status})
            print(rows[-1], flush=True)
            write(rows, args, quiet=True)  # what a cut-off sweep measured stays written
        fused.precision_for, fused.on_cuda_cores = default_precision, default_cores
        for flag, (module, constant, *_text) in CONSTANTS.items():
            setattr(module, constant, defaults[flag])
    write(rows, args)


def _shape(text: str) -> tuple[int, int, int, int]:
    """'64,32,4,2' -> (BLOCK_T, BLOCK_N, warps, stages)."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a shape: give four positive integers T,N,WARPS,STAGES")
    return shape


def write(rows: list[dict], args: argparse.Namespace, quiet: bool = False) -> None:
    slug = "-".join(filter(None, [gpu_slug(), args.tag]))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"),
            "triton": triton.__version__,
            **{k: v for k, v in vars(args).items() if k != "out_dir"}}
    (args.out_dir / f"passes-{slug}.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    lines = [f"# Fused loss kernels on {meta['gpu']} ({meta['date']})", "",
             f"`python -m benchmarks.passes` with {meta}. ms per step of each kernel "
             "(torch.profiler); shape = (BLOCK_T, BLOCK_N, warps, stages).", "",
             "| variant | kernel | default ms | best shape | best ms |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        default = next(r for r in mine if r["blocks"] == "default")["kernel_ms"]
        for kernel in (*KERNEL_NAMES, OTHERS):
            timed = [r for r in mine if kernel in r["kernel_ms"]]
            if not timed:
                continue
            best = min(timed, key=lambda r: r["kernel_ms"][kernel])
            lines.append(f"| {name} | {kernel} | {_ms(default.get(kernel))} | "
                         f"{best['blocks']} | {_ms(best['kernel_ms'][kernel])} |")
    (args.out_dir / f"passes-{slug}.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
