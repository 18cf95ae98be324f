"""Does the way users are put in batches cost quality? SASRec trained to convergence with
batches of users of similar length, of random users (each batch cut to its longest
sequence), and of random users packed end to end, seed by seed; also replayed from CUDA
graphs (the same step, launched at once: it must learn the same).

    python -m benchmarks.batching_quality --bf16 --out-dir benchmarks/results

Cutting a batch changes no output, and packing changes none either (but that packed
sequences train without attention dropout, `models.packing`); grouping changes which users
share a step, so it can change what the model learns. Per seed: validation and test NDCG@10
at the best epoch, the epochs it took and the training seconds (evaluation excluded). With
`--workers` several runs share the GPU at once, which leaves their quality alone but not
their seconds. Writes batching-quality-<gpu>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from benchmarks.convergence_runs import add_convergence_arguments, save_rows
from benchmarks.kernels import command_line
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.train import train

# How each variant's batches are built and stepped: TrainConfig fields.
VARIANTS = {
    "by length": {"batches": "length"},
    "random": {"batches": "random"},
    "packed": {"batches": "packed"},
    "by length, CUDA graphs": {"batches": "length", "cuda_graphs": True},
    "packed, CUDA graphs": {"batches": "packed", "cuda_graphs": True},
}


def run(config: TrainConfig, dataset: str) -> dict:
    result = train(config, load(DataOptions(dataset)))
    best = max(result.epochs, key=lambda epoch: epoch.valid.ndcg10)
    return {"valid_ndcg10": best.valid.ndcg10, "test_ndcg10": result.test.ndcg10,
            "epochs": len(result.epochs), "best_epoch": best.epoch,
            "train_seconds": sum(epoch.seconds for epoch in result.epochs),
            "median_epoch_seconds": statistics.median(e.seconds for e in result.epochs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_convergence_arguments(parser)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        default=["by length", "random", "packed"])
    parser.add_argument("--workers", type=int, default=1,
                        help="runs at once on the device (their seconds then compete)")
    args = parser.parse_args()

    print(load(DataOptions(args.dataset)).summary(), flush=True)
    command = command_line("benchmarks.batching_quality", args)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    runs = [(seed, variant, TrainConfig(
        loss=LossConfig(args.loss), batch_size=args.batch_size, max_len=args.max_len,
        hidden=args.hidden, lr=args.lr, epochs=args.epochs, patience=args.patience,
        bf16=args.bf16, seed=seed, device=args.device, **VARIANTS[variant]))
        for seed in args.seeds for variant in args.variants]
    rows = []
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run, config, args.dataset) for _, _, config in runs]
        for (seed, variant, _), future in zip(runs, futures, strict=True):
            rows.append({"seed": seed, "order": variant, **future.result()})
            print(rows[-1], flush=True)
            if args.out_dir is not None:  # run by run: a benchmark cut short keeps its runs
                save_rows("batching-quality", rows, command, device, args.out_dir, markdown)
    print(markdown(rows, command, device))


def markdown(rows: list[dict], command: str, device: str) -> str:
    lines = [f"# Batches grouped by length, random and packed: {device}", "",
             f"    {command}", "",
             "SASRec to convergence (patience counted once 10 % above popularity); NDCG@10 "
             "at the best validation epoch, leave-one-out, full ranking. Seconds: training "
             "only.", "",
             "| seed | order | valid NDCG@10 | test NDCG@10 | epochs | train s | epoch s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['order']} | {r['valid_ndcg10']:.4f} | "
              f"{r['test_ndcg10']:.4f} | {r['epochs']} | {r['train_seconds']:.1f} | "
              f"{r['median_epoch_seconds']:.2f} |" for r in rows]
    lines += ["", "| order | runs | mean valid | mean test | median train s | median epoch s |",
              "|---|---|---|---|---|---|"]
    for order in VARIANTS:
        mine = [r for r in rows if r["order"] == order]
        if mine:
            lines.append("| {} | {} | {:.4f} | {:.4f} | {:.1f} | {:.2f} |".format(
                order, len(mine),
                *(statistics.mean(r[key] for r in mine) for key in ("valid_ndcg10",
                                                                     "test_ndcg10")),
                *(statistics.median(r[key] for r in mine) for key in (
                    "train_seconds", "median_epoch_seconds"))))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
