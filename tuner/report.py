"""Reports of a tuning run, rebuilt from RUN_DIR alone (`cce-tune report RUN_DIR`).

RUN_DIR/report/ gets `trials.csv` (every trial, every metric, estimated against measured
memory), `history.csv` (every trial's every epoch, with the training seconds spent by then:
what `cce-tune replay` reads), `pareto.csv` and `pareto.json` (the trials no other trial
beats on quality (NDCG@10 for SASRec, AUC for DLRM), epoch time and peak memory at once),
`report.html` (interactive plotly, self-contained) and `summary.md` (the recommended
balanced configuration and the command that trains it).

The balanced configuration is the knee of the front: with each objective scaled to [0, 1]
over the front (0 the best value), the trial closest to the ideal point (0, 0, 0).
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
from pathlib import Path

import pandas as pd

from cce_tune.tuner.early_stopping import COST
from cce_tune.tuner.families import Family
from cce_tune.tuner.run_dir import (
    HISTORY_FILE,
    INTERRUPTED,
    LAST_EPOCH,
    MEMORY_GRID_FILE,
    NOT_STARTED,
    RAN_TO_THE_END,
    REJECTED_FILE,
    REPORT_DIR,
    TuneSettings,
    ended_state,
    error_state,
    launches_stopped,
    objective_values,
    resume_times,
)
from cce_tune.tuner.units import GB

# A trial's step figures besides its epoch time, where its family reports them: model FLOPs
# per training second (1e12) and the seconds each validation took.
STEP_FIGURES = ("tflops", "eval_seconds")


def load_trials(run_dir: Path, family: Family, epochs: int) -> pd.DataFrame:
    """One row per trial found in RUN_DIR: its knobs, its best validation epoch, its status
    (`epochs` is the run's cap: a trial that ended before it was stopped early)."""
    rows = []
    for params_file in sorted(Path(run_dir).glob("*/params.json")):
        trial_dir = params_file.parent
        params = json.loads(params_file.read_text())
        results = _results(trial_dir / "result.json", family.quality)
        error = _error(trial_dir)
        row = {"trial": trial_dir.name.removeprefix("trial_"),
               **{k: params.get(k) for k in family.searchable if k in params},
               "estimate_total_gb": params.get("estimate_total_bytes", 0) / GB,
               "gpu_fraction": params.get("gpu_fraction")}
        if results:
            best = max(results, key=lambda r: r[family.quality])
            row |= {
                **objective_values(results, family.quality), family.second: best[family.second],
                "best_epoch": best["epoch"], "epochs": len(results),
                family.throughput: statistics.median(r[family.throughput] for r in results),
                "memory_measured": results[-1]["memory_measured"],
                "estimate_gb": results[-1]["estimate_gb"],
                "loss_value": results[-1]["loss"],
                COST: results[-1].get(COST),
                "started_at": results[0].get("trial_started_at"),
                "setup_at": results[0].get("setup_at"),
                "first_step_at": results[0].get("first_step_at"),
                "ended_at": results[-1].get("reported_at"),
                # Medians of what the sequence models report beside epoch time.
                **{key: statistics.median(r[key] for r in results)
                   for key in STEP_FIGURES if all(key in r for r in results)},
            }
        row["status"] = _status(error, results, epochs)
        row["error"] = error.strip().splitlines()[-1][:300] if error else ""
        rows.append(row)
    return pd.DataFrame(rows)


def load_history(run_dir: Path, family: Family) -> pd.DataFrame:
    """Every trial's every epoch: the training seconds it had spent by then (the cost early
    stopping compares at) and the validation metrics it reached."""
    columns = ["trial", "epoch", COST, "epoch_seconds", family.quality, family.second,
               "peak_memory_gb"]
    rows = []
    for params_file in sorted(Path(run_dir).glob("*/params.json")):
        trial = params_file.parent.name.removeprefix("trial_")
        for result in _results(params_file.parent / "result.json", family.quality):
            rows.append([trial, *(result.get(column) for column in columns[1:])])
    return pd.DataFrame(rows, columns=columns)


def _results(path: Path, quality: str) -> list[dict]:
    """A trial's epochs; of a trial a resumed run restarted (it has no checkpoint), the
    restart's only."""
    if not path.is_file():
        return []
    out: list[dict] = []
    for line in path.read_text().splitlines():
        if line.strip():
            result = json.loads(line)
            if quality not in result:
                continue
            if out and result.get("epoch", 0) <= out[-1].get("epoch", 0):
                out = []
            out.append(result)
    return out


def _error(trial_dir: Path) -> str:
    path = trial_dir / "error.txt"
    return path.read_text() if path.is_file() else ""


def _status(error: str, results: list[dict], epochs: int) -> str:
    if error:
        return error_state(error)
    if not results:
        return NOT_STARTED
    # A trial's last epoch says so (LAST_EPOCH); Ray marks the result at which its scheduler
    # stopped a trial `done`. Neither: the run was cut off while the trial trained.
    if not (results[-1].get(LAST_EPOCH) or results[-1].get("done")):
        return INTERRUPTED
    return ended_state(results[-1], epochs)


def pareto_mask(points: list[tuple[float, ...]], senses: tuple[str, ...]) -> list[bool]:
    """True for each point that no other point dominates (at least as good in every
    objective, better in one); `senses` holds "max" or "min" per objective."""
    signed = [tuple(v if s == "min" else -v for v, s in zip(p, senses, strict=True))
              for p in points]
    mask = []
    for i, p in enumerate(signed):
        dominated = any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p
                        for j, q in enumerate(signed) if j != i)
        mask.append(not dominated)
    return mask


def knee(front: pd.DataFrame, objectives: dict[str, str]) -> int:
    """Index (into `front`) of the trial nearest the ideal point, objectives scaled to [0, 1]."""
    distances = []
    for _, row in front.iterrows():
        total = 0.0
        for name, sense in objectives.items():
            low, high = front[name].min(), front[name].max()
            span = high - low or 1.0
            gap = (high - row[name]) if sense == "max" else (row[name] - low)
            total += (gap / span) ** 2
        distances.append(math.sqrt(total))
    return int(front.index[distances.index(min(distances))])


def write_reports(run_dir: Path) -> Path:
    """Write RUN_DIR/report/ from what the run left in RUN_DIR; returns that folder."""
    run_dir = Path(run_dir)
    settings = TuneSettings.load(run_dir)
    family = settings.family
    trials = load_trials(run_dir, family, settings.epochs)
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    if trials.empty:
        (out / "summary.md").write_text(f"# cce-tune run\n\n{run_dir}: no trials have run "
                                        "yet\n")
        return out
    finished = trials[trials["status"].isin(RAN_TO_THE_END)]
    on_front = [] if finished.empty else pareto_mask(
        list(finished[list(family.objectives)].itertuples(index=False, name=None)),
        tuple(family.objectives.values()))
    trials["pareto"] = trials.index.isin(finished.index[on_front])
    trials.to_csv(out / "trials.csv", index=False)
    history = load_history(run_dir, family)
    history.to_csv(out / HISTORY_FILE, index=False)
    front = trials[trials["pareto"]].sort_values("peak_memory_gb")
    front.to_csv(out / "pareto.csv", index=False)
    (out / "pareto.json").write_text(front.to_json(orient="records", indent=2))
    rejected = _rejected(run_dir)
    recommended = front.loc[knee(front, family.objectives)] if not front.empty else None
    (out / "summary.md").write_text(summary(settings, trials, front, recommended, rejected))
    try:
        from cce_tune.tuner.report_html import write_html
    except ImportError as error:  # a broken install must not cost the run's other reports
        print(f"cce-tune: report.html skipped ({error}); `pip install plotly`, then "
              f"`cce-tune report {run_dir}`")
        return out
    command = train_command(settings, recommended) if recommended is not None else None
    edge = budget_edge(run_dir, family.grid, recommended, settings.budget_limit / GB)
    write_html(out / "report.html", settings, trials, history, front, recommended, command,
               edge)
    return out


def budget_edge(run_dir: Path, grid: tuple[str, str], at: pd.Series | None,
                limit_gb: float) -> pd.DataFrame | None:
    """Along the first grid knob, the largest value of the second that fits the budget (by
    the estimates written at the start), the other knobs at `at`'s values (the recommended
    trial's); None without those estimates or a trial to take the other knobs from, or where
    the budget does not bind (every point fits: the "edge" would be the space's own)."""
    path = run_dir / MEMORY_GRID_FILE
    if at is None or not path.is_file():
        return None
    estimates = pd.read_json(path, lines=True, dtype=False)  # "256" (an MLP) stays a string
    x, y = grid
    if estimates.empty or not {x, y} <= set(estimates):
        return None
    for knob in estimates.columns.drop([x, y, "estimate_total_gb"]):
        if estimates[knob].nunique() > 1:  # a searched discrete knob: the trial's value
            estimates = estimates[estimates[knob] == at.get(knob)]
    fits = estimates[estimates["estimate_total_gb"] <= limit_gb]
    if fits.empty or len(fits) == len(estimates):
        return None
    return fits.groupby(x)[y].max().reset_index()


def _rejected(run_dir: Path) -> int:
    path = run_dir / REJECTED_FILE
    return sum(1 for _ in path.open()) if path.is_file() else 0


def trial_gaps(trials: pd.DataFrame, resumes: list[float] = ()) -> pd.DataFrame:
    """Per trial started in a slot another one freed, the seconds from that end to its first
    step (`total`): the tuner's own overhead between trials, in parts: `ray` until the trial
    function starts, `setup` until model and data are on the device, `first_step`. A gap a
    `resumes` time falls in is the run's interruption, not overhead: left out."""
    columns = ["total", "ray", "setup", "first_step"]
    if "started_at" not in trials:
        return pd.DataFrame(columns=columns)
    timed = trials.dropna(subset=["started_at", "first_step_at", "ended_at"])
    rows = []
    for _, trial in timed.iterrows():
        before = timed[timed["ended_at"] <= trial["started_at"] + 1e-3]["ended_at"]
        if before.empty or any(before.max() <= t <= trial["started_at"] for t in resumes):
            continue
        setup_at = trial.get("setup_at", math.nan)
        rows.append([trial["first_step_at"] - before.max(), trial["started_at"] - before.max(),
                     setup_at - trial["started_at"], trial["first_step_at"] - setup_at])
    return pd.DataFrame(rows, columns=columns, dtype=float)


def _value(row: pd.Series, knob: str) -> object | None:
    """A knob's value in a trial's row; None where the row has none (NaN in a column)."""
    got = row.get(knob)
    return None if got is None or (isinstance(got, float) and math.isnan(got)) else got


def train_command(settings: TuneSettings, row: pd.Series) -> str:
    """The command that retrains a trial's configuration: every searched knob from the
    trial's row, the rest from the run's base config, written by the family's knob table."""
    family = settings.family
    params = {}
    for knob in family.knobs:
        value = _value(row, knob.name) if knob.searchable else None
        if value is not None:
            params[knob.name] = knob.kind(value)
    config = family.config_from_params(params, settings.base)
    return shlex.join(["cce-tune", "train", "--model", settings.model,
                       *family.train_argv(settings.data, config)])


def summary(settings: TuneSettings, trials: pd.DataFrame, front: pd.DataFrame,
            recommended: pd.Series | None, rejected: int) -> str:
    counts = trials["status"].value_counts().to_dict()
    family = settings.family
    columns = family.table_columns(trials)
    gaps = trial_gaps(trials, resume_times(settings.run_dir))
    budget_s = launches_stopped(settings.run_dir)
    lines = [
        f"# cce-tune: {settings.dataset_name}, budget {settings.budget_bytes / GB:g} GB",
        "",
        *_partial(settings, trials),
        f"- space `{settings.space}`, {len(trials)} of {settings.trials} trials "
        + "(" + ", ".join(f"{n} {status}" for status, n in counts.items()) + "); only "
        f"those that ran to their end (converged, or completed the cap of {settings.epochs} "
        "epochs) are compared",
        *([f"- the time budget ({budget_s:g} s) ran out after {len(trials)} launches: no "
           "more were proposed"] if budget_s is not None else []),
        f"- proposals rejected before launch by the memory model: {rejected}",
        f"- launched only below {settings.margin:.0%} of the budget by the estimate",
    ]
    if "memory_measured" in trials and trials["memory_measured"].eq(True).any():
        over = trials[trials["peak_memory_gb"] > settings.budget_bytes / GB]
        lines.append(f"- measured peaks over the budget: {len(over)}")
    else:
        lines.append("- memory: estimated (no GPU measured these trials)")
    if not gaps.empty:
        parts = gaps.median()
        split = "" if math.isnan(parts["setup"]) else (
            f" (medians: Ray {parts['ray']:.2f} s, setup {parts['setup']:.2f} s, first step "
            f"{parts['first_step']:.2f} s)")
        lines.append(f"- from a trial's end to the next one's first step: median "
                     f"{parts['total']:.2f} s, max {gaps['total'].max():.2f} s{split}")
    lines.append("")
    if recommended is None:
        lines.append("No trial finished, so there is no front yet.")
        return "\n".join(lines) + "\n"
    lines += [
        "## Recommended balanced configuration",
        "",
        "The knee of the Pareto front: objectives scaled to [0, 1] over the front, the trial "
        f"nearest the ideal point (best {family.quality_label}, fastest epoch, least memory).",
        "",
        f"- validation {family.quality_label} {recommended[family.quality]:.4f}, "
        f"{family.second_label} {recommended[family.second]:.4f}",
        f"- epoch {recommended['epoch_seconds']:.1f} s, peak memory "
        f"{recommended['peak_memory_gb']:.2f} GB (estimate {recommended['estimate_gb']:.2f} GB)",
        "",
        "```",
        train_command(settings, recommended),
        "```",
        "",
        f"## Pareto front ({len(front)} of {len(trials)} trials)",
        "",
        "| trial | " + " | ".join(header for _, header in columns)
        + f" | {family.quality_label} | epoch s | peak GB | estimated peak GB |",
        "|---" * (len(columns) + 5) + "|",
    ]
    for _, row in front.iterrows():
        knobs = " | ".join(_cell(row.get(knob, "")) for knob, _ in columns)
        lines.append(
            f"| {row['trial']} | {knobs} | {row[family.quality]:.4f} | "
            f"{row['epoch_seconds']:.1f} | {row['peak_memory_gb']:.2f} | "
            f"{row['estimate_gb']:.2f} |")
    return "\n".join(lines) + "\n"


def is_complete(settings: TuneSettings) -> bool:
    """Whether every trial of the run has ended (nothing left for --resume to do)."""
    trials = load_trials(settings.run_dir, settings.family, settings.epochs)
    return not trials.empty and _unfinished(settings, trials) == 0


def was_interrupted(run_dir: Path) -> bool:
    """Whether a trial of the run was cut off mid-way: a Ctrl-C, as a run that merely
    stopped launching (its time budget) ends every trial it started."""
    settings = TuneSettings.load(run_dir)
    trials = load_trials(run_dir, settings.family, settings.epochs)
    return not trials.empty and bool((trials["status"] == INTERRUPTED).any())


def _unfinished(settings: TuneSettings, trials: pd.DataFrame) -> int:
    """Trials interrupted, waiting, or never proposed before the run stopped (unless the
    search stopped proposing: its time budget ran out)."""
    stopped = launches_stopped(settings.run_dir) is not None
    unproposed = 0 if stopped else settings.trials - len(trials)
    return len(trials) - ended_count(trials) + max(unproposed, 0)


def ended_count(trials: pd.DataFrame) -> int:
    """Trials that ended (not interrupted, not waiting to start)."""
    return int((~trials["status"].isin([INTERRUPTED, NOT_STARTED])).sum())


def _partial(settings: TuneSettings, trials: pd.DataFrame) -> list[str]:
    """A warning and the resume command when the run stopped before all its trials ended;
    and the interrupted trial that was ahead of every finished one, if any: the front leaves
    it out, so the best configuration seen may not be on it."""
    if _unfinished(settings, trials) == 0:
        return []
    lines = [f"**Partial run**: {ended_count(trials)} of {settings.trials} trials ended. "
             "Resume it with", "", "    " + resume_command(settings.run_dir), ""]
    quality, label = settings.family.quality, settings.family.quality_label
    cut = trials[(trials["status"] == INTERRUPTED) & trials[quality].notna()]
    finished = trials.loc[trials["status"].isin(RAN_TO_THE_END), quality]
    if not cut.empty and (finished.empty or cut[quality].max() > finished.max()):
        ahead = cut.loc[cut[quality].idxmax()]
        epochs = int(ahead["epochs"])
        lines += [f"Interrupted ahead of every finished trial: trial {ahead['trial']}, "
                  f"validation {label} {ahead[quality]:.4f} after {epochs} "
                  f"epoch{'s' if epochs != 1 else ''} (not on the front, which compares "
                  "finished trials only).", ""]
    return lines


def resume_command(run_dir: Path) -> str:
    return shlex.join(["cce-tune", "tune", "--resume", str(run_dir)])


def _cell(value) -> str:
    """A knob in a Markdown table: rates in scientific notation, whole numbers as such (a
    column with a missing value reads back as floats)."""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else f"{value:.2e}"
    return str(value)
