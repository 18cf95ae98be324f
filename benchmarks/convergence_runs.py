"""What the benchmarks that train models to convergence on a preset, seed by seed
(`batching_quality`, `bert4rec_quality`), share: their arguments, so their commands read
alike, and how their results are written."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.kernels import gpu_slug


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


def save_rows(name: str, rows: list[dict], command: str, device: str, out_dir: Path,
              markdown: Callable[[list[dict], str, str], str]) -> None:
    """<name>-<gpu>.json (the rows, with the command, device and torch) and .md under
    `out_dir`; written after each seed, so a run cut short keeps its seeds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{name}-{gpu_slug() if torch.cuda.is_available() else 'cpu'}"
    stem.with_suffix(".json").write_text(json.dumps(
        {"command": command, "device": device, "torch": torch.__version__, "rows": rows},
        indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(rows, command, device))
