"""Two checks of a finished tuning run that a user has to be able to trust: does early
stopping treat large batches fairly, and does the recommended configuration retrain to the
quality the report gave it?

    python -m benchmarks.tuning_run_bars RUN_DIR --seeds 101 102 103 --out-dir benchmarks/results

1. Early stopping: the share of trials stopped early among those at batch size >= `--large`
   (2048) against those at <= `--small` (512). Issue 14's bar: at most 10 points above; ASHA
   comparing trials at equal epochs stopped large batches first.
2. Retraining: the summary's recommended `cce-tune train` command, run as a user would with
   each new seed (`--seed` added last, so it wins), its best validation NDCG@10 per seed;
   their median against the recommended trial's figure in the report. The bar: within 2 %.

Writes tuning-run-bars-<run name>.json and .md under --out-dir.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from cce_tune.tuner.report import knee, load_trials
from cce_tune.tuner.run_dir import RAN_TO_THE_END, REPORT_DIR, STOPPED_EARLY, TuneSettings


def stopped_shares(trials: pd.DataFrame, small: int, large: int) -> dict[str, dict]:
    """Trials and the share stopped early, at batch sizes <= `small` and >= `large`, of the
    trials early stopping had its say on: stopped, or run to their end (an interrupted or
    failed trial was neither)."""
    out = {}
    judged = trials[trials["status"].isin((STOPPED_EARLY, *RAN_TO_THE_END))]
    for name, rows in (("small", judged[judged["batch_size"] <= small]),
                       ("large", judged[judged["batch_size"] >= large])):
        stopped = int((rows["status"] == STOPPED_EARLY).sum())
        out[name] = {"trials": len(rows), "stopped": stopped,
                     "share": stopped / len(rows) if len(rows) else None}
    return out


def recommended(run_dir: Path) -> tuple[str, float]:
    """The summary's recommended command and the recommended trial's quality."""
    report = run_dir / REPORT_DIR
    command = next((line for line in (report / "summary.md").read_text().splitlines()
                    if line.startswith("cce-tune train")), None)
    if command is None:
        raise SystemExit(f"{run_dir}: no recommended configuration (no trial ran to its end; "
                         f"see {report / 'summary.md'})")
    settings = TuneSettings.load(run_dir)
    front = pd.read_csv(report / "pareto.csv", dtype={"trial": str})
    family = settings.family
    return command, float(front.loc[knee(front, family.objectives), family.quality])


def retrain(command: str, seeds: list[int], extra: list[str]) -> list[float]:
    """The command's best validation NDCG@10 with each seed, `extra` flags appended. The seeds
    train at once, each in its own process, as a user would start them side by side on one
    GPU (quality does not depend on the clock; the GPU must hold them all)."""
    with tempfile.TemporaryDirectory() as scratch:
        runs = []
        for seed in seeds:
            result = Path(scratch) / f"seed{seed}.json"
            argv = [*shlex.split(command)[1:], *extra, "--seed", str(seed), "--out", str(result)]
            log = open(Path(scratch) / f"seed{seed}.log", "w")  # noqa: SIM115 (closed below)
            runs.append((argv, result, log, subprocess.Popen(
                [sys.executable, "-m", "cce_tune.tuner.cli", *argv], stdout=log,
                stderr=subprocess.STDOUT)))
        for *_, log, process in runs:  # all of them, before their folder goes
            process.wait()
            log.close()
        out = []
        for argv, result, log, process in runs:
            if process.returncode != 0:
                raise RuntimeError(f"retraining failed: cce-tune {shlex.join(argv)}\n"
                                   + Path(log.name).read_text()[-2000:])
            epochs = json.loads(result.read_text())["epochs"]
            out.append(max(epoch["valid"]["ndcg10"] for epoch in epochs))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--small", type=int, default=512)
    parser.add_argument("--large", type=int, default=2048)
    parser.add_argument("--extra", default="", help="flags added to the retraining command, "
                                                     "e.g. '--device cpu'")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()

    settings = TuneSettings.load(args.run_dir)
    trials = load_trials(args.run_dir, settings.family, settings.base.epochs)
    shares = stopped_shares(trials, args.small, args.large)
    command, reported = recommended(args.run_dir)
    seeds = retrain(command, args.seeds, shlex.split(args.extra))
    median = statistics.median(seeds)
    result = {"run_dir": str(args.run_dir), "stopped": shares, "command": command,
              "extra": args.extra, "reported_ndcg10": reported, "seeds": args.seeds,
              "retrained_ndcg10": seeds, "median": median, "ratio": median / reported}
    text = markdown(result, args)
    print(text)
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        stem = args.out_dir / f"tuning-run-bars-{args.run_dir.name}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        stem.with_suffix(".md").write_text(text)


def markdown(result: dict, args: argparse.Namespace) -> str:
    small, large = result["stopped"]["small"], result["stopped"]["large"]

    def share(group: dict) -> str:
        return "-" if group["share"] is None else f"{group['share']:.0%}"

    gap = (None if small["share"] is None or large["share"] is None
           else 100 * (large["share"] - small["share"]))
    lines = [f"# Tuning-run bars: {result['run_dir']}", "",
             f"    python -m benchmarks.tuning_run_bars {result['run_dir']} --seeds "
             + " ".join(map(str, result["seeds"]))
             + (f" --extra '{result['extra']}'" if result["extra"] else ""), "",
             "| trials at batch | trials | stopped early | share |", "|---|---|---|---|",
             f"| <= {args.small} | {small['trials']} | {small['stopped']} | {share(small)} |",
             f"| >= {args.large} | {large['trials']} | {large['stopped']} | {share(large)} |",
             "", "Large minus small: "
             + ("not measurable (a group is empty)" if gap is None else f"{gap:+.0f} points")
             + " (bar: at most +10).", "",
             f"Recommended: `{result['command']}`", "",
             f"The report gave validation NDCG@10 {result['reported_ndcg10']:.4f}; retrained "
             "with seeds " + ", ".join(f"{s}: {v:.4f}" for s, v in zip(
                 result["seeds"], result["retrained_ndcg10"], strict=True))
             + f"; median {result['median']:.4f}, {result['ratio']:.3f}x the report's "
             "(bar: within 2 %)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
