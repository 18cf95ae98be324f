"""Each loss's declared memory (`kernels.memory.loss_memory`) against what its code allocates.

    python -m benchmarks.loss_memory --out-dir benchmarks/results

Runs the trainer's loss module alone, as the trainer calls it (float32 hidden states from the
final norm, the float32 item table, bf16 autocast or not), for every loss x negative layout x
id source, and measures the peak above the inputs in the forward and in the backward. The
declaration's counterparts: forward = saved + forward_extra; backward = saved +
backward_extra (which holds the item table's gradient from the scatter or the kernels).
With `--trace`, the allocations alive at each peak are listed by size, from the caching
allocator's history: what a wrong declaration forgot. Results: loss-memory-<gpu>.json, .md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cce_tune.kernels.config import SINGLE_NEGATIVE, LossConfig
from cce_tune.kernels.losses import make_loss
from cce_tune.kernels.memory import loss_memory
from cce_tune.tuner.memory_grid import memory_group
from cce_tune.tuner.memory_verify import gpu_slug
from cce_tune.tuner.units import format_bytes

CASES = [  # loss, negative mode, in-kernel ids
    ("ce", "shared", False), ("cce", "shared", False),
    ("ce_minus", "shared", False), ("ce_minus", "per_position", False),
    ("ce_minus", "tile", False), ("bce", "per_position", False),
    ("gbce", "shared", False), ("gbce", "per_position", False), ("gbce", "tile", False),
    ("cce_minus", "shared", False), ("cce_minus", "per_position", False),
    ("cce_minus", "tile", False), ("cce_minus", "shared", True),
    ("cce_minus", "per_position", True), ("cce_minus", "tile", True),
]


@dataclass
class Row:
    group: str
    bf16: bool
    tokens: int
    negatives: int
    dim: int
    catalog: int
    declared_forward: int
    measured_forward: int
    declared_backward: int
    measured_backward: int
    forward_alive: list[int] | None = None  # largest allocations alive at the peak, bytes
    backward_alive: list[int] | None = None

    @property
    def errors(self) -> tuple[float, float]:
        return (self.declared_forward / self.measured_forward - 1,
                self.declared_backward / self.measured_backward - 1)


def alive_at_peak(trace: list[dict], top: int = 12) -> list[int]:
    """Sizes of the largest allocations alive when the traced bytes peaked."""
    alive: dict[int, int] = {}
    total = peak = 0
    at_peak: list[int] = []
    for event in trace:
        action, addr, size = event.get("action"), event.get("addr"), event.get("size", 0)
        if action == "alloc":
            alive[addr] = size
            total += size
            if total > peak:
                peak, at_peak = total, sorted(alive.values(), reverse=True)[:top]
        elif action == "free_completed" and addr in alive:
            total -= alive.pop(addr)
    return at_peak


def measure(loss: str, mode: str, in_kernel: bool, bf16: bool, tokens: int, negatives: int,
            dim: int, catalog: int, trace: bool) -> Row:
    config = LossConfig(loss, num_negatives=1 if loss in SINGLE_NEGATIVE else negatives,
                        negative_mode=mode, tile_size=128,  # as the committed runs
                        in_kernel_negatives=in_kernel)
    declared = loss_memory(config, tokens, catalog, dim, bf16)
    loss_fn = make_loss(config, catalog)
    generator = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(tokens, dim, device="cuda", generator=generator, requires_grad=True)
    table = torch.nn.Parameter(0.1 * torch.randn(catalog + 1, dim, device="cuda",
                                                 generator=generator))
    targets = torch.randint(1, catalog + 1, (tokens,), device="cuda", generator=generator)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
    with autocast:  # warm-up: compiled kernels and library workspaces stay out of the peaks
        loss_fn(hidden, table, targets).backward()
    hidden.grad = table.grad = None
    torch.cuda.synchronize()
    alive: dict[str, list[int]] = {}

    def peak_of(phase: str, action) -> tuple[object, int]:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        if trace:
            torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="python")
        result = action()
        torch.cuda.synchronize()
        if trace:
            events = torch.cuda.memory._snapshot()["device_traces"][0]
            torch.cuda.memory._record_memory_history(enabled=None)
            alive[phase] = alive_at_peak(events)
        return result, torch.cuda.max_memory_allocated() - base

    def forward():
        with autocast:
            return loss_fn(hidden, table, targets)

    inputs = torch.cuda.memory_allocated()
    value, forward_peak = peak_of("forward", forward)
    saved = torch.cuda.memory_allocated() - inputs
    _, backward_peak = peak_of("backward", value.backward)
    return Row(memory_group(loss, mode, in_kernel), bf16, tokens, negatives, dim, catalog,
               declared.saved + declared.forward_extra, forward_peak,
               declared.saved + declared.backward_extra, saved + backward_peak,
               alive.get("forward"), alive.get("backward"))


def markdown(rows: list[Row], gpu: str, command: str) -> str:
    lines = [f"# Loss memory, declared against allocated: {gpu}", "",
             f"Command: `{command}`; {time.strftime('%Y-%m-%d')}, torch {torch.__version__}.",
             "", "Bytes above the inputs (hidden states, item table, targets). Backward counts "
             "what the forward saved and the item table's gradient.", "",
             "| loss | bf16 | tokens | N | d | catalog | forward declared | measured | error "
             "| backward declared | measured | error |", "|" + "---|" * 12]
    for row in rows:
        forward_error, backward_error = row.errors
        lines.append(
            f"| {row.group} | {'yes' if row.bf16 else 'no'} | {row.tokens:,} | "
            f"{row.negatives:,} | {row.dim} | {row.catalog:,} | "
            f"{format_bytes(row.declared_forward)} | {format_bytes(row.measured_forward)} | "
            f"{forward_error:+.1%} | {format_bytes(row.declared_backward)} | "
            f"{format_bytes(row.measured_backward)} | {backward_error:+.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tokens", type=int, default=12_800)
    parser.add_argument("--negatives", type=int, default=512)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--catalog", type=int, default=26_744)
    parser.add_argument("--trace", action="store_true",
                        help="list the largest allocations alive at each peak")
    args = parser.parse_args()
    gpu = torch.cuda.get_device_name(0)
    rows = []
    for (loss, mode, in_kernel), bf16 in ((case, bf16) for case in CASES
                                          for bf16 in (False, True)):
        row = measure(loss, mode, in_kernel, bf16, args.tokens, args.negatives, args.dim,
                      args.catalog, args.trace)
        rows.append(row)
        forward_error, backward_error = row.errors
        print(f"{row.group:>28} {'bf16' if bf16 else 'fp32'}  forward "
              f"{format_bytes(row.measured_forward):>11} {forward_error:+6.1%}  backward "
              f"{format_bytes(row.measured_backward):>11} {backward_error:+6.1%}", flush=True)
        if args.trace:
            print(f"{'':>30} forward alive {row.forward_alive}\n"
                  f"{'':>30} backward alive {row.backward_alive}", flush=True)
    slug = gpu_slug(gpu)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"loss-memory-{slug}"
    stem.with_suffix(".json").write_text(json.dumps(
        {"gpu": gpu, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
         "rows": [asdict(row) for row in rows]}, indent=1) + "\n")
    command = "python -m benchmarks.loss_memory " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if k not in ("out_dir", "trace"))
    stem.with_suffix(".md").write_text(markdown(rows, gpu, command))
    print(f"written: {stem}.json, .md")


if __name__ == "__main__":
    main()
