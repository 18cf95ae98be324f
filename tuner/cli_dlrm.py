"""DLRM's arguments, as the reference code spells them, and `cce-tune estimate --model dlrm`."""

from __future__ import annotations

import argparse
import json

from models.dlrm_config import INTERACTIONS, DLRMConfig, parse_arch
from models.dlrm_memory import DENSE_OPTIMIZERS, SPARSE_OPTIMIZERS
from tuner.arguments import positive_int
from tuner.errors import CceTuneError
from tuner.memory import MemoryProfile, format_bytes

PAPER_TABLES = "-".join(["1000000"] * 8)  # the DLRM paper's single-device benchmark


def add_dlrm_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dlrm (with --model dlrm)")
    group.add_argument("--arch-embedding-size", default=PAPER_TABLES,
                       help="rows of each table, joined by '-' (default: 8 x 1,000,000)")
    group.add_argument("--arch-sparse-feature-size", type=positive_int, default=64)
    group.add_argument("--arch-mlp-bot", default="512-512-64")
    group.add_argument("--arch-mlp-top", default="1024-1024-1024-1")
    group.add_argument("--arch-interaction-op", choices=INTERACTIONS, default="dot")
    group.add_argument("--num-indices-per-lookup", type=positive_int, default=100)
    group.add_argument("--sparse-optimizer", choices=SPARSE_OPTIMIZERS, default="sgd")
    group.add_argument("--dense-optimizer", choices=DENSE_OPTIMIZERS, default="sgd")


def dlrm_config(args: argparse.Namespace) -> DLRMConfig:
    try:
        return DLRMConfig(
            table_sizes=parse_arch(args.arch_embedding_size, "--arch-embedding-size")
            if "-" in args.arch_embedding_size else (int(args.arch_embedding_size),),
            bottom=parse_arch(args.arch_mlp_bot, "--arch-mlp-bot"),
            top=parse_arch(args.arch_mlp_top, "--arch-mlp-top"),
            embedding_dim=args.arch_sparse_feature_size,
            interaction=args.arch_interaction_op)
    except ValueError as error:
        raise CceTuneError(str(error)) from None


def run_estimate_dlrm(args: argparse.Namespace) -> None:
    from tuner.memory_dlrm import estimate_dlrm, gpus_for_tables

    config = dlrm_config(args)
    profile = MemoryProfile.load(args.memory_profile) if args.memory_profile else None
    breakdown = estimate_dlrm(config, args.batch_size, args.num_indices_per_lookup,
                              args.sparse_optimizer, args.dense_optimizer, profile)
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
