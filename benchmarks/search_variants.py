"""The tuner's search with other settings, replayed on a measured table: what plans the
proposals TPE does not make (a climb from the best trial, or the quality fit's best point,
`tuner.surrogate`), how often (`PlannedSampler.every`), and how many budget-edge points
start it.

    python -m benchmarks.search_variants benchmarks/results/replay/ml-1m-cce-h200 --gpu-mem 3GB

For design tables only (table 1 of issue 14): what it finds there says what to try, not how
well the search does; the held-out table says that. Prints a row per variant (30 seeds, the
replay's metrics, `tuner/replay/metrics.py`) and writes them as Markdown with --out.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from cce_tune.tuner.arguments import memory_size
from cce_tune.tuner.climb import next_neighbour
from cce_tune.tuner.replay.compare import compare, limit_gb
from cce_tune.tuner.replay.simulate import ReplaySettings
from cce_tune.tuner.replay.table import load_table
from cce_tune.tuner.strategies import Strategy
from cce_tune.tuner.surrogate import predicted_best

# What makes the planned proposals: a climb from the best trial, or the fit's best point.
PLANNERS = {"climb": next_neighbour, "surrogate": predicted_best}


def variant(planner: str, every: int, edge_points: int) -> Strategy:
    import optuna

    from cce_tune.tuner.climb import PlannedSampler

    def sampler(seed: int | None):
        return PlannedSampler(optuna.samplers.TPESampler(seed=seed), every=every,
                               planner=PLANNERS[planner])

    return Strategy(f"{planner} every {every}, {edge_points} edge points", "", sampler,
                    veto=True, edge_points=edge_points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--gpu-mem", type=memory_size, help="the budget (default: none)")
    parser.add_argument("--margin", type=float, default=0.9)
    parser.add_argument("--planners", nargs="+", choices=tuple(PLANNERS),
                        default=list(PLANNERS))
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--edge-points", type=int, nargs="+", default=[0, 2, 4, 8])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--grace", type=float, default=60.0, help="ASHA's, in seconds")
    parser.add_argument("--out", type=Path, help="Markdown file for the table")
    args = parser.parse_args()

    table = load_table(args.table)
    settings = ReplaySettings(trials=args.trials, limit_gb=limit_gb(args.gpu_mem, args.margin),
                              grace_seconds=args.grace)
    variants = [variant(planner, every, edge) for planner, every, edge in itertools.product(
        args.planners, args.every, args.edge_points)]
    comparison = compare(table, variants, range(args.seeds), settings)
    checkpoints = comparison.checkpoints
    budget = f"{args.gpu_mem / 1e9:g} GB" if args.gpu_mem else "no budget"
    lines = [f"# Search variants on {args.table} ({budget})", "",
             f"{args.seeds} seeds, {args.trials} evaluated trials each, ASHA grace "
             f"{args.grace:g} s; best feasible {comparison.best.quality:.4f}.", "",
             "| variant | reached | median trials to 1 % | "
             + " | ".join(f"HV@{k}" for k in checkpoints) + " |",
             "|---|---|---|" + "---|" * len(checkpoints)]
    for name, summary in comparison.summaries.items():
        trials = summary.trials_to_within
        lines.append(f"| {name} | {summary.seeds - summary.not_reached}/{summary.seeds} | "
                     f"{'not reached' if trials is None else trials} | "
                     + " | ".join(f"{summary.hypervolume_share[k]:.2f}" for k in checkpoints)
                     + " |")
    print("\n".join(lines), flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n\n    python -m benchmarks.search_variants "
                            + " ".join(_argv(args)) + "\n")


def _argv(args: argparse.Namespace) -> list[str]:
    words = [str(args.table)]
    if args.gpu_mem:
        words += ["--gpu-mem", f"{args.gpu_mem / 1e9:g}GB", "--margin", f"{args.margin:g}"]
    return words + ["--planners", *args.planners, "--every", *map(str, args.every),
                    "--edge-points", *map(str, args.edge_points), "--seeds", str(args.seeds),
                    "--trials", str(args.trials)]


if __name__ == "__main__":
    main()
