"""BERT4Rec against SASRec with full cross-entropy at equal training time, and against
popularity, on the synthetic set calibrated to MovieLens-1M's difficulty.

    python -m benchmarks.bert4rec_quality --bf16 --out-dir benchmarks/results

Per seed: SASRec with the fused full-catalog loss (`cce`, the RecSys'23 "SASRec+" setting)
trained to convergence (validation NDCG@10 each epoch, patience 3 counted once it beats
popularity, at most `--epochs`), then BERT4Rec (the cloze task, the same loss over the masked
positions) the same way. BERT4Rec's figure at equal time is its best validation NDCG@10 among
the epochs that ended within SASRec's whole training time (evaluation excluded from both
clocks); its converged figure is reported beside it. Runs go one after another, alone on
the device, so the clocks compare.

Published MovieLens-1M figures (leave-one-out, full ranking) the ratios are read against:
SASRec+ NDCG@10 0.182 (Klenitskiy & Vasilev, RecSys 2023) and BERT4Rec 0.154 (Papers with
Code's MovieLens-1M full-corpus entry for BERT4Rec): BERT4Rec at about 0.85x SASRec+.
Writes bert4rec-quality-<gpu>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.kernels import command_line, gpu_slug
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig
from cce_tune.tuner.sequences.train import TrainResult, train


def run(config: TrainConfig, data) -> dict:
    """One run to convergence: every epoch's cumulative training seconds and validation
    NDCG@10, the test at the best epoch, popularity's figures."""
    result: TrainResult = train(config, data)
    clock, curve = 0.0, []
    for epoch in result.epochs:
        clock += epoch.seconds
        curve.append({"epoch": epoch.epoch, "train_seconds": clock,
                      "valid_ndcg10": epoch.valid.ndcg10})
    return {"config": asdict(config), "curve": curve, "train_seconds": clock,
            "valid_ndcg10": max(point["valid_ndcg10"] for point in curve),
            "test_ndcg10": result.test.ndcg10, "best_epoch": result.tested_epoch,
            "popularity_valid_ndcg10": result.popularity_valid.ndcg10,
            "popularity_test_ndcg10": result.popularity_test.ndcg10}


def within(curve: list[dict], seconds: float) -> float:
    """The best validation NDCG@10 among the epochs that ended within `seconds` of
    training (0 when not even the first did)."""
    return max((p["valid_ndcg10"] for p in curve if p["train_seconds"] <= seconds), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic-ml-1m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--loss", default="cce", help="both models' loss (full catalog)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--mask-prob", type=float, default=0.2, help="BERT4Rec's")
    parser.add_argument("--bert4rec-heads", type=int, default=2)
    parser.add_argument("--bert4rec-dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=50, help="SASRec's cap")
    parser.add_argument("--bert4rec-epochs", type=int, default=100, help="BERT4Rec's cap")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()

    data = load(DataOptions(args.dataset))
    print(data.summary(), flush=True)
    common = {"loss": LossConfig(args.loss), "batch_size": args.batch_size,
              "max_len": args.max_len, "hidden": args.hidden, "lr": args.lr,
              "patience": args.patience, "bf16": args.bf16, "device": args.device}
    rows = []
    for seed in args.seeds:
        sasrec = run(TrainConfig(**common, epochs=args.epochs, seed=seed), data)
        bert4rec = run(ClozeConfig(**common, epochs=args.bert4rec_epochs, seed=seed,
                                   mask_prob=args.mask_prob, num_heads=args.bert4rec_heads,
                                   dropout=args.bert4rec_dropout), data)
        equal_time = within(bert4rec["curve"], sasrec["train_seconds"])
        rows.append({"seed": seed, "sasrec": sasrec, "bert4rec": bert4rec,
                     "bert4rec_at_sasrec_time": equal_time,
                     "ratio_equal_time": equal_time / sasrec["valid_ndcg10"],
                     "ratio_converged": bert4rec["valid_ndcg10"] / sasrec["valid_ndcg10"],
                     "over_popularity": equal_time / sasrec["popularity_valid_ndcg10"]})
        print(f"seed {seed}: SASRec {sasrec['valid_ndcg10']:.4f} in {sasrec['train_seconds']:.1f} s"
              f"; BERT4Rec {equal_time:.4f} then, {bert4rec['valid_ndcg10']:.4f} in "
              f"{bert4rec['train_seconds']:.1f} s; popularity "
              f"{sasrec['popularity_valid_ndcg10']:.4f}", flush=True)

    command = command_line("benchmarks.bert4rec_quality", args, omit=("out_dir", "bf16"))
    command += " --bf16" if args.bf16 else ""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    text = markdown(rows, command, device)
    print(text)
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"bert4rec-quality-{gpu_slug() if torch.cuda.is_available() else 'cpu'}"
        (args.out_dir / f"{stem}.json").write_text(json.dumps(
            {"command": command, "device": device, "torch": torch.__version__, "rows": rows},
            indent=1, default=str))
        (args.out_dir / f"{stem}.md").write_text(text)


def markdown(rows: list[dict], command: str, device: str) -> str:
    """A row per seed, the medians, and what the issue's bar asks of them."""
    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    lines = [f"# BERT4Rec vs SASRec (full CE) at equal training time: {device}", "",
             f"    {command}", "",
             "Validation NDCG@10 (leave-one-out, full ranking, seen items excluded); clocks are "
             "training seconds, evaluation excluded.", "",
             "| seed | SASRec | its s | BERT4Rec at SASRec's s | BERT4Rec converged | its s "
             "| popularity | ratio (equal time) | x popularity |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s, b = row["sasrec"], row["bert4rec"]
        lines.append(
            f"| {row['seed']} | {s['valid_ndcg10']:.4f} | {s['train_seconds']:.1f} | "
            f"{row['bert4rec_at_sasrec_time']:.4f} | {b['valid_ndcg10']:.4f} | "
            f"{b['train_seconds']:.1f} | {s['popularity_valid_ndcg10']:.4f} | "
            f"{row['ratio_equal_time']:.3f} | {row['over_popularity']:.2f} |")
    ratio, over = median("ratio_equal_time"), median("over_popularity")
    lines += ["", f"Median BERT4Rec / SASRec at equal time: **{ratio:.3f}** (bar 0.8-1.1: "
              f"{'met' if 0.8 <= ratio <= 1.1 else 'not met'}); converged: "
              f"{median('ratio_converged'):.3f}. BERT4Rec / popularity at equal time: "
              f"**{over:.2f}x** (bar >= 2: {'met' if over >= 2 else 'not met'}). Published "
              "MovieLens-1M: BERT4Rec 0.154 / SASRec+ 0.182 = 0.85."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
