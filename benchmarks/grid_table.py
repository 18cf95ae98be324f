"""Measured tables for `cce-tune replay`: every point of a grid over batch size x negatives x
sequence length trained to convergence over several seeds, several runs at once on one GPU.

    python -m benchmarks.grid_table --dataset synthetic-ml-1m --name ml-1m-cce \
        --out-dir benchmarks/results/replay

Writes OUT/NAME/trials.csv (a row per point and seed, the columns a tuning run's
report/trials.csv has, so `cce-tune replay OUT/NAME` reads it), history.csv (every epoch) and
OUT/NAME.md (the command, the best points, the figures that describe the table).

Timing: runs that share the GPU slow each other down, so their own clocks say little about a
configuration. Every point is therefore also timed alone, before the runs (`--timing-steps`
optimizer steps after a warm-up, scaled to an epoch's steps): the table's `epoch_seconds` is
that solo figure, `train_seconds` is solo epoch time x epochs run (history.csv: x epochs so
far). The clocks of the shared runs are kept as `shared_epoch_seconds`. Peak memory is each
run's own (`torch.cuda.max_memory_allocated` is per process); `estimate_total_gb` is the memory
model's estimate with CUDA context and allocator slack, what a budget is checked against.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time
from dataclasses import asdict, astuple, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.kernels import command_line
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data import DataOptions, counts, load
from cce_tune.tuner.memory import DatasetShape, estimate
from cce_tune.tuner.run_dir import COMPLETED, CONVERGED, FAILED, OUT_OF_MEMORY
from cce_tune.tuner.sequences.batching import epoch_batches
from cce_tune.tuner.sequences.config import TrainConfig
from cce_tune.tuner.sequences.train import CLEAR_OF_POPULARITY
from cce_tune.tuner.units import GB

KNOBS = ("loss", "batch_size", "negatives", "max_len")


@dataclass(frozen=True)
class Point:
    loss: str
    batch_size: int
    negatives: int
    max_len: int

    def config(self, base: TrainConfig, seed: int) -> TrainConfig:
        """`base` at this point; the learning rate scaled by sqrt(batch / 128), so a large
        batch is not judged at a small one's step size (the protocol is in grid.json)."""
        loss = replace(base.loss, name=self.loss, num_negatives=self.negatives)
        return replace(base, loss=loss, batch_size=self.batch_size, max_len=self.max_len,
                       lr=base.lr * math.sqrt(self.batch_size / 128), seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic-ml-1m")
    parser.add_argument("--name", required=True, help="the table's folder under --out-dir")
    parser.add_argument("--losses", nargs="+", default=["cce_minus"])
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        default=[32, 64, 128, 256, 512, 1024])
    parser.add_argument("--negatives", type=int, nargs="+",
                        default=[16, 64, 256, 512, 1024, 2048])
    parser.add_argument("--max-lens", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="at batch 128; x sqrt(B/128)")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=8, help="runs at once")
    parser.add_argument("--timing-steps", type=int, default=10)
    parser.add_argument("--time-limit", type=float,
                        help="seconds: launch no run after this long, keep what ended")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/replay"))
    parser.add_argument("--resume", type=Path, metavar="TABLE",
                        help="a table folder of an earlier, cut-off call over the same grid: "
                             "its runs are kept and only the missing ones run")
    args = parser.parse_args()

    data = load(DataOptions(args.dataset))  # generated once here; workers read the cache
    print(data.summary(), flush=True)
    base = TrainConfig(loss=LossConfig(args.losses[0]), hidden=args.hidden, lr=args.lr,
                       dropout=args.dropout, epochs=args.max_epochs, patience=args.patience,
                       bf16=args.bf16, device=args.device)
    points = [Point(*values) for values in itertools.product(
        args.losses, args.batch_sizes, args.negatives, args.max_lens)]
    started = time.time()
    solo = {point: solo_epoch_seconds(point.config(base, 0), data, args.timing_steps)
            for point in points}
    print(f"timed {len(points)} points alone in {time.time() - started:.0f} s", flush=True)
    # Seed by seed (a cut-off run still covers the grid), the longest first within one.
    kept = kept_runs(args.resume, base, points) if args.resume else []
    done = {(run["point"], run["seed"]) for run in kept}
    tasks = sorted(((point, seed) for point in points for seed in args.seeds
                    if (point, seed) not in done),
                   key=lambda task: (args.seeds.index(task[1]), -solo[task[0]]))
    print(f"{len(kept)} runs kept from {args.resume}; {len(tasks)} to run", flush=True)
    out = args.out_dir / args.name
    out.mkdir(parents=True, exist_ok=True)
    shape = DatasetShape(*counts(DataOptions(args.dataset)))

    def write(runs: list[dict]) -> pd.DataFrame:
        trials, history = tables(runs, solo, base, shape)
        trials.to_csv(out / "trials.csv", index=False)
        history.to_csv(out / "history.csv", index=False)
        return trials

    deadline = started + args.time_limit if args.time_limit else math.inf
    trials = write(kept + run_all(tasks, base, args.dataset, args.workers, deadline,
                                  lambda runs: write(kept + runs)))
    command = command_line("benchmarks.grid_table", args)
    summary = describe(trials, command, time.time() - started, len(kept))
    (args.out_dir / f"{args.name}.md").write_text(summary)
    (out / "grid.json").write_text(json.dumps(
        {"command": command, "base": asdict(base), "dataset": args.dataset,
         "lr": "base.lr x sqrt(batch_size / 128)", "runs": len(trials),
         "planned": len(points) * len(args.seeds), "kept": len(kept),
         "clear_of_popularity": CLEAR_OF_POPULARITY,
         "wall_seconds": time.time() - started}, indent=1, default=str))
    print(summary)


def solo_epoch_seconds(config: TrainConfig, data, steps: int) -> float:
    """One epoch's training time for `config` alone on the device: `steps` timed optimizer
    steps after three of warm-up (kernel compilation, allocator), scaled to an epoch."""
    import torch

    from cce_tune.tuner.sequences.train import Setup

    setup = Setup(config, data)
    # The trainer's own batches (as its config makes them, weighted), in its random order.
    batches = epoch_batches(setup.lengths, config.batch_size, np.random.default_rng(0),
                            config.batches, config.max_len, setup.device,
                            setup.loss_tokens, setup.token_cap)
    for batch in batches[:3]:
        setup.step(batch.users, batch.width, batch.weight)
    timed = [batches[i % len(batches)] for i in range(steps)]
    if setup.device.type == "cuda":
        torch.cuda.synchronize()
    begin = time.perf_counter()
    for batch in timed:
        setup.step(batch.users, batch.width, batch.weight)
    if setup.device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - begin) / steps
    del setup
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return per_step * len(batches)


def kept_runs(table: Path, base: TrainConfig, points: list[Point]) -> list[dict]:
    """The earlier call's runs this call keeps: those at points of this grid that did not
    fail (a failure runs again). A table of another base config is refused; one whose runs
    counted patience from another margin over popularity is kept with a note (only runs
    stalled that close to popularity would have stopped otherwise)."""
    earlier = json.loads((table / "grid.json").read_text())
    now = json.loads(json.dumps(asdict(base), default=str))
    if earlier["base"] != now:
        differ = ", ".join(f"{key}: {earlier['base'].get(key, 'absent')} then, "
                           f"{now.get(key, 'absent')} now"
                           for key in sorted(set(earlier["base"]) | set(now))
                           if earlier["base"].get(key) != now.get(key))
        raise SystemExit(f"--resume {table}: its runs had another base config ({differ}); "
                         "resume with the settings and trainer it was measured with")
    margin = earlier.get("clear_of_popularity")
    if margin != CLEAR_OF_POPULARITY:
        print(f"note: {table}'s runs counted patience once {margin or 'any margin'} x "
              f"popularity, this call's once {CLEAR_OF_POPULARITY} x", flush=True)
    grid = set(points)
    return [run for run in earlier_runs(table) if run["point"] in grid
            and run["status"] != FAILED]


def earlier_runs(table: Path) -> list[dict]:
    """The runs of an earlier call's trials.csv and history.csv, in `run_all`'s form. Only the
    median of a run's shared clocks and its highest peak were written, so every epoch gets
    those: the figures `tables` reads back. The solo timings are taken again by this call."""
    trials = pd.read_csv(table / "trials.csv", dtype={"trial": str})
    try:
        history = pd.read_csv(table / "history.csv", dtype={"trial": str})
    except pd.errors.EmptyDataError:  # no run had an epoch (all out of memory, say)
        history = pd.DataFrame(columns=["trial", "epoch", "ndcg10", "hr10"])
    runs = []
    for row in trials.itertuples():
        peak_gb = getattr(row, "peak_memory_gb", math.nan)
        peak = None if math.isnan(peak_gb) else peak_gb * GB
        epochs = [{"epoch": e.epoch, "ndcg10": e.ndcg10, "hr10": e.hr10,
                   "seconds": row.shared_epoch_seconds, "peak": peak}
                  for e in history[history["trial"] == row.trial].itertuples()]
        run = {"point": Point(row.loss, int(row.batch_size), int(row.negatives), int(row.max_len)),
               "seed": int(row.seed), "status": row.status, "epochs": epochs}
        if epochs:
            run["ndcg10"] = row.ndcg10
        runs.append(run)
    return runs


def run_all(tasks: list, base: TrainConfig, dataset: str, workers: int, deadline: float,
            checkpoint) -> list[dict]:
    """Every (point, seed) trained to convergence, `workers` at a time in fresh processes,
    until `deadline` (time.time()): then the runs still going are dropped. `checkpoint` is
    given the runs so far every `workers` runs, so a cut-off call keeps them."""
    import torch.multiprocessing as mp

    runs = []
    pool = mp.get_context("spawn").Pool(workers)
    try:
        pending = [pool.apply_async(_train_one, ((point, seed, base, dataset),))
                   for point, seed in tasks]
        while pending and time.time() < deadline:
            ready = [result for result in pending if result.ready()]
            if not ready:
                time.sleep(0.2)
                continue
            for result in ready:
                pending.remove(result)
                run = result.get()
                runs.append(run)
                print(f"[{len(runs)}/{len(tasks)}] {run['point']} seed {run['seed']}: "
                      f"{run['status']}, NDCG@10 {run.get('ndcg10', float('nan')):.4f} after "
                      f"{len(run['epochs'])} epochs", flush=True)
                if len(runs) % workers == 0:
                    checkpoint(runs)
    finally:
        pool.terminate()
    return runs


_DATA = {}


def _train_one(task) -> dict:
    import torch

    from cce_tune.tuner.sequences.train import train

    point, seed, base, dataset = task
    if dataset not in _DATA:
        _DATA[dataset] = load(DataOptions(dataset))
    epochs = []
    run = {"point": point, "seed": seed, "epochs": epochs}
    try:
        train(point.config(base, seed), _DATA[dataset], final_test=False,
              on_epoch=lambda r: epochs.append(
                  {"epoch": r.epoch, "ndcg10": r.valid.ndcg10, "hr10": r.valid.hr10,
                   "seconds": r.seconds, "peak": r.peak_memory_bytes,
                   "converged": r.converged}))
    except torch.cuda.OutOfMemoryError:
        run["status"] = OUT_OF_MEMORY
        return run
    except Exception as error:  # one run's failure must not cost the grid's other runs
        run["status"], run["error"] = FAILED, f"{type(error).__name__}: {error}"
        return run
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    run["status"] = CONVERGED if epochs[-1]["converged"] else COMPLETED
    run["ndcg10"] = max(e["ndcg10"] for e in epochs)
    return run


def tables(runs: list[dict], solo: dict, base: TrainConfig,
           shape: DatasetShape) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trials.csv and history.csv rows: solo timings, each run's own peak, the estimate."""
    trials, history = [], []
    for number, run in enumerate(sorted(runs, key=lambda r: (astuple(r["point"]), r["seed"]))):
        point, epochs = run["point"], run["epochs"]
        config = point.config(base, run["seed"])
        breakdown = estimate(config, shape)
        trial = f"{number:05d}"
        row = {"trial": trial, **asdict(point), "seed": run["seed"], "status": run["status"],
               "epoch_seconds": solo[point],
               "estimate_total_gb": breakdown.total / GB,
               "estimate_gb": breakdown.peak_allocated / GB}
        if epochs:
            best = max(epochs, key=lambda e: e["ndcg10"])
            peaks = [e["peak"] for e in epochs if e["peak"] is not None]
            row |= {"ndcg10": best["ndcg10"], "hr10": best["hr10"], "best_epoch": best["epoch"],
                    "epochs": len(epochs), "train_seconds": solo[point] * len(epochs),
                    "shared_epoch_seconds": statistics.median(e["seconds"] for e in epochs),
                    "peak_memory_gb": max(peaks) / GB if peaks else math.nan}
            history += [{"trial": trial, "epoch": e["epoch"],
                         "train_seconds": solo[point] * e["epoch"], "ndcg10": e["ndcg10"],
                         "hr10": e["hr10"]} for e in epochs]
        trials.append(row)
    return pd.DataFrame(trials), pd.DataFrame(history)


def describe(trials: pd.DataFrame, command: str, seconds: float, kept: int = 0) -> str:
    """The table in a few lines: size, the best points (median over seeds), the spread;
    `kept`: rows an earlier call measured (`--resume`), not timed by `seconds`."""
    points = trials.groupby(list(KNOBS)).agg(
        ndcg10=("ndcg10", "median"), spread=("ndcg10", lambda s: s.max() - s.min()),
        epochs=("epochs", "median"), epoch_s=("epoch_seconds", "first"),
        estimate_gb=("estimate_total_gb", "first"), peak_gb=("peak_memory_gb", "max"),
    ).reset_index().sort_values("ndcg10", ascending=False)
    corners = {knob: (trials[knob].min(), trials[knob].max()) for knob in KNOBS[1:]}
    best = points.iloc[0]
    at_corner = all(best[knob] in corners[knob] for knob in corners)
    lines = [f"# Measured table: {len(points)} points x {trials['seed'].nunique()} seeds",
             "", f"    {command}", "",
             f"{len(trials) - kept} runs in {seconds / 60:.1f} min"
             + (f" and {kept} kept from an earlier call" if kept else "") + "; statuses: "
             + ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items()) + ".",
             "Best point (median validation NDCG@10 over seeds): "
             + ", ".join(f"{knob} {best[knob]}" for knob in KNOBS)
             + f": {best['ndcg10']:.4f} ({'a corner' if at_corner else 'not a corner'} of the "
             "grid). Median spread over seeds (max - min): "
             f"{points['spread'].median():.4f}.", "",
             "| " + " | ".join(points.columns) + " |",
             "|" + "---|" * len(points.columns)]
    for _, row in points.head(15).iterrows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    main()
