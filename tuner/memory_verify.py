"""`cce-tune verify-memory`: the memory model against real training steps on the GPU.

Each grid point builds the trainer's own `Setup` (model, loss, Adam, the dataset's device
arrays) on random sequences, takes a warm-up step, then measures the peak allocated bytes of
each moment of a second step (forward, backward, optimizer step) and of an evaluation pass,
and sets them beside the estimate. Points the model says need more than the GPU has are
recorded as such and not attempted. `calibrate` fits the model's free coefficients to the
measured points.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace

import numpy as np
import torch

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.memory import DatasetShape, MemoryProfile, estimate
from cce_tune.tuner.memory_grid import GridPoint
from cce_tune.tuner.sequences.graphed_steps import GraphedSteps
from cce_tune.tuner.sequences.train import Setup
from cce_tune.tuner.units import format_bytes

PHASES = ("forward", "backward", "optimizer step", "evaluation")


def gpu_slug(name: str) -> str:
    """A GPU's name as results files carry it: 'NVIDIA H200' -> 'h200'."""
    return "-".join(name.lower().replace("nvidia", "").split())


def random_sequences(shape: DatasetShape, length: int, seed: int = 0) -> SequenceData:
    """`shape.num_users` users with `length` + 2 random items each: full windows, all splits."""
    rng = np.random.default_rng(seed)
    per_user = length + 3
    offsets = np.arange(shape.num_users + 1, dtype=np.int64) * per_user
    items = rng.integers(1, shape.num_items + 1, shape.num_users * per_user, dtype=np.int32)
    return SequenceData("random", shape.num_items, offsets, items)


def measure(point: GridPoint, device_bytes: int,
            profile: MemoryProfile | None = None) -> dict:
    """One grid point's estimate and, if the GPU can hold it, its measured peaks."""
    config, shape = point.config(), point.shape()
    row = estimate_row(point, profile)
    if row["estimate_total"] > device_bytes:
        return {**row, "status": "not attempted: estimate exceeds the GPU"}
    data = random_sequences(shape, point.max_len)
    setup = None
    try:
        setup = Setup(config, data)
        batch = torch.arange(point.batch_size, device=setup.device)
        width = step_width(point)
        setup.model.train()
        if config.cuda_graphs:
            graphed = _measure_graphed(setup, batch, width or point.max_len, data)
            return {**row, **graphed,
                    "error": row["estimate_allocated"] / graphed["measured_allocated"] - 1}
        setup.step(batch, width)  # warm-up: Adam state, cuBLAS workspaces, compiled kernels
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()  # params, Adam state, data, last grads
        # As the forward does first: else its peak would read the warm-up's gradients (a
        # moment the optimizer step's, gradients and scratch, always exceeds).
        setup.optimizer.zero_grad(set_to_none=True)
        measured = {}
        reserved = 0

        def peak_of(name: str, action: Callable[[], object]) -> object:
            nonlocal reserved
            torch.cuda.reset_peak_memory_stats()
            result = action()
            torch.cuda.synchronize()
            measured[name] = torch.cuda.max_memory_allocated()
            reserved = max(reserved, torch.cuda.max_memory_reserved())
            return result

        loss = peak_of("forward", lambda: setup.forward(batch, width))
        peak_of("backward", loss.backward)
        del loss
        peak_of("optimizer step", setup.optimizer.step)
        setup.optimizer.zero_grad(set_to_none=True)  # as evaluate does, before the peak reset
        peak_of("evaluation", lambda: setup.evaluate("valid", data))
        peak = max(measured.values())
        return {**row, "status": "measured", "measured_allocated": peak,
                "measured_reserved": reserved, "context": _context(),
                "measured_baseline": baseline,
                **{f"measured_{_key(p)}": measured[p] for p in PHASES},
                "measured_phase": max(measured, key=measured.get),
                "error": row["estimate_allocated"] / peak - 1}
    except torch.cuda.OutOfMemoryError:
        return {**row, "status": "out of memory"}
    finally:
        setup = None  # free the model before the next point
        gc.collect()
        torch.cuda.empty_cache()


def step_width(point: GridPoint) -> int | None:
    """What the point's step is given as its width: packed, the tokens the estimate sizes it
    by (its random users' full windows, no lengths being known), the most a batch of them
    holds; else None, the full windows."""
    if point.batches != "packed":
        return None
    return point.shape().packed_tokens(point.batch_size, point.max_len)


def _measure_graphed(setup: Setup, batch: torch.Tensor, width: int,
                     data: SequenceData) -> dict:
    """The peak of steps replayed from a CUDA graph as training runs them
    (`GraphedSteps`: an eager step, the capture, a replay) and of the evaluation that
    borrows the graph's pool: one peak over all, as a graph's memory stays held."""
    runner = GraphedSteps(setup)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        runner.step(batch, width, 1.0)
    runner.evaluate("valid", data)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {"status": "measured", "measured_allocated": peak,
            "measured_reserved": torch.cuda.max_memory_reserved(), "context": _context(),
            "measured_phase": "graphed steps and evaluation"}


def _context() -> int:
    """Bytes on the GPU outside the caching allocator: the CUDA context and kernel images."""
    free, total = torch.cuda.mem_get_info()
    return total - free - torch.cuda.memory_reserved()


def estimate_row(point: GridPoint, profile: MemoryProfile | None = None) -> dict:
    """The point and the model's estimate of it, phase by phase."""
    breakdown = estimate(point.config(), point.shape(), profile)
    return {**asdict(point), "group": point.group(), "estimate_phase": breakdown.phase,
            "estimate_allocated": breakdown.peak_allocated,
            "estimate_reserved": breakdown.peak_reserved, "estimate_total": breakdown.total,
            **{f"estimate_{_key(p)}": breakdown.phases[p] for p in PHASES}}


def reestimate(row: dict, profile: MemoryProfile | None = None) -> dict:
    """A measured row with the current model's estimate: what a change to the model does to
    points already measured (the measurements stay as they were)."""
    point = GridPoint(**{k: row[k] for k in GridPoint.__dataclass_fields__ if k in row})
    out = {**row, **estimate_row(point, profile)}
    if row.get("status") == "measured":
        out["error"] = out["estimate_allocated"] / row["measured_allocated"] - 1
    return out


def _key(phase: str) -> str:
    return phase.replace(" ", "_")


def run_grid(points: Iterable[GridPoint], on_row: Callable[[dict], None] | None = None,
             profile: MemoryProfile | None = None) -> list[dict]:
    device_bytes = torch.cuda.get_device_properties(0).total_memory
    rows = []
    for point in points:
        started = time.perf_counter()
        row = measure(point, device_bytes, profile)
        row["seconds"] = round(time.perf_counter() - started, 2)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def errors(rows: list[dict], profile: MemoryProfile | None = None) -> list[float]:
    """Relative errors of the (re-)estimated peaks at the measured points."""
    out = []
    for row in rows:
        if row.get("status") != "measured":
            continue
        point = GridPoint(**{k: row[k] for k in GridPoint.__dataclass_fields__ if k in row})
        if profile is None:
            predicted = row["estimate_allocated"]
        else:
            predicted = estimate(point.config(), point.shape(), profile).peak_allocated
        out.append(predicted / row["measured_allocated"] - 1)
    return out


def calibrate(rows: list[dict], gpu: str, torch_version: str) -> MemoryProfile:
    """Scales of the activation and loss terms that minimise the median error while no point
    is under-estimated by more than 2 %; slack (over the points of a GiB and more) and
    context from what was measured."""
    measured = [row for row in rows if row.get("status") == "measured"]
    if not measured:
        raise ValueError("no measured points to calibrate on")
    base = MemoryProfile(gpu=gpu, torch=torch_version, points=len(measured))
    scales = [round(0.80 + 0.02 * i, 2) for i in range(26)]
    best, best_key = base, None
    for activation, loss in itertools.product(scales, scales):
        candidate = replace(base, activation_scale=activation, loss_scale=loss)
        errs = errors(measured, candidate)
        worst = min(errs)
        key = (worst < -0.02, -worst if worst < -0.02 else 0,
               statistics.median(abs(e) for e in errs))
        if best_key is None or key < best_key:
            best, best_key = candidate, key
    # The allocator's slack over points of a GiB and more: on a small point a few blocks'
    # rounding is a large share of nothing (1.88x at 0.1 GB, graphed), and budgets are GBs.
    large = [row for row in measured if row["measured_allocated"] >= 1 << 30] or measured
    slack = max(row["measured_reserved"] / row["measured_allocated"] - 1 for row in large)
    context = max(row["context"] for row in measured)
    return replace(best, fragmentation=round(slack + 0.01, 3), context_bytes=int(context))


def group_table(rows: list[dict]) -> list[str]:
    """Markdown rows per memory group and precision: the bar is met in each, not on
    average."""
    groups: dict[tuple[str, bool], list[dict]] = {}
    for row in rows:
        if row.get("status") == "measured":
            groups.setdefault((row.get("group") or row["loss"], row["bf16"]), []).append(row)
    lines = ["| group | bf16 | points | median abs. error | worst under | under-estimated | "
             "worst reserved / allocated |", "|" + "---|" * 7]
    for (group, bf16), members in sorted(groups.items()):
        errs = [row["error"] for row in members]
        slack = max(row["measured_reserved"] / row["measured_allocated"] for row in members)
        lines.append(f"| {group} | {'yes' if bf16 else 'no'} | {len(members)} | "
                     f"{statistics.median(abs(e) for e in errs):.2%} | "
                     f"{min(min(errs), 0.0):+.2%} | "
                     f"{sum(e < 0 for e in errs)} of {len(errs)} | {slack:.3f} |")
    return lines


def summary(rows: list[dict], gpu: str, command: str, allocator: str,
            calibrated: MemoryProfile | None = None) -> str:
    """The Markdown summary: bars first, then each group, then every point."""
    errs = errors(rows)
    counts = {status: sum(row["status"] == status for row in rows)
              for status in dict.fromkeys(row["status"] for row in rows)}
    lines = [f"# Memory model against measurement: {gpu}", "",
             f"Command: `{command}`", "",
             f"Written {time.strftime('%Y-%m-%d')}; measured with torch "
             f"{rows[0].get('torch', '?') if rows else '?'}. Allocator: `{allocator}`", "",
             "Points: " + ", ".join(f"{n} {status}" for status, n in counts.items()), ""]
    if errs:
        lines += [
            "| | uncalibrated |" + (" calibrated |" if calibrated else ""),
            "|---|---|" + ("---|" if calibrated else ""),
        ]
        stats = [("median abs. error", lambda e: statistics.median(abs(x) for x in e)),
                 ("worst under-estimate", lambda e: min(min(e), 0.0)),
                 ("worst over-estimate", lambda e: max(max(e), 0.0)),
                 ("share under-estimated", lambda e: sum(x < 0 for x in e) / len(e))]
        for name, stat in stats:
            cells = [f"{stat(errs):+.2%}"]
            if calibrated:
                cells.append(f"{stat(errors(rows, calibrated)):+.2%}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", *group_table(rows), ""]
    lines += ["| loss | mode | B | N | L | d | catalog | bf16 | estimate | measured | error | "
              "reserved | est. phase | meas. phase | status |", "|" + "---|" * 15]
    for row in rows:
        measured = row.get("measured_allocated")
        mode = (row.get("group") or row["loss"]).removeprefix(row["loss"]).strip() or "-"
        cells = [row["loss"], mode, row["batch_size"], row["negatives"], row["max_len"],
                 row["hidden"], f"{row['num_items']:,}", "yes" if row["bf16"] else "no",
                 format_bytes(row["estimate_allocated"]),
                 format_bytes(measured) if measured else "-",
                 f"{row['error']:+.1%}" if measured else "-",
                 format_bytes(row["measured_reserved"]) if measured else "-",
                 row["estimate_phase"], row.get("measured_phase", "-"), row["status"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"
