"""`cce-tune tune` (also plain `cce-tune --gpu-mem ...`) and `cce-tune report RUN_DIR`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cce_tune.tuner.arguments import (
    gpus_per_trial,
    memory_size,
    parse_number,
    positive_int,
)
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families import Family, get
from cce_tune.tuner.memory import LAUNCH_MARGIN
from cce_tune.tuner.units import format_bytes

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """Seconds from `90`, `90s`, `30m` or `2h`."""
    unit = text[-1:].lower()
    scale = DURATION_UNITS.get(unit, 1)
    number = text[:-1] if unit in DURATION_UNITS else text
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write e.g. 600, 90s, 30m or 2h") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than 0")
    return value * scale


def fraction(text: str) -> float:
    value = parse_number(text, float, "a number")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1]")
    return value


def add_tune_parser(commands) -> argparse.ArgumentParser:
    """`cce-tune tune` with its search arguments; the caller adds the model family's."""
    from cce_tune.search_spaces import PRESETS

    parser = commands.add_parser(
        "tune", help="search the space under a GPU memory budget (the default command)")
    group = parser.add_argument_group("search")
    group.add_argument("--gpu-mem", type=memory_size,
                       help="the per-trial GPU memory budget, e.g. 40GB or 40GiB (required "
                            "unless --resume)")
    group.add_argument("--space", help=f"a preset ({', '.join(PRESETS)}) or a YAML file "
                                       "(default: the dataset's preset, else the model's)")
    group.add_argument("--trials", type=positive_int, default=16,
                       help="trials to evaluate, proposals over the budget not counted "
                            "(default: 16)")
    group.add_argument("--time-budget", type=duration,
                       help="propose no trial after this long from the search's start; "
                            "those running train to their end")
    group.add_argument("--grace", type=duration, default=60.0,
                       help="training time a trial gets before early stopping may stop it; "
                            "trials are compared at equal training time, then at 3x, 9x... "
                            "it (default: 60s)")
    group.add_argument("--margin", type=fraction, default=LAUNCH_MARGIN,
                       help="launch only trials estimated under this share of the budget "
                            f"(default: {LAUNCH_MARGIN})")
    group.add_argument("--gpus-per-trial", type=gpus_per_trial,
                       help="fixed GPUs per trial: a share of one (0.5), or 2 or more for "
                            "data-parallel trials through Ray Train, the budget then per GPU "
                            "(default: a share by the estimate)")
    group.add_argument("--out", type=Path, help="RUN_DIR (default: runs/<dataset>-<time>)")
    group.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run; other search options are its own")
    group.add_argument("--address", help="join this Ray cluster instead of starting one")
    group.add_argument("--no-dashboard", action="store_true", help="start Ray without it")
    group.add_argument("--actor-per-trial", action="store_true",
                       help="run each trial in a Ray actor of its own, named in the Ray "
                            "dashboard by the trial's id and knobs (a process start per "
                            "trial: 7 s on a 2-core CPU; by default actors are reused)")
    group.add_argument("--mlflow", action="store_true",
                       help="log every trial to MLflow too, in RUN_DIR/mlflow.db (needs "
                            "pip install 'cce-tune[mlflow]')")
    group.add_argument("--memory-profile", type=Path,
                       help="coefficients from `verify-memory --calibrate`")
    group.add_argument("--seed", type=int, default=0,
                       help="of the search and of every trial's training (default: 0)")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="show Ray's and Optuna's own messages and trial tracebacks")
    return parser


def add_report_parser(commands) -> None:
    parser = commands.add_parser("report", help="rebuild RUN_DIR/report from a run")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a tuning run's folder (its --out)")


def default_space(dataset: str, family: Family) -> str:
    """The dataset's preset for this model family if there is one (named after the dataset,
    or `<model>-<dataset>`), else the family's own."""
    from cce_tune.search_spaces import PRESETS, preset_model

    name = dataset.removeprefix("synthetic-")
    for preset in (dataset, name, f"{family.name}-{dataset}", f"{family.name}-{name}"):
        if preset in PRESETS and preset_model(preset) == family.name:
            return preset
    return family.default_space


def run_tune(args: argparse.Namespace) -> None:
    from cce_tune.tuner.loggers import require_mlflow
    from cce_tune.tuner.report import is_complete, was_interrupted, write_reports
    from cce_tune.tuner.run_dir import RUN_FILE, TuneSettings
    from cce_tune.tuner.search import space_for

    if args.resume:
        settings = TuneSettings.load(args.resume)
        if is_complete(settings):
            print(f"{settings.run_dir} is complete: all {settings.trials} trials ended; its "
                  "reports are rebuilt")
            out = settings.run_dir
        else:
            if settings.mlflow:  # Ray's saved state holds the MLflow logger
                require_mlflow()
            print(f"resuming {settings.run_dir}")
            out = _interruptible(settings, resume=True, verbose=args.verbose)
    else:
        if args.gpu_mem is None:
            raise CceTuneError("--gpu-mem is required: the memory budget each trial must fit, "
                               "e.g. --gpu-mem 40GB")
        if args.mlflow:
            require_mlflow()
        _check_budget_fits_the_gpu(args.gpu_mem, args.address)
        if not args.address:  # this machine's GPUs, before anything is written
            _check_local_gpus_per_trial(args.gpus_per_trial)
        family = get(args.model)
        data = family.data_options(args)
        dataset = family.data_name(data)
        space = args.space or default_space(dataset, family)
        space_for(space, args.model)  # before any data is read: a bad space fails at once
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = args.out or Path("runs") / f"{Path(dataset).stem}-{stamp}"
        if (run_dir / RUN_FILE).exists():
            raise CceTuneError(f"{run_dir} holds a run already; --resume {run_dir} continues "
                               "it, or choose another --out")
        settings = TuneSettings(
            run_dir=run_dir, model=args.model, data=data,
            base=family.train_config(args, seed=args.seed), space=space,
            budget_bytes=args.gpu_mem, margin=args.margin, trials=args.trials,
            epochs=args.epochs, time_budget_s=args.time_budget, grace_seconds=args.grace,
            gpus_per_trial=args.gpus_per_trial, address=args.address, seed=args.seed,
            memory_profile=args.memory_profile, dashboard=not args.no_dashboard,
            mlflow=args.mlflow, actor_per_trial=args.actor_per_trial)
        out = _interruptible(settings, resume=False, verbose=args.verbose)
    reports = write_reports(out)
    print(f"reports: {reports} (summary.md, pareto.csv, report.html)")
    print((reports / "summary.md").read_text())
    if was_interrupted(out):  # Ray stops gracefully on Ctrl-C; a script still learns of it
        raise KeyboardInterrupt


def _check_budget_fits_the_gpu(budget_bytes: int, address: str | None) -> None:
    """A per-trial budget larger than a GPU the trials may run on cannot be what was meant:
    this machine's, or with --address any of the cluster's (Ray may place a trial on the
    smallest)."""
    if address:
        _check_budget_fits_the_cluster(budget_bytes, address)
        return
    import torch

    from cce_tune.tuner.search import local_gpu_bytes

    total = local_gpu_bytes()
    if total is not None and budget_bytes > total:
        raise CceTuneError(f"--gpu-mem {format_bytes(budget_bytes)} is more than this "
                           f"machine's GPU has ({format_bytes(total)} on "
                           f"{torch.cuda.get_device_name(0)}); give at most that")


def _check_local_gpus_per_trial(gpus_per_trial: float | None) -> None:
    import torch

    from cce_tune.tuner.search import check_gpus_per_trial

    check_gpus_per_trial(gpus_per_trial, torch.cuda.device_count())


def _check_budget_fits_the_cluster(budget_bytes: int, address: str) -> None:
    from cce_tune.tuner.cluster_gpus import cluster_gpus

    found = cluster_gpus(address)
    if found.unknown:
        print(f"cce-tune: cannot read the GPU memory of {', '.join(sorted(set(found.unknown)))} "
              "(nvidia-smi gave no answer there); --gpu-mem is not checked against it",
              file=sys.stderr)
    if not found.gpus:
        return
    smallest = min(found.gpus, key=lambda gpu: gpu.total_bytes)
    if budget_bytes > smallest.total_bytes:
        raise CceTuneError(
            f"--gpu-mem {format_bytes(budget_bytes)} is more than a GPU of the cluster has "
            f"({format_bytes(smallest.total_bytes)} on {smallest.name}, node {smallest.node}), "
            "where trials may run; give at most that")


def _interruptible(settings, resume: bool, verbose: bool) -> Path:
    """The search, which a second Ctrl-C may cut short: say how to go on from there."""
    from cce_tune.tuner.report import resume_command
    from cce_tune.tuner.search import tune

    try:
        return tune(settings, resume=resume, verbose=verbose)
    except KeyboardInterrupt:
        print(f"cce-tune: interrupted; go on with: {resume_command(settings.run_dir)}",
              file=sys.stderr)
        raise


def run_report(args: argparse.Namespace) -> None:
    from cce_tune.tuner.report import write_reports

    out = write_reports(args.run_dir)
    print((out / "summary.md").read_text())
    print(f"written: {out}")
