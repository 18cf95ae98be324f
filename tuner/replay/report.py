"""A `Comparison` written out: an aligned text table for the terminal, Markdown (the command
that produced it first) and JSON with every number."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

from cce_tune.tuner.replay.compare import Comparison
from cce_tune.tuner.replay.metrics import WITHIN, Summary, target_quality
from cce_tune.tuner.replay.table import Point

JSON_FILE, MARKDOWN_FILE = "replay.json", "replay.md"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _number(value: float | None, missing: str = "-") -> str:
    if value is None:
        return missing
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _params(point: Point) -> str:
    return " ".join(f"{k}={v}" for k, v in point.params.items())


def headline(comparison: Comparison) -> list[str]:
    """What was replayed: the table, the budget, the best feasible point, the settings."""
    c, table, settings = comparison, comparison.table, comparison.settings
    budget = ("no memory budget" if math.isinf(settings.limit_gb)
              else f"{len(c.feasible)} under {settings.limit_gb:.2f} GB ({table.memory})")
    if not table.has_history:
        grace = "no early stopping (the table has no history)"
    elif settings.grace_seconds:
        grace = f"ASHA grace {duration(settings.grace_seconds)} of training"
    else:
        grace = "no early stopping"
    seeds = c.seeds
    seed_text = (f"seeds {seeds[0]}-{seeds[-1]}" if seeds == tuple(range(seeds[0],
                                                                         seeds[-1] + 1))
                 else "seeds " + ",".join(map(str, seeds)))
    return [
        f"table {table.source}: {len(table.points)} points from {table.rows - table.left_out} "
        f"rows ({table.left_out} left out: stopped early, interrupted, failed or without a "
        f"quality), {budget}; knobs {', '.join(table.knobs)}",
        f"best feasible {table.quality} {c.best.quality:.4f} (median over its seeds) at "
        f"{_params(c.best)}; within {WITHIN:.0%}: >= "
        f"{target_quality(c.best.quality):.4f}; true front {len(c.front)} points",
        f"{settings.trials} evaluated trials per search, {len(seeds)} {seed_text}, {grace}",
    ]


def rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["strategy", "reached", "trials to 1%", "GPU to 1%", "GPU total",
              *(f"HV@{k}" for k in comparison.checkpoints), "rejected", "stopped", "OOM"]
    body = []
    for name, s in comparison.summaries.items():
        body.append([name, f"{s.seeds - s.not_reached}/{s.seeds}",
                     _number(s.trials_to_within, "not reached"),
                     duration(s.gpu_seconds_to_within), duration(s.gpu_seconds),
                     *(f"{s.hypervolume_share[k]:.2f}" for k in comparison.checkpoints),
                     _number(s.rejected), _number(s.stopped_early), _number(s.out_of_memory)])
    return header, body


def stopping_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]] | None:
    """Stopped early / run per batch size and strategy, over every seed; None when no trial
    was stopped or the table has no batch size."""
    summaries = comparison.summaries.values()
    batches = sorted({b for s in summaries for b in s.stopped_by_batch})
    if not batches or not any(s.stopped_early for s in summaries):
        return None
    header = ["stopped early", *(f"B {b:,}" for b in batches)]
    body = [[name, *(_share(s.stopped_by_batch.get(b)) for b in batches)]
            for name, s in comparison.summaries.items()]
    return header, body


def _share(tally: tuple[int, int] | None) -> str:
    if not tally:
        return "-"
    stopped, run = tally
    return f"{stopped}/{run} {stopped / run:.0%}"


def _aligned(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
            for line in (header, *body)]


def text(comparison: Comparison) -> str:
    stopping = stopping_rows(comparison)
    return "\n".join([*headline(comparison), "", *_aligned(*rows(comparison)),
                      *(["", *_aligned(*stopping)] if stopping else []), "",
                      *textwrap.wrap(LEGEND, 100)])


LEGEND = ("medians over seeds; reached: seeds whose search ran a configuration to its end whose "
          "table quality (median over the table's seeds, as the best's) is within 1% of the "
          "best feasible; trials to 1%: evaluated trials until then; GPU: training time "
          "spent; HV@k: hypervolume of the front after k evaluated trials as a share of the "
          "table's; rejected: proposals vetoed over the budget (not counted as trials); "
          "stopped: trials ASHA stopped; OOM: launches over the budget (counted); stopped "
          "early by batch size: trials ASHA stopped of those run at that batch, all seeds")


def markdown(comparison: Comparison, command: str) -> str:
    stopping = stopping_rows(comparison)
    return "\n".join(["# cce-tune replay", "", "```", command, "```", "",
                      *(f"- {line}" for line in headline(comparison)), "",
                      *_markdown_table(*rows(comparison)), "",
                      *([*_markdown_table(*stopping), ""] if stopping else []),
                      LEGEND + ".", "", "Definitions: `tuner/replay/metrics.py`.", ""])


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(line) + " |" for line in body)]


def to_json(comparison: Comparison, command: str) -> dict:
    c, table, settings = comparison, comparison.table, comparison.settings

    def point(p: Point) -> dict:
        quality, seconds, memory = p.objectives
        return {**p.params, table.quality: quality, "epoch_seconds": seconds,
                "peak_memory_gb": memory, "memory_gb": p.memory_gb, "seeds": len(p.outcomes)}

    def summary(s: Summary) -> dict:
        return {**s.to_json(), "hypervolume_share": {str(k): v for k, v in
                                                      s.hypervolume_share.items()}}

    return {
        "command": command,
        "table": {"source": str(table.source), "quality": table.quality,
                  "memory": table.memory, "knobs": list(table.knobs), "rows": table.rows,
                  "left_out": table.left_out, "points": len(table.points),
                  "feasible_points": len(c.feasible), "has_history": table.has_history},
        "settings": {"trials": settings.trials, "limit_gb": _finite(settings.limit_gb),
                     "grace_seconds": settings.grace_seconds,
                     "max_rejections": settings.max_rejections, "within": WITHIN,
                     "checkpoints": list(c.checkpoints)},
        "seeds": list(c.seeds),
        "best": point(c.best),
        "target_quality": target_quality(c.best.quality),
        "front": [point(p) for p in c.front],
        "true_hypervolume": c.true_volume,
        "summaries": {name: summary(s) for name, s in c.summaries.items()},
        "runs": {name: [{**m.to_json(), "hypervolume_share": {
            str(k): v for k, v in m.hypervolume_share.items()}} for m in metrics]
            for name, metrics in c.runs.items()},
    }


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def write(comparison: Comparison, command: str, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_FILE).write_text(json.dumps(to_json(comparison, command), indent=2) + "\n")
    (out / MARKDOWN_FILE).write_text(markdown(comparison, command))
    return out / JSON_FILE, out / MARKDOWN_FILE
