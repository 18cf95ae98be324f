"""Does grouping users by length cost quality? SASRec trained to convergence with batches of
users of similar length (the default) and with users in random order, seed by seed; with
`--cuda-graphs`, also grouped batches replayed from CUDA graphs (the same step, launched
at once: it must learn the same).

    python -m benchmarks.batching_quality --bf16 --out-dir benchmarks/results

Both orders cut each batch to its longest sequence, which changes no output; grouping changes
which users share a step, so it can change what the model learns. Per seed: validation and
test NDCG@10 at the best epoch, the epochs it took and the training seconds (evaluation
excluded). Writes batching-quality-<gpu>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.convergence_runs import add_convergence_arguments, save_rows
from benchmarks.kernels import command_line
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.train import train

# How each variant's batches are built and stepped: TrainConfig fields.
ORDERS = {"by length": {"batch_by_length": True}, "random": {"batch_by_length": False}}
GRAPHED = {"by length, CUDA graphs": {"batch_by_length": True, "cuda_graphs": True}}


def run(config: TrainConfig, data) -> dict:
    result = train(config, data)
    best = max(result.epochs, key=lambda epoch: epoch.valid.ndcg10)
    return {"valid_ndcg10": best.valid.ndcg10, "test_ndcg10": result.test.ndcg10,
            "epochs": len(result.epochs), "best_epoch": best.epoch,
            "train_seconds": sum(epoch.seconds for epoch in result.epochs),
            "median_epoch_seconds": statistics.median(e.seconds for e in result.epochs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_convergence_arguments(parser)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="also the grouped batches replayed from CUDA graphs")
    args = parser.parse_args()
    variants = {**ORDERS, **(GRAPHED if args.cuda_graphs else {})}

    data = load(DataOptions(args.dataset))
    print(data.summary(), flush=True)
    command = command_line("benchmarks.batching_quality", args)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    rows = []
    for seed in args.seeds:
        for order, fields in variants.items():
            config = TrainConfig(loss=LossConfig(args.loss), batch_size=args.batch_size,
                                 max_len=args.max_len, hidden=args.hidden, lr=args.lr,
                                 epochs=args.epochs, patience=args.patience, bf16=args.bf16,
                                 seed=seed, device=args.device, **fields)
            rows.append({"seed": seed, "order": order, **run(config, data)})
            print(rows[-1], flush=True)
        if args.out_dir is not None:  # seed by seed: a run cut short keeps its seeds
            save_rows("batching-quality", rows, command, device, args.out_dir, markdown)
    print(markdown(rows, command, device))


def markdown(rows: list[dict], command: str, device: str) -> str:
    lines = [f"# Batches grouped by length against random batches: {device}", "",
             f"    {command}", "",
             "SASRec to convergence (patience counted once 10 % above popularity); NDCG@10 "
             "at the best validation epoch, leave-one-out, full ranking. Seconds: training "
             "only.", "",
             "| seed | order | valid NDCG@10 | test NDCG@10 | epochs | train s | epoch s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['order']} | {r['valid_ndcg10']:.4f} | "
              f"{r['test_ndcg10']:.4f} | {r['epochs']} | {r['train_seconds']:.1f} | "
              f"{r['median_epoch_seconds']:.2f} |" for r in rows]
    lines += ["", "| order | median valid | median test | median train s | median epoch s |",
              "|---|---|---|---|---|"]
    for order in {**ORDERS, **GRAPHED}:
        mine = [r for r in rows if r["order"] == order]
        if mine:
            lines.append("| {} | {:.4f} | {:.4f} | {:.1f} | {:.2f} |".format(order, *(
                statistics.median(r[key] for r in mine) for key in (
                    "valid_ndcg10", "test_ndcg10", "train_seconds", "median_epoch_seconds"))))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
