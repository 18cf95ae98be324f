"""The `cce-tune` command line: one subcommand per job, arguments from `tuner.arguments`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tuner.allocator import use_expandable_segments
from tuner.arguments import (
    add_data_arguments,
    add_loss_arguments,
    add_model_arguments,
    data_options,
    run_config,
)
from tuner.cli_dlrm import add_train_dlrm_parser, run_train_dlrm
from tuner.cli_memory import add_estimate_parser, add_verify_parser, run_estimate, run_verify
from tuner.cli_tune import add_report_parser, add_tune_parser, run_report, run_tune
from tuner.data import load
from tuner.errors import CceTuneError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cce-tune",
        description="Tune sequential recommenders under a GPU memory budget.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = commands.add_parser("data", help="prepare a dataset and print its summary")
    add_data_arguments(data)

    train = commands.add_parser("train", help="train SASRec once and report quality, time, memory")
    add_data_arguments(train)
    add_loss_arguments(train)
    add_model_arguments(train)
    group = train.add_argument_group("run")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    group.add_argument("--include-seen", action="store_true",
                       help="rank items the user already saw too (default: exclude them)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--out", type=Path, help="write the results as JSON here")
    add_estimate_parser(commands)
    add_verify_parser(commands)
    add_train_dlrm_parser(commands)
    add_tune_parser(commands)
    add_report_parser(commands)
    return parser


def run_data(args: argparse.Namespace) -> None:
    print(load(data_options(args)).summary())


def run_train(args: argparse.Namespace) -> None:
    from tuner.report_train import print_epoch, print_header, print_summary
    from tuner.train import train

    config = run_config(args)
    data = load(data_options(args))
    print(data.summary())
    print_header()
    result = train(config, data, on_epoch=print_epoch)
    print_summary(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.to_dict(), indent=2, default=str))
        print(f"results written to {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "tune")  # `cce-tune --gpu-mem 40GB ...` is `cce-tune tune ...`
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    use_expandable_segments()
    try:
        commands = {"data": run_data, "train": run_train, "estimate": run_estimate,
                    "verify-memory": run_verify, "tune": run_tune, "report": run_report,
                    "train-dlrm": run_train_dlrm}
        commands[args.command](args)
    except CceTuneError as error:
        print(f"cce-tune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cce-tune: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
