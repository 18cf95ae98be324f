"""Argument types and groups shared by the `cce-tune` commands, and the configs built from
them. Every value is checked here, where it enters, with the bad value and what is valid."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cce_tune.kernels.config import (
    DEFAULT_TILE_SIZE,
    FUSED_LOSSES,
    LOSSES,
    NEGATIVE_MODES,
    LossConfig,
)
from cce_tune.models.sasrec_config import SASRecConfig
from cce_tune.tuner.data import KNOWN_DATASETS, DataOptions
from cce_tune.tuner.data.prepare import PrepareOptions
from cce_tune.tuner.data.tabular import ColumnNames
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.sequences.config import AUTO, ORDERS, TrainConfig

DEFAULT_NEGATIVES = {"ce": 1, "ce_minus": 256, "bce": 1, "gbce": 256}
DEFAULT_NEGATIVES |= {fused: DEFAULT_NEGATIVES[ref] for fused, ref in FUSED_LOSSES.items()}


def parse_number(text: str, convert, noun: str):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None


def positive_int(text: str) -> int:
    value = parse_number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = parse_number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = parse_number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def gpus_per_trial(text: str) -> float:
    """A share of one GPU (0 < x <= 1), or a whole number of GPUs for a data-parallel trial."""
    value = positive_float(text)
    if value > 1 and not value.is_integer():
        raise argparse.ArgumentTypeError(
            f"{value:g} is neither a share of one GPU (at most 1) nor a whole number of GPUs "
            "(2, 3, ...) for a data-parallel trial")
    return value


def probability(text: str) -> float:
    value = parse_number(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="synthetic",
                       help=f"one of {', '.join(KNOWN_DATASETS)}, or a .csv/.tsv/.parquet "
                            "file or RecBole .inter file (default: synthetic)")
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


SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def memory_size(text: str) -> int:
    """Bytes from `40GB` (10^9), `40GiB` (2^30), `512 MiB` or a plain number of bytes (`4e10`)."""
    match = _SIZE.match(text)
    unit = match and (match.group(2).lower() or "b")
    if not match or unit not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a memory size; write a number with one of the units "
            "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), "
            "e.g. 40GB or 40GiB")
    value = float(match.group(1)) * SIZE_UNITS[unit]
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least one byte")
    if not match.group(2) and value < 10**6:  # `--gpu-mem 40` is 40 bytes: surely not meant
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit, so it means {int(value)} bytes; write e.g. {text}GB or "
            f"{text}GiB")
    return int(value)


def add_loss_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loss")
    group.add_argument("--loss", choices=LOSSES, default="ce_minus",
                       help="cce_minus: the fused kernel over sampled negatives; cce: fused, "
                            "the full catalog; ce, ce_minus, bce, gbce: the PyTorch "
                            "references (default: ce_minus)")
    group.add_argument("--negatives", type=positive_int,
                       help="negatives per batch, tile or position (default: 256; bce: 1)")
    group.add_argument("--negative-mode", choices=NEGATIVE_MODES, default="shared",
                       help="share negatives across the batch, draw per position, or per tile "
                            "of consecutive tokens (default: shared)")
    group.add_argument("--tile-size", type=positive_int, default=DEFAULT_TILE_SIZE,
                       help="tokens sharing one row of negatives in tile mode (default: "
                            f"{DEFAULT_TILE_SIZE}, the largest as good as per position)")
    group.add_argument("--temperature", type=positive_float, default=1.0,
                       help="scores are divided by it before the softmax (default: 1.0)")
    group.add_argument("--sampled-softmax", action="store_true",
                       help="correct uniform negatives so CE- estimates full-catalog CE")
    group.add_argument("--gbce-t", type=probability, default=0.75,
                       help="gBCE calibration t in [0, 1) (default: 0.75)")
    group.add_argument("--in-kernel-negatives", action="store_true",
                       help="cce_minus: draw negatives inside the kernel from a seed, so no id "
                            "tensor exists")
    group.add_argument("--sparse-item-grad", action="store_true",
                       help="ce_minus, cce_minus, SASRec: the item table's gradient as a "
                            "sparse tensor of the positions a batch names, stepped by "
                            "SparseAdam (Adam for the rest): less memory where they are few "
                            "beside the catalog (`estimate` and `tune`: cce_minus, shared or "
                            "tile negatives, one GPU)")


# A tuning trial trains until validation stops improving, so that a large batch that needs
# more epochs is judged at its best (`train` keeps its short fixed default).
EPOCHS = {"tune": 50}
PATIENCE = {"tune": 3}


def add_model_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    group = parser.add_argument_group("model and optimiser")
    group.add_argument("--batch-size", type=positive_int, default=128,
                       help="users per step (default: 128)")
    group.add_argument("--max-len", type=positive_int, default=50,
                       help="items of history per user, the sequence length (default: 50)")
    group.add_argument("--hidden", type=positive_int, default=64,
                       help="embedding and model width d (default: 64)")
    group.add_argument("--blocks", type=positive_int, default=2,
                       help="transformer blocks (default: 2)")
    group.add_argument("--heads", type=positive_int, default=1,
                       help="attention heads; must divide --hidden (default: 1)")
    group.add_argument("--dropout", type=probability, default=0.2, help="(default: 0.2)")
    group.add_argument("--lr", type=positive_float, default=1e-3,
                       help="Adam's learning rate (default: 1e-3)")
    epochs, patience = EPOCHS.get(command, 5), PATIENCE.get(command, 0)
    group.add_argument("--epochs", type=positive_int, default=epochs,
                       help=f"the most epochs{', per trial' if command == 'tune' else ''} "
                            f"(default: {epochs})")
    group.add_argument("--patience", type=non_negative_int, default=patience,
                       help="stop once validation NDCG@10 has not improved for this many "
                            f"epochs; 0 never stops early (default: {patience})")
    group.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    group.add_argument("--compile", action="store_true",
                       help="compile the model with torch.compile: fused norms, dropout and "
                            "element-wise work, fewer launches; the first step waits for the "
                            "compile (tens of seconds on a GPU, minutes on a CPU), and memory "
                            "estimates describe the uncompiled step")
    group.add_argument("--cuda-graphs", action="store_true",
                       help="replay each training step from a CUDA graph, one per batch shape: "
                            "the host launches a whole step at once (SASRec on a GPU; a "
                            "shape's first batch runs eagerly, its second is captured)")
    group.add_argument("--batches", choices=(*ORDERS, AUTO), default=AUTO,
                       help="which users share a batch: 'length', users of similar length, "
                            "each batch cut to its longest sequence; 'random', cut too; "
                            "'packed', random users' real items laid end to end, no padding "
                            "computed (SASRec; fast on a CUDA GPU with --bf16, torch >= 2.10); "
                            "'auto' (default): packed and replayed from CUDA graphs for SASRec "
                            "in bf16 on one GPU without --sparse-item-grad, else length")
    group.add_argument("--eval-batch-size", type=positive_int, default=1024,
                       help="users ranked at once in evaluation (default: 1024)")


def loss_config(args: argparse.Namespace) -> LossConfig:
    try:
        return LossConfig(
            name=args.loss, num_negatives=args.negatives or DEFAULT_NEGATIVES[args.loss],
            negative_mode=args.negative_mode, tile_size=args.tile_size,
            temperature=args.temperature, sampled_softmax=args.sampled_softmax,
            gbce_t=args.gbce_t, in_kernel_negatives=args.in_kernel_negatives,
            sparse_item_grad=args.sparse_item_grad,
        )
    except ValueError as error:
        raise CceTuneError(str(error)) from None


def train_config(args: argparse.Namespace, **run) -> TrainConfig:
    """The training config the loss and model arguments describe; `run` adds device, seed..."""
    loss = loss_config(args)
    try:  # the model's and the run's own checks, a combination they refuse
        SASRecConfig(num_items=1, hidden=args.hidden, num_heads=args.heads)
        return TrainConfig(
            loss=loss, batch_size=args.batch_size, max_len=args.max_len, hidden=args.hidden,
            num_blocks=args.blocks, num_heads=args.heads, dropout=args.dropout, lr=args.lr,
            epochs=args.epochs, patience=args.patience, bf16=args.bf16,
            batches=args.batches, compile=args.compile,
            cuda_graphs=args.cuda_graphs,
            eval_batch_size=args.eval_batch_size, **run,
        )
    except ValueError as error:
        raise CceTuneError(str(error)) from None

