"""The `cce-tune` command line. Every argument is checked here, where it enters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kernels import LOSSES, NEGATIVE_MODES, LossConfig
from kernels.losses import FUSED_LOSSES
from tuner.data import KNOWN_DATASETS, DataOptions, load
from tuner.data.prepare import PrepareOptions
from tuner.data.tabular import ColumnNames
from tuner.errors import CceTuneError

DEFAULT_NEGATIVES = {"ce": 1, "ce_minus": 256, "bce": 1, "gbce": 256}
DEFAULT_NEGATIVES |= {fused: DEFAULT_NEGATIVES[ref] for fused, ref in FUSED_LOSSES.items()}


def _number(text: str, convert, noun: str):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def probability(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="synthetic",
                       help=f"one of {', '.join(KNOWN_DATASETS)}, or a .csv/.tsv/.parquet file "
                            "(default: synthetic)")
    group.add_argument("--data-dir", type=Path,
                       help="an extracted MovieLens folder; without it the official zip is "
                            "downloaded into $CCE_TUNE_CACHE (default ~/.cache/cce-tune)")
    group.add_argument("--min-rating", type=float,
                       help="keep ratings >= this (default: every rating is an interaction)")
    group.add_argument("--min-user-interactions", type=positive_int, default=5,
                       help="drop users with fewer interactions (default: 5)")
    group.add_argument("--user-col", default="user_id", help="file datasets: user column")
    group.add_argument("--item-col", default="item_id", help="file datasets: item column")
    group.add_argument("--time-col", default="timestamp", help="file datasets: time column")
    group.add_argument("--rating-col", help="file datasets: rating column, for --min-rating")


def data_options(args: argparse.Namespace) -> DataOptions:
    return DataOptions(
        dataset=args.dataset,
        data_dir=args.data_dir,
        prepare=PrepareOptions(args.min_rating, args.min_user_interactions),
        columns=ColumnNames(args.user_col, args.item_col, args.time_col, args.rating_col),
    )


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
    group = train.add_argument_group("loss")
    group.add_argument("--loss", choices=LOSSES, default="ce_minus")
    group.add_argument("--negatives", type=positive_int,
                       help="negatives per batch, tile or position (default: 256; bce: 1)")
    group.add_argument("--negative-mode", choices=NEGATIVE_MODES, default="shared",
                       help="share negatives across the batch, draw per position, or per tile "
                            "of consecutive tokens (default: shared)")
    group.add_argument("--tile-size", type=positive_int, default=128)
    group.add_argument("--temperature", type=positive_float, default=1.0)
    group.add_argument("--sampled-softmax", action="store_true",
                       help="correct uniform negatives so CE- estimates full-catalog CE")
    group.add_argument("--gbce-t", type=probability, default=0.75,
                       help="gBCE calibration t in [0, 1) (default: 0.75)")
    group.add_argument("--in-kernel-negatives", action="store_true",
                       help="cce_minus: draw negatives inside the kernel from a seed, so no id "
                            "tensor exists")
    group = train.add_argument_group("model and optimiser")
    group.add_argument("--batch-size", type=positive_int, default=128)
    group.add_argument("--max-len", type=positive_int, default=50)
    group.add_argument("--hidden", type=positive_int, default=64)
    group.add_argument("--blocks", type=positive_int, default=2)
    group.add_argument("--heads", type=positive_int, default=1)
    group.add_argument("--dropout", type=probability, default=0.2)
    group.add_argument("--lr", type=positive_float, default=1e-3)
    group.add_argument("--epochs", type=positive_int, default=5)
    group = train.add_argument_group("run")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    group.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    group.add_argument("--include-seen", action="store_true",
                       help="rank items the user already saw too (default: exclude them)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--out", type=Path, help="write the results as JSON here")
    return parser


def run_data(args: argparse.Namespace) -> None:
    print(load(data_options(args)).summary())


def run_train(args: argparse.Namespace) -> None:
    from tuner.report_train import print_epoch, print_header, print_summary
    from tuner.train import TrainConfig, train

    negatives = args.negatives or DEFAULT_NEGATIVES[args.loss]
    try:
        loss = LossConfig(
            name=args.loss, num_negatives=negatives, negative_mode=args.negative_mode,
            tile_size=args.tile_size, temperature=args.temperature,
            sampled_softmax=args.sampled_softmax, gbce_t=args.gbce_t,
            in_kernel_negatives=args.in_kernel_negatives,
        )
        from models import SASRecConfig

        SASRecConfig(num_items=1, hidden=args.hidden, num_heads=args.heads)
    except ValueError as error:
        raise CceTuneError(str(error)) from None
    config = TrainConfig(
        loss=loss, batch_size=args.batch_size, max_len=args.max_len, hidden=args.hidden,
        num_blocks=args.blocks, num_heads=args.heads, dropout=args.dropout, lr=args.lr,
        epochs=args.epochs, seed=args.seed, device=args.device, bf16=args.bf16,
        exclude_seen=not args.include_seen,
    )
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
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        {"data": run_data, "train": run_train}[args.command](args)
    except CceTuneError as error:
        print(f"cce-tune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cce-tune: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
