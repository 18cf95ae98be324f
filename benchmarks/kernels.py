"""Forward+backward time and peak memory of the fused losses against PyTorch and the peers.

    python -m benchmarks.kernels --out-dir benchmarks/results

Sampled losses (ours in the tile, shared and per-position modes against the PyTorch
`ce_minus` reference in the same mode) over tokens x negatives x d x catalog x dtype, and
full-catalog CE (ours, PyTorch, Apple's cut-cross-entropy, Liger's fused linear CE). Each row
has the median time (`triton.testing.do_bench`), the peak memory above the inputs, the
workspace (that peak less the two gradients every implementation returns), and a roofline
floor from measured matrix and copy rates. Results: kernels-<gpu>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import triton

import cce_tune.kernels.config as kernel_config
from cce_tune.kernels import InKernelNegatives, cce, cce_minus, reference

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
EXP_RATE = 132 * 16 * 1.755e9  # H100 SXM: 16 exp/clock/SM (MUFU) x 132 SMs x boost clock
TILE = 128


@dataclass
class Row:
    kind: str  # "sampled" or "full"
    impl: str
    mode: str
    dtype: str
    tokens: int
    negatives: int
    dim: int
    catalog: int
    ms: float | None = None
    peak_mb: float | None = None
    workspace_mb: float | None = None
    floor_ms: float | None = None
    status: str = "ok"
    round_ms: list[float] | None = None  # one median per round; `ms` is their median


@dataclass
class Ceilings:
    matmul_tflops: dict  # dtype name -> measured dense matrix rate
    copy_tbps: float


def measure_ceilings() -> Ceilings:
    """A large matrix product per dtype and a device-to-device copy, on random data."""
    rates = {}
    for name, dtype in DTYPES.items():
        a = torch.randn(8192, 8192, device="cuda").to(dtype)
        b = torch.randn(8192, 8192, device="cuda").to(dtype)
        if dtype == torch.float32:
            torch.backends.cuda.matmul.allow_tf32 = False
        ms = triton.testing.do_bench(lambda a=a, b=b: a @ b, return_mode="median")
        rates[name] = 2 * 8192**3 / ms / 1e9
    src = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return Ceilings(rates, 2 * 2**30 / ms / 1e9)


def roofline(dtype: str, tokens: int, negatives: int, dim: int,
             catalog: int) -> tuple[float, float, float]:
    """(matrix FLOPs, exponentials, bytes) of our fused passes at one point.

    Matrix work: forward scores 2TNd; backward recomputes them twice (hidden and item passes)
    and forms dH and dE: 10TNd in all. Exponentials: 3TN. Bytes: hidden and item table
    read, their gradients written, once each.
    """
    size = torch.finfo(DTYPES[dtype]).bits // 8
    return (10 * tokens * negatives * dim, 3 * tokens * negatives,
            2 * (tokens + catalog) * dim * size)


def floor_ms(ceilings: Ceilings, dtype: str, tokens: int, negatives: int, dim: int,
             catalog: int) -> float:
    """The larger of matrix, exponential and byte time (`roofline` over measured rates)."""
    flops, exps, moved = roofline(dtype, tokens, negatives, dim, catalog)
    return 1e3 * max(flops / (ceilings.matmul_tflops[dtype] * 1e12), exps / EXP_RATE,
                     moved / (ceilings.copy_tbps * 1e12))


def grad_step(fn, hidden, emb, targets):
    """The step every benchmark times: `fn`'s loss forward, and backward to both inputs."""
    def step():
        return torch.autograd.grad(fn(hidden, emb, targets), (hidden, emb))
    return step


def median_ms(step) -> float:
    """`do_bench`'s median, with the warm-up and repeats all benchmarks here use."""
    return triton.testing.do_bench(step, warmup=25, rep=100, return_mode="median")


def run(step, limit_ms: float) -> tuple[float, float, float]:
    """(median ms, peak MB above the inputs, workspace MB) of a `grad_step`."""

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    grads = step()
    torch.cuda.synchronize()
    first = (time.perf_counter() - started) * 1e3
    peak = torch.cuda.max_memory_allocated() - base
    outputs = sum(g.numel() * g.element_size() for g in grads)
    del grads
    if first > limit_ms:  # too slow for do_bench's many repeats: a few timed calls
        times = []
        for _ in range(3):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        ms = sorted(times)[1]
    else:
        ms = median_ms(step)
    return ms, peak / 2**20, (peak - outputs) / 2**20


def sampled_impls(tokens: int, negatives: int, catalog: int, per_position: bool,
                  tile: int = TILE):
    generator = torch.Generator(device="cuda").manual_seed(0)
    shared = torch.randint(1, catalog + 1, (negatives,), device="cuda", generator=generator)
    tiles = torch.randint(1, catalog + 1, (triton.cdiv(tokens, tile), negatives),
                          device="cuda", generator=generator)
    impls = {
        ("ours", "tile (in-kernel)"): lambda h, e, t: cce_minus(
            h, e, t, InKernelNegatives(negatives, "tile", tile, seed=0)),
        ("ours", "tile"): lambda h, e, t: cce_minus(h, e, t, tiles, tile_size=tile),
        ("torch", "tile"): lambda h, e, t: reference.ce_minus(h, e, t, tiles, tile_size=tile),
        ("ours", "shared"): lambda h, e, t: cce_minus(h, e, t, shared),
        ("torch", "shared"): lambda h, e, t: reference.ce_minus(h, e, t, shared),
    }
    if per_position:
        ids = torch.randint(1, catalog + 1, (tokens, negatives), device="cuda",
                            generator=generator)
        impls[("ours", "per_position (in-kernel)")] = lambda h, e, t: cce_minus(
            h, e, t, InKernelNegatives(negatives, "per_position", seed=0))
        impls[("ours", "per_position")] = lambda h, e, t: cce_minus(h, e, t, ids)
        impls[("torch", "per_position")] = lambda h, e, t: reference.ce_minus(h, e, t, ids)
    return impls


def full_impls():
    impls = {("ours", "full"): cce, ("torch", "full"): reference.ce}
    try:
        from cut_cross_entropy import linear_cross_entropy

        impls[("apple-cce", "full")] = lambda h, e, t: linear_cross_entropy(
            h, e[1:], torch.where(t == 0, -100, t - 1))
    except ImportError:
        pass
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        impls[("liger", "full")] = lambda h, e, t: liger_fused_linear_cross_entropy(
            h, e[1:], torch.where(t == 0, -100, t - 1))
    except ImportError:
        pass
    return impls


def inputs(dtype: torch.dtype, tokens: int, dim: int, catalog: int):
    """Hidden states and item table (leaves needing gradients, entries of size about
    d**-0.25 so scores are O(1)) and targets, the same for every benchmark run."""
    generator = torch.Generator(device="cuda").manual_seed(1)
    hidden = (torch.randn(tokens, dim, device="cuda", generator=generator)
              / dim**0.25).to(dtype).requires_grad_()
    emb = (torch.randn(catalog + 1, dim, device="cuda", generator=generator)
           / dim**0.25).to(dtype).requires_grad_()
    targets = torch.randint(1, catalog + 1, (tokens,), device="cuda", generator=generator)
    return hidden, emb, targets


def measure(row: Row, fn, limit_ms: float) -> Row:
    try:
        hidden, emb, targets = inputs(DTYPES[row.dtype], row.tokens, row.dim, row.catalog)
        row.ms, row.peak_mb, row.workspace_mb = run(grad_step(fn, hidden, emb, targets),
                                                    limit_ms)
        row.round_ms = [row.ms]
    except torch.OutOfMemoryError:
        row.status = "OOM"
    except Exception as error:  # a peer that does not support the case: record, go on
        row.status = f"error: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    torch.cuda.empty_cache()
    return row


def retime(rows: list[Row], fns: list, rounds: int, limit_ms: float) -> None:
    """More rounds of `do_bench` over the rows of one point, the implementations taking turns,
    so that a drift of the host's speed (small steps are bound by launches: step_time.py)
    falls on all of them alike; each row's `ms` becomes the median of its rounds."""
    for _ in range(rounds - 1):
        for row, fn in zip(rows, fns, strict=True):
            if row.status != "ok" or row.ms > limit_ms:
                continue
            hidden, emb, targets = inputs(DTYPES[row.dtype], row.tokens, row.dim, row.catalog)
            row.round_ms.append(median_ms(grad_step(fn, hidden, emb, targets)))
            del hidden, emb, targets
            torch.cuda.empty_cache()
    for row in rows:
        if row.round_ms:
            row.ms = statistics.median(row.round_ms)


def measure_point(impls: dict, ceilings: Ceilings, args: argparse.Namespace, kind: str,
                  dtype: str, tokens: int, negatives: int, dim: int, catalog: int) -> list[Row]:
    """One row per implementation at one point: first timing and peak, then `args.rounds`."""
    rows = []
    for (impl, mode), fn in impls.items():
        row = Row(kind, impl, mode, dtype, tokens, negatives, dim, catalog)
        row.floor_ms = floor_ms(ceilings, dtype, tokens, negatives, dim, catalog)
        rows.append(measure(row, fn, args.slow_ms))
    retime(rows, list(impls.values()), args.rounds, args.slow_ms)
    for row in rows:
        print(asdict(row), flush=True)
    return rows


def gpu_slug() -> str:
    name = torch.cuda.get_device_name().lower()
    return next((chip for chip in ("h200", "h100", "a100", "l4") if chip in name),
                name.replace(" ", "-"))


def write(rows: list[Row], meta: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / "-".join(filter(None, ["kernels", meta["gpu_slug"], meta["tag"]]))
    stem.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    lines = [f"# Kernel benchmark on {meta['gpu']} ({meta['date']})", "",
             f"`{meta['command']}`; torch {meta['torch']}, triton {meta['triton']}. "
             f"Measured ceilings: {meta['ceilings']}. Time: median forward+backward; "
             "peak: max_memory_allocated above the inputs; workspace: peak less the two "
             "returned gradients; floor: roofline of our passes, the largest of matrix work "
             "(GFLOP), exponentials (G) and bytes (MB) over the measured rates and "
             f"{EXP_RATE / 1e12:.1f} T exponentials/s (see benchmarks/kernels.py).",
             " Rounds: the fastest and slowest of the timing rounds, where there were several.",
             "", "| kind | impl | mode | dtype | tokens | N | d | catalog | ms | rounds ms | "
             "floor ms | GFLOP | G exp | MB moved | peak MB | workspace MB | status |",
             "|" + "---|" * 17]
    for r in rows:
        flops, exps, moved = roofline(r.dtype, r.tokens, r.negatives, r.dim, r.catalog)
        cells = [r.kind, r.impl, r.mode, r.dtype, r.tokens, r.negatives, r.dim, r.catalog,
                 _fmt(r.ms), _spread(r.round_ms), _fmt(r.floor_ms), _fmt(flops / 1e9),
                 _fmt(exps / 1e9), _fmt(moved / 1e6), _fmt(r.peak_mb), _fmt(r.workspace_mb),
                 r.status]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _spread(times: list[float] | None) -> str:
    if not times or len(times) < 2:
        return "-"
    return f"{_fmt(min(times))}-{_fmt(max(times))}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}" if value < 100 else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the results' file names")
    parser.add_argument("--tokens", type=int, nargs="+", default=[8192, 32768, 131072])
    parser.add_argument("--negatives", type=int, nargs="+", default=[128, 512, 2048, 8192])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--catalogs", type=int, nargs="+", default=[26_744, 1_000_000])
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=DTYPES)
    parser.add_argument("--kinds", nargs="+", default=["sampled", "full"])
    parser.add_argument("--extra", nargs="*", default=[],
                        help="extra sampled points as DTYPE:TOKENS:N:D:CATALOG")
    parser.add_argument("--slow-ms", type=float, default=300.0,
                        help="time a call this slow 3 times instead of with do_bench")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time each point this many times, implementations in turn, "
                             "and keep the median")
    parser.add_argument("--max-per-position", type=float, default=2**24,
                        help="skip per-position modes above this tokens x N")
    parser.add_argument("--modes", nargs="*", default=None,
                        help="only these sampled modes, as the table names them (e.g. "
                             "per_position 'tile (in-kernel)'), default all")
    parser.add_argument("--tile-size", type=int, default=TILE,
                        help="tokens per tile of the tile modes (the library's default is "
                             "kernels.config.DEFAULT_TILE_SIZE)")
    parser.add_argument("--impls", nargs="*", default=None,
                        help="only these implementations (ours, torch, apple-cce, liger)")
    parser.add_argument("--ours-label", default="ours",
                        help="our rows' name, e.g. a commit's when the cce_tune on the path "
                             "is that commit's kernels")
    parser.add_argument("--cublas-min-tile", type=int, default=None,
                        help="smallest tile whose float32 products cuBLAS makes "
                             "(kernels.config.CUBLAS_MIN_TILE), default the library's")
    parser.add_argument("--cublas-chunk-mib", type=int, default=None,
                        help="MiB of each chunk's float32 products (and gathered rows) that "
                             "cuBLAS makes (kernels.config.CUBLAS_CHUNK_BYTES), default the "
                             "library's")
    parser.add_argument("--render", type=Path, default=None,
                        help="only rewrite the Markdown of this results JSON, no GPU needed")
    args = parser.parse_args()
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        write([Row(**row) for row in saved["rows"]], saved["meta"], args.render.parent)
        return

    if args.cublas_min_tile is not None:
        kernel_config.CUBLAS_MIN_TILE = args.cublas_min_tile
    if args.cublas_chunk_mib is not None:
        kernel_config.CUBLAS_CHUNK_BYTES = args.cublas_chunk_mib * 2**20
    ceilings = measure_ceilings()
    meta = {"gpu": torch.cuda.get_device_name(), "gpu_slug": gpu_slug(), "tag": args.tag,
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "triton": triton.__version__, "command": command_line("benchmarks.kernels", args),
            "ceilings": {"matmul_tflops": {k: round(v) for k, v in
                                           ceilings.matmul_tflops.items()},
                         "copy_tbps": round(ceilings.copy_tbps, 2)}}
    print(meta)
    points = [(d, t, n, dim, c) for d in args.dtypes for c in args.catalogs
              for dim in args.dims for t in args.tokens for n in args.negatives]
    points += [(d, int(t), int(n), int(dim), int(c))
               for d, t, n, dim, c in (e.split(":") for e in args.extra)]
    rows: list[Row] = []
    if "sampled" in args.kinds:
        for dtype, tokens, negatives, dim, catalog in points:
            impls = {key: fn for key, fn in sampled_impls(
                tokens, negatives, catalog, tokens * negatives <= args.max_per_position,
                args.tile_size).items()
                if args.modes is None or key[1] in args.modes}
            impls = _chosen(impls, args)
            rows += measure_point(impls, ceilings, args, "sampled", dtype, tokens, negatives,
                                  dim, catalog)
            write(rows, meta, args.out_dir)
    if "full" in args.kinds:
        for dtype, tokens, dim, catalog in sorted({(p[0], p[1], p[3], p[4]) for p in points}):
            rows += measure_point(_chosen(full_impls(), args), ceilings, args, "full", dtype,
                                  tokens, catalog, dim, catalog)
            write(rows, meta, args.out_dir)
    print_table(rows)


def _chosen(impls: dict, args: argparse.Namespace) -> dict:
    """The implementations `--impls` names, ours under `--ours-label`."""
    return {(args.ours_label if impl == "ours" else impl, mode): fn
            for (impl, mode), fn in impls.items() if args.impls is None or impl in args.impls}


def command_line(module: str, args: argparse.Namespace, omit: tuple = ("out_dir",)) -> str:
    """The command that reproduces a run of `module`, for the results' header."""
    words = [f"python -m {module}"]
    for key, value in vars(args).items():
        if key in omit or value is None or value is False or value in ("", []):
            continue
        if value is True:  # a store_true flag
            words.append(f"--{key.replace('_', '-')}")
        else:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            words.append(f"--{key.replace('_', '-')} {shown}")
    return " ".join(words)


def print_table(rows: list[Row]) -> None:
    print(f"{'kind':8} {'impl':9} {'mode':24} {'dtype':5} {'tokens':>7} {'N':>7} {'d':>4} "
          f"{'catalog':>8} {'ms':>8} {'floor':>7} {'work MB':>9} status")
    for r in rows:
        print(f"{r.kind:8} {r.impl:9} {r.mode:24} {r.dtype:5} {r.tokens:>7} {r.negatives:>7} "
              f"{r.dim:>4} {r.catalog:>8} {_fmt(r.ms):>8} {_fmt(r.floor_ms):>7} "
              f"{_fmt(r.workspace_mb):>9} {r.status}")


if __name__ == "__main__":
    main()
