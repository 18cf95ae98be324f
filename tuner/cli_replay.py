"""`cce-tune replay TABLE`: the tuner's search replayed over measured configurations, to
compare search strategies without training (`tuner/replay/`).

    cce-tune replay runs/ml-1m-grid --gpu-mem 16GB --trials 32 --seeds 30 --out replay/

TABLE is a run directory (its report/trials.csv and history.csv), a trials.csv, or any CSV
whose columns are named with --quality, --memory, --time, --cost and --knobs.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from cce_tune.tuner.errors import CceTuneError

# Issue 14's comparison: 32 evaluated trials per search, 30 seeds per strategy.
DEFAULT_TRIALS, DEFAULT_SEEDS = 32, 30


def add_replay_parser(commands) -> argparse.ArgumentParser:
    from cce_tune.tuner.arguments import positive_int
    from cce_tune.tuner.cli_tune import duration, fraction
    from cce_tune.tuner.run_dir import TuneSettings
    from cce_tune.tuner.strategies import STRATEGIES

    parser = commands.add_parser(
        "replay", help="compare search strategies on a table of measured configurations, "
                       "without training")
    parser.add_argument("table", type=Path, metavar="TABLE",
                        help="a run directory, a trials.csv (a history.csv beside it gives "
                             "early stopping its epochs) or any CSV named by the flags below")
    group = parser.add_argument_group("search")
    group.add_argument("--gpu-mem", metavar="SIZE",
                       help="the per-trial GPU memory budget, e.g. 16GB or 16GiB (default: "
                            "none: every point fits)")
    group.add_argument("--margin", type=fraction, default=TuneSettings.margin,
                       help="points under this share of the budget fit, as in the tuner "
                            f"(default: {TuneSettings.margin})")
    group.add_argument("--strategies", default=",".join(STRATEGIES),
                       help="comma-separated, from: " + "; ".join(
                           f"{s.name}: {s.help}" for s in STRATEGIES.values())
                       + f" (default: {','.join(STRATEGIES)})")
    group.add_argument("--trials", type=positive_int, default=DEFAULT_TRIALS,
                       help=f"evaluated trials per search (default: {DEFAULT_TRIALS})")
    group.add_argument("--seeds", type=positive_int, default=DEFAULT_SEEDS,
                       help="searches per strategy, seeds 0..N-1, the same for every "
                            f"strategy (default: {DEFAULT_SEEDS})")
    group.add_argument("--grace", type=duration, default=TuneSettings.grace_seconds,
                       help="training time before ASHA may stop a trial, as the tuner's "
                            f"--grace (default: {TuneSettings.grace_seconds:g}s)")
    group.add_argument("--concurrency", type=positive_int, default=1,
                       help="trials training at once, each proposed before the running ones "
                            "end, as when trials share GPUs (default: 1)")
    group.add_argument("--no-early-stopping", action="store_true",
                       help="every trial runs to its end")
    columns = parser.add_argument_group("columns")
    columns.add_argument("--quality", metavar="COL",
                         help="the quality maximised (default: ndcg10 or auc, the one there)")
    columns.add_argument("--memory", metavar="COL",
                         help="GB checked against the budget (default: estimate_total_gb, "
                              "else peak_memory_gb)")
    columns.add_argument("--time", metavar="COL", default="epoch_seconds",
                         help="seconds per epoch, minimised (default: epoch_seconds)")
    columns.add_argument("--cost", metavar="COL", default="train_seconds",
                         help="a trial's total training seconds (default: train_seconds)")
    columns.add_argument("--knobs", metavar="A,B,C",
                         help="the configuration's columns (default: every column that is "
                              "not a metric or bookkeeping)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write replay.json (every number) and replay.md here")
    return parser


def run_replay(args: argparse.Namespace) -> None:
    from cce_tune.tuner.replay import (
        Columns,
        ReplaySettings,
        compare,
        limit_gb,
        load_table,
        report,
    )

    _budget_of_the_run(args)
    budget = _budget(args.gpu_mem)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    knobs = tuple(k.strip() for k in args.knobs.split(",") if k.strip()) if args.knobs else None
    table = load_table(args.table, Columns(args.quality, args.memory, args.time, args.cost,
                                           knobs))
    settings = ReplaySettings(
        trials=args.trials, limit_gb=limit_gb(budget, args.margin),
        grace_seconds=None if args.no_early_stopping else args.grace,
        concurrency=args.concurrency)
    started = time.perf_counter()
    comparison = compare(table, strategies, range(args.seeds), settings)
    seconds = time.perf_counter() - started
    command = replay_command(args)
    print(report.text(comparison))
    print(f"({len(strategies) * args.seeds} searches in {seconds:.1f} s)")
    if args.out is not None:
        paths = report.write(comparison, command, args.out)
        print("wrote " + ", ".join(str(p) for p in paths))


def _budget_of_the_run(args: argparse.Namespace) -> None:
    """A run directory replays under the run's own budget and margin unless told otherwise."""
    import json

    from cce_tune.tuner.run_dir import RUN_FILE

    run_file = args.table / RUN_FILE
    if args.gpu_mem is not None or not run_file.is_file():
        return
    run = json.loads(run_file.read_text())
    args.gpu_mem, args.margin = f"{run['budget_bytes'] / 1e9:g}GB", run["margin"]
    print(f"the run's budget: --gpu-mem {args.gpu_mem} --margin {args.margin:g} "
          f"(from {run_file})")


def _budget(text: str | None) -> int | None:
    from cce_tune.tuner.arguments import memory_size

    if text is None:
        return None
    try:
        return memory_size(text)
    except argparse.ArgumentTypeError as error:
        raise CceTuneError(f"--gpu-mem: {error}") from None


def replay_command(args: argparse.Namespace) -> str:
    """The command that reproduces this replay, every setting spelled out."""
    argv = ["cce-tune", "replay", str(args.table)]
    if args.gpu_mem is not None:
        argv += ["--gpu-mem", args.gpu_mem, "--margin", f"{args.margin:g}"]
    argv += ["--strategies", args.strategies, "--trials", str(args.trials),
             "--seeds", str(args.seeds), "--concurrency", str(args.concurrency)]
    argv += (["--no-early-stopping"] if args.no_early_stopping
             else ["--grace", f"{args.grace:g}"])
    for flag in ("quality", "memory", "knobs"):
        if getattr(args, flag):
            argv += [f"--{flag}", getattr(args, flag)]
    for flag, default in (("time", "epoch_seconds"), ("cost", "train_seconds")):
        if getattr(args, flag) != default:
            argv += [f"--{flag}", getattr(args, flag)]
    return shlex.join(argv)
