"""DLRM's arguments, as the reference code spells them, and its `train` and `estimate`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from cce_tune.models.dlrm_config import INTERACTIONS, DLRMConfig, parse_arch
from cce_tune.models.dlrm_memory import DENSE_OPTIMIZERS, SPARSE_OPTIMIZERS
from cce_tune.tuner.arguments import positive_float, positive_int
from cce_tune.tuner.clicks.config import CriteoOptions, DLRMTrainConfig
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.memory import MemoryProfile
from cce_tune.tuner.units import GB, format_bytes

PAPER_TABLES = "-".join(["1000000"] * 8)  # the DLRM paper's single-device benchmark


def add_architecture_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and optimizers, with the reference code's defaults (its MLPs fit the
    paper's benchmark; `add_click_training_arguments` sets the click data's)."""
    group = parser.add_argument_group("architecture and optimizers")
    group.add_argument("--arch-sparse-feature-size", type=positive_int, default=64,
                       help="embedding dimension of every table (default: 64)")
    group.add_argument("--arch-mlp-bot", default="512-512-64",
                       help="bottom MLP widths, dense features first, the embedding "
                            "dimension last (default: %(default)s)")
    group.add_argument("--arch-mlp-top", default="1024-1024-1024-1",
                       help="top MLP widths, ending in 1 (default: %(default)s)")
    group.add_argument("--arch-interaction-op", choices=INTERACTIONS, default="dot",
                       help="how embeddings and the bottom MLP's output meet (default: dot)")
    group.add_argument("--sparse-optimizer", choices=SPARSE_OPTIMIZERS, default="sgd",
                       help="the tables' optimizer (default: sgd, inside the backward)")
    group.add_argument("--dense-optimizer", choices=DENSE_OPTIMIZERS, default="sgd",
                       help="the MLPs' optimizer (default: sgd)")


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    """What the data gives a training run, given by hand for an estimate without data."""
    group = parser.add_argument_group("tables and lookups (no data needed)")
    group.add_argument("--arch-embedding-size", default=PAPER_TABLES,
                       help="rows of each table, joined by '-' (default: 8 x 1,000,000)")
    group.add_argument("--num-indices-per-lookup", type=positive_int, default=100,
                       help="ids per bag, at most (default: 100)")


def dlrm_config(args: argparse.Namespace,
                table_sizes: tuple[int, ...] | None = None) -> DLRMConfig:
    try:
        return DLRMConfig(
            table_sizes=table_sizes or parse_arch(args.arch_embedding_size,
                                                  "--arch-embedding-size"),
            bottom=parse_arch(args.arch_mlp_bot, "--arch-mlp-bot"),
            top=parse_arch(args.arch_mlp_top, "--arch-mlp-top"),
            embedding_dim=args.arch_sparse_feature_size,
            interaction=args.arch_interaction_op)
    except ValueError as error:
        raise CceTuneError(str(error)) from None


def run_estimate_dlrm(args: argparse.Namespace) -> None:
    from cce_tune.tuner.clicks.memory import estimate_dlrm, gpus_for_tables

    config = dlrm_config(args)
    profile = MemoryProfile.load(args.memory_profile) if args.memory_profile else None
    # As a run would train it: on a GPU with the tables' SGD, the step replayed from a graph.
    breakdown = estimate_dlrm(config, args.batch_size, args.num_indices_per_lookup,
                              args.sparse_optimizer, args.dense_optimizer, profile,
                              cuda_graph=args.sparse_optimizer == "sgd")
    split = None
    if args.gpu_mem and not breakdown.fits(args.gpu_mem):
        split = gpus_for_tables(config, args.gpu_mem, args.sparse_optimizer, args.batch_size,
                                args.num_indices_per_lookup)
    if args.json:
        out = {"model": "dlrm", "tables": list(config.table_sizes), **breakdown.to_dict()}
        if args.gpu_mem:
            out |= {"budget": args.gpu_mem, "fits": breakdown.fits(args.gpu_mem),
                    "gpus_for_a_table_wise_split": split}
        print(json.dumps(out, indent=2))
        return
    print(f"DLRM: {len(config.table_sizes)} tables ({sum(config.table_sizes):,} rows) x "
          f"{config.embedding_dim}, bottom {args.arch_mlp_bot}, top {args.arch_mlp_top}, "
          f"batch {args.batch_size}, {args.num_indices_per_lookup} ids per lookup")
    print(breakdown.table())
    if args.gpu_mem:
        if breakdown.fits(args.gpu_mem):
            print(f"fits in {format_bytes(args.gpu_mem)}")
        elif split is None:
            print(f"does not fit in {format_bytes(args.gpu_mem)}, and one table alone is "
                  "larger than that: split tables row-wise")
        else:
            print(f"does not fit in {format_bytes(args.gpu_mem)}; a table-wise split needs "
                  f"{split} GPUs of that size")


def add_click_training_arguments(parser: argparse.ArgumentParser) -> None:
    """What training DLRM on click data takes besides the architecture and the batch size:
    Criteo's parsing, the tables' learning rate; the defaults of `train --model dlrm`."""
    group = parser.add_argument_group("click data and tables")
    group.add_argument("--hash-size", type=positive_int, default=1 << 20,
                       help="Criteo: rows per table, values hashed into them")
    group.add_argument("--min-frequency", type=positive_int,
                       help="Criteo: number values seen this often instead of hashing")
    group.add_argument("--skip-bad-rows", action="store_true",
                       help="Criteo: skip and count malformed lines instead of stopping")
    group.add_argument("--table-lr", type=positive_float, default=0.5,
                       help="the tables' (SGD in the backward, or row-wise Adagrad)")
    add_architecture_arguments(parser)
    parser.set_defaults(arch_mlp_bot="13-512-256-64", arch_mlp_top="512-256-1")


def criteo_options(args: argparse.Namespace) -> CriteoOptions:
    return CriteoOptions(hash_size=None if args.min_frequency else args.hash_size,
                         min_frequency=args.min_frequency, skip_bad_rows=args.skip_bad_rows)


def dlrm_train_config(args: argparse.Namespace, source, **run) -> DLRMTrainConfig:
    """The DLRM training config of the command line, its tables shaped by `source`."""
    model = dlrm_config(args, source.table_sizes)
    if model.dense_features != source.dense_features:
        raise CceTuneError(f"--arch-mlp-bot starts with {model.dense_features} but "
                           f"{args.dataset} has {source.dense_features} dense features")
    return DLRMTrainConfig(model, batch_size=args.batch_size, lr=args.lr,
                           table_lr=args.table_lr, sparse_optimizer=args.sparse_optimizer,
                           dense_optimizer=args.dense_optimizer, epochs=args.epochs,
                           **{"seed": args.seed, **run})


def run_train_dlrm(config: DLRMTrainConfig, source, args: argparse.Namespace) -> None:
    """Train `config` on `source`, printing a row per epoch (and the results to --out)."""
    from cce_tune.tuner.clicks.train import train_dlrm

    print(f"{args.dataset}: {len(source.table_sizes)} tables, {sum(source.table_sizes):,} "
          f"rows, {source.dense_features} dense features")
    print(f"{'epoch':>5} {'loss':>8} {'val AUC':>8} {'log loss':>9} {'constant':>9} "
          f"{'accuracy':>9} {'s':>7} {'samples/s':>11} {'peak GB':>9}")

    def show(epoch) -> None:
        v = epoch.valid
        peak = f"{epoch.peak_memory_bytes / GB:.2f}" if epoch.peak_memory_bytes else "-"
        print(f"{epoch.epoch:>5} {epoch.loss:>8.4f} {v.auc:>8.4f} {v.log_loss:>9.4f} "
              f"{v.constant_log_loss:>9.4f} {v.accuracy:>9.4f} {epoch.seconds:>7.1f} "
              f"{epoch.samples_per_s:>11,.0f} {peak:>9}", flush=True)

    epochs = train_dlrm(config, source.train, source.valid, on_epoch=show)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"config": asdict(config),
                                        "epochs": [asdict(epoch) for epoch in epochs]},
                                       indent=2, default=str))
        print(f"results written to {args.out}")
