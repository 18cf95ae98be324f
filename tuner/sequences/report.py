"""The table `cce-tune train` prints: one row per epoch, then test and the baseline."""

from __future__ import annotations

from cce_tune.tuner.sequences.train import EpochResult, TrainResult
from cce_tune.tuner.units import GB

COLUMNS = ("epoch", "loss", "val NDCG@10", "val HR@10", "train s", "eval s", "seq/s",
           "tokens/s", "TFLOP/s", "peak GB")
WIDTHS = (5, 9, 11, 9, 8, 7, 9, 10, 8, 8)


def _row(cells) -> str:
    return "  ".join(f"{cell:>{width}}" for cell, width in zip(cells, WIDTHS, strict=True))


def _bytes(count: int | None) -> str:
    return "-" if count is None else f"{count / GB:.2f}"


def print_header() -> None:
    print(_row(COLUMNS))


def print_epoch(result: EpochResult) -> None:
    print(_row((
        result.epoch, f"{result.loss:.4f}", f"{result.valid.ndcg10:.4f}",
        f"{result.valid.hr10:.4f}", f"{result.seconds:.1f}", f"{result.eval_seconds:.1f}",
        f"{result.sequences_per_s:,.0f}", f"{result.tokens_per_s:,.0f}",
        f"{result.tflops:.3g}", _bytes(result.peak_memory_bytes),
    )), flush=True)


def print_summary(result: TrainResult) -> None:
    seen = "excluded" if result.config.exclude_seen else "included"
    if result.epochs[-1].converged:
        print(f"converged: validation NDCG@10 stopped improving for "
              f"{result.config.patience} epochs; testing epoch {result.tested_epoch}'s weights")
    print(f"test        NDCG@10 {result.test.ndcg10:.4f}  HR@10 {result.test.hr10:.4f}  "
          f"({result.test.users:,} users, full ranking, seen items {seen})")
    pop = result.popularity_test
    ratio = result.test.ndcg10 / pop.ndcg10 if pop.ndcg10 else float("inf")
    print(f"popularity  NDCG@10 {pop.ndcg10:.4f}  HR@10 {pop.hr10:.4f}  "
          f"(model / popularity NDCG@10: {ratio:.1f}x)")
