"""Issue 19's bar for sparse item gradients: the memory and time of a loss step (forward,
backward, optimizer step of the item table) with the table's gradient dense (Adam) and sparse
(SparseAdam), at catalogs of millions.

    python -m benchmarks.sparse_item_grad --out-dir benchmarks/results

As the trainer does it: a float32 table, cast to bf16 for the fused loss (`cce_minus`, tile
or shared negatives drawn in the kernel) where the gradient is dense, read as it is (the
kernels convert the rows they load) where it is sparse; hidden states in bf16. The sparse
gradient has an entry per position the batch names where those are fewer than the rows:
tile negatives name about tokens / 128 x N of them (4.3 M at the bar's point), shared ones
N. A first step
allocates the optimizer's state; the second is measured: its peak above what was allocated
before it (table, state, inputs), and its time. The bar: the sparse peak at most 1/10 of
the dense one at 131,072 tokens, N = 4,095, d = 256, 1M and 10M items. Results:
sparse-item-grad-<gpu>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.kernels import command_line, gpu_slug
from cce_tune.kernels import InKernelNegatives, cce_minus


def step_figures(catalog: int, mode: str, tokens: int, negatives: int, dim: int,
                 sparse: bool, device: torch.device) -> dict:
    """Peak above the step's start (bytes, CUDA only) and seconds of the second step."""
    table = torch.nn.Parameter(torch.randn(catalog + 1, dim, device=device) * dim**-0.5)
    optimizer = (torch.optim.SparseAdam([table]) if sparse
                 else torch.optim.Adam([table], fused=device.type == "cuda"))
    hidden = torch.randn(tokens, dim, device=device, dtype=torch.bfloat16)
    targets = torch.randint(1, catalog + 1, (tokens,), device=device)
    drawn = InKernelNegatives(negatives, mode=mode, tile_size=128)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        rows = table if sparse else table.to(dtype)  # as kernels.losses gives them
        cce_minus(hidden.to(dtype), rows, targets, drawn, sparse_item_grad=sparse).backward()
        optimizer.step()

    step()  # the optimizer's state
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0
    started = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() - before if cuda else None
    return {"catalog": catalog, "mode": mode, "sparse": sparse, "step_ms": seconds * 1e3,
            "peak_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogs", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--modes", nargs="+", default=["tile", "shared"])
    parser.add_argument("--tokens", type=int, default=131_072)
    parser.add_argument("--negatives", type=int, default=4095)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out-dir", type=Path)
    args = parser.parse_args()

    device = torch.device(args.device)
    rows = []
    for catalog in args.catalogs:
        for mode in args.modes:
            for sparse in (False, True):
                rows.append(step_figures(catalog, mode, args.tokens, args.negatives, args.dim,
                                         sparse, device))
                print(rows[-1], flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    date = time.strftime("%Y-%m-%d")
    text = markdown(rows, command_line("benchmarks.sparse_item_grad", args), f"{name} ({date})")
    print(text)
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        stem = args.out_dir / f"sparse-item-grad-{gpu_slug() if device.type == 'cuda' else 'cpu'}"
        stem.with_suffix(".json").write_text(json.dumps(
            {"command": command_line("benchmarks.sparse_item_grad", args), "device": name,
             "date": date, "torch": torch.__version__, "rows": rows}, indent=1))
        stem.with_suffix(".md").write_text(text)


def markdown(rows: list[dict], command: str, device: str) -> str:
    lines = [f"# Item gradients dense and sparse: {device}", "", f"    {command}", "",
             "| catalog | negatives | gradient | step ms | peak above the step's start | "
             "sparse / dense |", "|---|---|---|---|---|---|"]
    dense = {(row["catalog"], row["mode"]): row for row in rows if not row["sparse"]}
    for row in rows:
        peak = row["peak_bytes"]
        base = dense[row["catalog"], row["mode"]]["peak_bytes"]
        ratio = f"{peak / base:.3f}" if row["sparse"] and peak and base else ""
        lines.append(f"| {row['catalog']:,} | {row['mode']} | "
                     f"{'sparse' if row['sparse'] else 'dense'} | "
                     f"{row['step_ms']:.1f} | "
                     + (f"{peak / 2**30:.2f} GiB" if peak is not None else "-")
                     + f" | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
