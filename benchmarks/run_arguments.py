"""The arguments of benchmarks that train models to convergence on a preset, seed by seed
(`batching_quality`, `bert4rec_quality`): one definition, so their commands read alike."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_convergence_arguments(parser: argparse.ArgumentParser, loss_help: str = "") -> None:
    parser.add_argument("--dataset", default="synthetic-ml-1m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--loss", default="cce", help=loss_help or None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", type=Path, default=None)
