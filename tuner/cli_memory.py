"""`cce-tune estimate` and `cce-tune verify-memory`: the memory model from the command line."""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from cce_tune.tuner.allocator import allocator_setting
from cce_tune.tuner.arguments import data_options, memory_size
from cce_tune.tuner.data import counts, load_prepared
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families import get, names
from cce_tune.tuner.memory import (
    LAUNCH_MARGIN,
    SOLVE_LIMIT,
    DatasetShape,
    MemoryProfile,
    check_described,
    estimate,
    format_bytes,
    packs,
    solve,
    with_knob,
)
from cce_tune.tuner.memory_grid import GRIDS
from cce_tune.tuner.sequences.config import TrainConfig, data_parallel_refusal, resolve_auto


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory-profile", type=Path,
                        help="coefficients fitted by `verify-memory --calibrate` "
                             "(default: the uncalibrated model)")


def add_estimate_arguments(parser: argparse.ArgumentParser) -> None:
    """`cce-tune estimate`'s own arguments, beside the model family's."""
    group = parser.add_argument_group("estimate")
    group.add_argument("--gpu-mem", type=memory_size,
                       help="a budget such as 40GB or 40GiB: say whether it fits")
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_profile_argument(group)


def dataset_shape(args: argparse.Namespace) -> DatasetShape:
    if args.num_users and args.num_items:
        return DatasetShape(args.num_users, args.num_items)
    users, items = counts(data_options(args))
    return DatasetShape(args.num_users or users, args.num_items or items)


def _solve_for_tuning(config: TrainConfig, shape: DatasetShape, budget: float, knob: str,
                      profile: MemoryProfile | None) -> int | None:
    """--solve's answer under the share of the budget a tuning run launches within (None:
    not even 1 fits there)."""
    try:
        return solve(config, shape, LAUNCH_MARGIN * budget, knob, profile)
    except CceTuneError:
        return None


def _layout(config: TrainConfig) -> str:
    """How the loss draws negatives, and where its item gradient goes, in a few words."""
    loss = config.loss
    if loss.name in ("ce", "cce"):
        return "full-catalog"
    if loss.name == "bce":  # one negative per position, whatever the mode says
        return "per-position"
    layout = loss.negative_mode.replace("_", "-")
    if loss.negative_mode == "tile":
        layout += f" {loss.tile_size}"
    if loss.in_kernel_negatives:
        layout += " in-kernel"
    return layout + (" sparse-item-grad" if loss.sparse_item_grad else "")


def run_sequence_estimate(args: argparse.Namespace, config: TrainConfig) -> None:
    """The estimate of a sequence model's training `config` on the arguments' dataset (its
    size from the cache or metadata, or --num-users / --num-items), or --solve's answer."""
    try:
        check_described(config)
    except ValueError as error:
        raise CceTuneError(str(error)) from None
    if args.solve and not args.gpu_mem:
        raise CceTuneError("--solve needs --gpu-mem, the budget to solve against")
    if args.solve and args.gpus > 1:
        raise CceTuneError("--solve solves for one GPU; leave out --gpus")
    config = resolve_auto(config, data_parallel=args.gpus > 1)
    refusal = data_parallel_refusal(config, "--gpus > 1") if args.gpus > 1 else None
    if refusal:
        raise CceTuneError(refusal)
    shape = dataset_shape(args)
    by_hand = bool(args.num_users and args.num_items)  # a dataset of no lengths known
    if packs(config) and not by_hand:
        # A packed batch is sized by its users' real lengths: the dataset's, if prepared.
        data = load_prepared(data_options(args))
        if data is not None:
            shape = replace(DatasetShape.of(data), num_users=shape.num_users,
                            num_items=shape.num_items)
    profile = MemoryProfile.load(args.memory_profile) if args.memory_profile else None
    solved = tuned = None
    if args.solve:
        solved = solve(config, shape, args.gpu_mem, args.solve, profile)
        tuned = _solve_for_tuning(config, shape, args.gpu_mem, args.solve, profile)
        config = with_knob(config, args.solve, solved)
    breakdown = estimate(config, shape, profile, gpus=args.gpus)
    if args.json:
        out = {"dataset": args.dataset, "users": shape.num_users, "items": shape.num_items,
               **breakdown.to_dict()}
        if args.gpu_mem:
            out |= {"budget": args.gpu_mem, "fits": breakdown.fits(args.gpu_mem)}
        if solved is not None:
            out["solved"] = {args.solve: solved}
            out["solved_under_margin"] = {args.solve: tuned, "margin": LAUNCH_MARGIN}
        print(json.dumps(out, indent=2))
        return
    print(f"{args.dataset}: {shape.num_users:,} users, {shape.num_items:,} items; "
          f"B={config.batch_size} L={config.max_len} d={config.hidden} "
          f"loss={config.loss.name} N={config.loss.num_negatives} {_layout(config)}"
          f"{' bf16' if config.bf16 else ''}"
          + (f"; one of {args.gpus} GPUs, data parallel" if args.gpus > 1 else ""))
    if config.batch_size > shape.num_users:
        print(f"the batch is capped at the dataset's {shape.num_users:,} users: a step never "
              "holds more")
    if packs(config):
        batch = min(config.batch_size, shape.num_users)
        tokens = shape.packed_tokens(batch, config.max_len)
        print(f"packed batches of at most {tokens:,} tokens"
              + (f" (the full windows hold {batch * config.max_len:,})" if shape.length_counts
                 else " (the users' full windows: the dataset's lengths are not read with "
                      "--num-users and --num-items)" if by_hand
                 else f" (the users' full windows: {args.dataset} is not prepared yet; "
                      f"`cce-tune data --dataset {args.dataset}` prepares it once, and its "
                      "lengths then size the batches)")
              + (", steps replayed from CUDA graphs" if config.cuda_graphs else ""))
    elif config.batches == "packed":
        print("packed batches in float32: attention runs on a padded layout, which this does "
              "not describe (it describes the widest padded step); add --bf16")
    print(breakdown.table())
    if solved == SOLVE_LIMIT:
        print(f"{args.solve} {solved:,} (the largest value tried) still fits within "
              f"{format_bytes(args.gpu_mem)}: the budget does not bind this knob")
    elif solved is not None:
        print(f"largest {args.solve} within {format_bytes(args.gpu_mem)}: {solved}")
        print(f"a tuning run launches only what is estimated under {LAUNCH_MARGIN:.0%} of its "
              f"budget (--margin): there the largest {args.solve} is {tuned or 'none'}")
    elif args.gpu_mem:
        verdict = "fits" if breakdown.fits(args.gpu_mem) else "does not fit"
        print(f"{verdict} in {format_bytes(args.gpu_mem)}")


def add_verify_parser(commands) -> None:
    parser = commands.add_parser(
        "verify-memory", help="measure real training steps on the GPU against the estimate")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--model", choices=tuple(n for n in names() if get(n).memory_grid),
                        default="sasrec",
                        help="measure this model's grid (default: sasrec)")
    models.add_argument("--grid", choices=tuple(GRIDS),
                        help="measure this grid by name (tiny: a quick check end to end)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for memory-<gpu>.csv and .md (default: benchmarks/results)")
    parser.add_argument("--tag", help="suffix of the files' names, e.g. the allocator setting")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit the model's coefficients and write memory-profile-<gpu>.json")
    parser.add_argument("--reestimate", type=Path, metavar="JSONL",
                        help="no GPU: the points a grid measured (its .jsonl) against the "
                             "current model; writes .csv and .md into --out")
    add_profile_argument(parser)


def run_verify(args: argparse.Namespace) -> None:
    args.grid = args.grid or get(args.model).memory_grid
    profile = MemoryProfile.load(args.memory_profile) if args.memory_profile else None
    started = time.perf_counter()
    if args.reestimate:
        from cce_tune.tuner.memory_verify import reestimate

        rows = [reestimate(row, profile) for row in _read_jsonl(args.reestimate)]
        gpu, torch_version = rows[0]["gpu"], rows[0]["torch"]
    else:
        rows, gpu, torch_version = _measure_grid(args, profile)
    slug, stem = _names(args, gpu)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(args.out / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    from cce_tune.tuner.memory_verify import calibrate, errors, summary

    calibrated = None
    if args.calibrate and errors(rows):
        calibrated = calibrate(rows, gpu, torch_version)
        calibrated.save(args.out / f"memory-profile-{slug}.json")
    command = "cce-tune " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "cce-tune verify-memory"
    text = summary(rows, gpu, command, rows[0]["allocator"], calibrated)
    if args.reestimate:
        text += (f"\nMeasured on {gpu} with torch {torch_version} ({args.reestimate.name}); "
                 "estimates by the current model.\n")
    else:
        text += (f"\n{time.perf_counter() - started:.0f} s for the grid; torch "
                 f"{torch_version}.\n")
    (args.out / f"{stem}.md").write_text(text)
    print(text.split("| loss |")[0])
    print(f"written: {args.out / stem}.csv, .md")


def _names(args: argparse.Namespace, gpu: str) -> tuple[str, str]:
    """The GPU's slug and the results' file stem in --out (which this creates)."""
    from cce_tune.tuner.memory_verify import gpu_slug

    slug = gpu_slug(gpu)
    stem = f"memory-{slug}" + ("" if args.grid == "default" else f"-{args.grid}")
    args.out.mkdir(parents=True, exist_ok=True)
    return slug, stem + (f"-{args.tag}" if args.tag else "")


def _read_jsonl(path: Path) -> list[dict]:
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise CceTuneError(f"--reestimate {path}: no such file") from None
    except json.JSONDecodeError as error:
        raise CceTuneError(f"--reestimate {path}: not a verify-memory .jsonl ({error})") from None
    if not rows or "gpu" not in rows[0]:
        raise CceTuneError(f"--reestimate {path}: not a verify-memory .jsonl (no gpu column)")
    return rows


def _measure_grid(args: argparse.Namespace,
                  profile: MemoryProfile | None) -> tuple[list[dict], str, str]:
    import torch

    from cce_tune.tuner.memory_verify import run_grid

    if not torch.cuda.is_available():
        raise CceTuneError("verify-memory measures on a CUDA GPU, and none is visible")
    gpu = torch.cuda.get_device_name(0)
    points = GRIDS[args.grid]()
    print(f"{len(points)} points on {gpu}; {allocator_setting()}")
    _, stem = _names(args, gpu)
    # One JSON line per point as it is measured: an interrupted grid keeps what it measured.
    partial = open(args.out / f"{stem}.jsonl", "w")  # noqa: SIM115 (closed below)

    def show(row: dict) -> None:
        row.update(gpu=gpu, torch=torch.__version__, allocator=allocator_setting())
        partial.write(json.dumps(row) + "\n")
        partial.flush()
        measured = row.get("measured_allocated")
        result = (f"measured {format_bytes(measured):>11}  error {row['error']:+6.1%}"
                  if measured else row["status"])
        print(f"{row['group']:>26} B={row['batch_size']:<5} N={row['negatives']:<5} "
              f"L={row['max_len']:<4} d={row['hidden']:<4} V={row['num_items']:<8,} "
              f"{'bf16' if row['bf16'] else 'fp32'}  estimate "
              f"{format_bytes(row['estimate_allocated']):>11}  {result}", flush=True)

    try:
        rows = run_grid(points, show, profile)
    finally:
        partial.close()
    return rows, gpu, torch.__version__
