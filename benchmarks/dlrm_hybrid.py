"""DLRM's benchmark configuration trained by hybrid parallelism over several GPUs: time per
epoch and each GPU's peak memory beside its estimate.

    python -m benchmarks.dlrm_hybrid --world 2          # one process per GPU, NCCL
    python -m benchmarks.dlrm_hybrid --world 2 --device cpu --small   # gloo, a smoke run

The paper's configuration (`benchmarks.dlrm`: 8 tables of 1,000,000 x 64, bottom MLP
512-512-64, top 1024-1024-1024-1, 100 ids a lookup, global batch 1,024, 2,048K random
samples, SGD, tables updated inside the backward), its tables placed by
`models.dlrm_hybrid.place_tables`, each rank holding only its tables' ids. Every rank draws
the same global batches (one generator seed); a pool of batches is generated beforehand and
cycled, as in the one-GPU benchmark. Peaks are measured over warm-up steps on one batch,
before the pool exists. `--world 1` runs the same code on one GPU, the baseline. Rank 0
writes dlrm-hybrid-<gpu>-<world>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from benchmarks.kernels import gpu_slug
from cce_tune.models.dlrm_config import DLRMConfig
from cce_tune.models.dlrm_hybrid import HybridDLRM, place_tables
from cce_tune.tuner.clicks.batches import ClickBatch, ClickGenerator, ClickSpec
from cce_tune.tuner.clicks.memory import estimate_hybrid_rank
from cce_tune.tuner.units import GB

PAPER = DLRMConfig(table_sizes=(1_000_000,) * 8, bottom=(512, 512, 64),
                   top=(1024, 1024, 1024, 1), embedding_dim=64, interaction="dot")
SMALL = DLRMConfig(table_sizes=(1000,) * 4, bottom=(16, 32, 8), top=(32, 1), embedding_dim=8)


def local_only(batch: ClickBatch, tables: tuple[int, ...]) -> ClickBatch:
    """The batch with other ranks' tables' ids dropped (a rank loads only its own)."""
    empty = batch.indices[0].new_empty(0)
    keep = set(tables)
    return ClickBatch(batch.dense, [ids if t in keep else empty
                                    for t, ids in enumerate(batch.indices)],
                      batch.offsets, batch.labels)


def rank_main(rank: int, args: argparse.Namespace, port: int) -> None:
    cuda = args.device == "cuda"
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # the device notes: multicast off
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=args.world)
    try:
        run_rank(rank, args, torch.device("cuda", rank) if cuda else torch.device("cpu"))
        dist.barrier()  # every rank done communicating before any tears down (tests/gloo.py)
    finally:
        dist.destroy_process_group()


def run_rank(rank: int, args: argparse.Namespace, device: torch.device) -> None:
    config, lookups = (SMALL, 4) if args.small else (PAPER, 100)
    owners = place_tables(config.table_sizes, args.world)
    torch.manual_seed(0)
    model = HybridDLRM(config, owners).to(device).data_parallel()
    model.fuse_table_sgd(0.01)
    optimizer = torch.optim.SGD(model.dense_parameters(), lr=0.01)
    part = args.batch_size // args.world
    mine = slice(rank * part, (rank + 1) * part)
    generator = ClickGenerator(ClickSpec(config.table_sizes, dense_features=config.dense_features,
                                         lookups=lookups), planted=False, seed=0, device=device)

    def draw() -> ClickBatch:
        batch = local_only(generator.batch(args.batch_size), model.local)
        return ClickBatch(batch.dense[mine], batch.indices, batch.offsets, batch.labels[mine])

    def step(batch: ClickBatch) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(
            model(batch.dense, batch.indices, batch.offsets), batch.labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    cuda = device.type == "cuda"
    one = draw()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(5):
        step(one)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    estimate = estimate_hybrid_rank(config, owners, rank, args.batch_size, lookups)
    pool = [draw() for _ in range(args.pool)]
    steps = args.samples // args.batch_size
    dist.barrier()
    started = time.perf_counter()
    for index in range(steps):
        loss = step(pool[index % args.pool])
    if cuda:
        torch.cuda.synchronize()
    dist.barrier()
    seconds = time.perf_counter() - started
    figures = {"rank": rank, "tables": list(model.local), "peak_bytes": peak,
               "estimate_bytes": estimate.peak_allocated, "seconds": seconds,
               "final_loss": float(loss)}
    gathered: list[dict] = [{}] * args.world
    dist.all_gather_object(gathered, figures)
    if rank == 0:
        report(gathered, args, steps, device)


def report(ranks: list[dict], args: argparse.Namespace, steps: int,
           device: torch.device) -> None:
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    seconds = max(r["seconds"] for r in ranks)
    command = (f"python -m benchmarks.dlrm_hybrid --world {args.world} --device {args.device}"
               + (" --small" if args.small else "") + f" --samples {args.samples}")
    lines = [f"# DLRM hybrid parallelism over {args.world} x {name}", "", f"    {command}", "",
             f"{steps * args.batch_size:,} samples in {steps} steps of {args.batch_size}: "
             f"{seconds:.2f} s ({seconds / steps * 1e3:.2f} ms a step).", "",
             "| rank | tables | peak GB | estimate GB | error |", "|---|---|---|---|---|"]
    for r in ranks:
        peak = r["peak_bytes"]  # None on CPUs: nothing measures it
        error = f"{r['estimate_bytes'] / peak - 1:+.1%}" if peak else "-"
        lines.append(f"| {r['rank']} | {', '.join(map(str, r['tables']))} | "
                     f"{f'{peak / GB:.3f}' if peak else '-'} | "
                     f"{r['estimate_bytes'] / GB:.3f} | {error} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    slug = gpu_slug() if device.type == "cuda" else "cpu"
    stem = args.out_dir / f"dlrm-hybrid-{slug}-{args.world}"
    stem.with_suffix(".json").write_text(json.dumps(
        {"command": command, "device": name, "torch": torch.__version__, "world": args.world,
         "batch_size": args.batch_size, "steps": steps, "seconds": seconds, "ranks": ranks},
        indent=1) + "\n")
    stem.with_suffix(".md").write_text(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2, help="processes, one GPU each")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--small", action="store_true", help="a small model, for a CPU run")
    parser.add_argument("--samples", type=int, default=2_048_000)
    parser.add_argument("--batch-size", type=int, default=1024, help="the global batch")
    parser.add_argument("--pool", type=int, default=16, help="pre-generated batches, cycled")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.device == "cuda" and torch.cuda.device_count() < args.world:
        parser.error(f"--world {args.world}: {torch.cuda.device_count()} GPUs visible")
    if args.batch_size % args.world:
        parser.error(f"--batch-size {args.batch_size} does not split over {args.world} ranks")
    mp.spawn(rank_main, args=(args, free_port()), nprocs=args.world)


if __name__ == "__main__":
    main()
