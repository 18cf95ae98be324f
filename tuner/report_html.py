"""The interactive report: one self-contained HTML page, read top down. First the recommended
configuration and the command that retrains it, then the charts (quality against memory on a
log axis with the budget drawn, quality over the family's two main knobs, quality reached
by training time, estimate against measurement where a GPU measured), then every trial in
a table sortable by any column, failed and out-of-memory ones included."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from cce_tune.tuner.early_stopping import COST
from cce_tune.tuner.run_dir import RAN_TO_THE_END, TuneSettings, launches_stopped
from cce_tune.tuner.units import GB

LEGEND_ON_TOP = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}
# Clicking a header sorts the table by that column (numbers as numbers), again to reverse.
SORT_SCRIPT = """<script>
document.querySelectorAll("table.trials th").forEach((th, column) => th.addEventListener(
  "click", () => {
    const body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
    const up = th.dataset.up !== "1"; th.dataset.up = up ? "1" : "0";
    const key = r => { const t = r.cells[column].innerText, n = parseFloat(t);
                       return isNaN(n) ? t : n; };
    rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
    rows.forEach(r => body.appendChild(r)); }));
</script>"""
STYLE = ("<style>body{font-family:sans-serif;margin:1.5em;max-width:1200px}"
         "pre{background:#f3f3f3;padding:.6em;white-space:pre-wrap}"
         "table.trials{border-collapse:collapse;font-size:13px}"
         "table.trials th{cursor:pointer;background:#eee}"
         "table.trials td,table.trials th{border:1px solid #ccc;padding:2px 6px}"
         ".out-of-memory,.failed{color:#b00}</style>")


def write_html(path: Path, settings: TuneSettings, trials: pd.DataFrame,
               history: pd.DataFrame, front: pd.DataFrame, recommended: pd.Series | None,
               command: str | None, edge: pd.DataFrame | None = None) -> None:
    family = settings.family
    columns = family.table_columns(trials)
    completed = trials[trials["status"].isin(RAN_TO_THE_END)]
    budget_gb = settings.budget_bytes / GB
    counts = ", ".join(f"{n} {status}" for status, n in trials["status"].value_counts().items())
    budget_s = launches_stopped(settings.run_dir)
    spent = ("" if budget_s is None else f" The time budget ({budget_s:g} s) ran out after "
             f"{len(trials)} launches: no more were proposed.")
    parts = [f"<h1>cce-tune: {html.escape(settings.dataset_name)}, budget {budget_gb:g} GB</h1>",
             f"<p>{len(trials)} of {settings.trials} trials ({counts}); {len(front)} on the "
             f"Pareto front of those that ran to their end.{spent}</p>",
             _recommended(family, columns, recommended, command)]
    figures = [figure for figure in (
        _quality_by_memory(family, columns, completed, front, budget_gb),
        _quality_over_grid(family, completed, edge),
        _quality_by_cost(family, columns, trials, history),
        _estimate_against_measured(trials)) if figure is not None]
    for index, figure in enumerate(figures):
        figure.update_layout(legend=LEGEND_ON_TOP, margin={"t": 90})
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    parts.append(_table(family, columns, trials))
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cce-tune report"
                    f"</title>{STYLE}</head><body>" + "\n".join(parts) + SORT_SCRIPT
                    + "</body></html>\n")


def _recommended(family, columns: list[tuple[str, str]], recommended: pd.Series | None,
                 command: str | None) -> str:
    if recommended is None:
        return "<h2>No trial completed yet, so nothing is recommended.</h2>"
    knobs = ", ".join(f"{header} {_cell(recommended.get(knob))}"
                      for knob, header in columns
                      if not pd.isna(recommended.get(knob)))  # a knob newer than the run
    return (f"<h2>Recommended: trial {html.escape(str(recommended['trial']))}</h2>"
            f"<p>{html.escape(knobs)}: validation {family.quality_label} "
            f"{recommended[family.quality]:.4f}, epoch {recommended['epoch_seconds']:.1f} s, "
            f"peak memory {recommended['peak_memory_gb']:.2f} GB"
            f"{'' if recommended.get('memory_measured') else ' (estimated: no GPU measured it)'}"
            ". The knee of the Pareto "
            "front: the trial nearest the ideal point (best quality, fastest epoch, least "
            f"memory). Retrain it with</p><pre>{html.escape(command or '')}</pre>")


def _quality_by_memory(family, columns: list[tuple[str, str]], completed: pd.DataFrame,
                       front: pd.DataFrame, budget_gb: float) -> go.Figure | None:
    """Quality against peak memory on a log axis, so small trials do not crowd at zero."""
    if completed.empty:
        return None
    label = family.quality_label
    measured = completed.get("memory_measured", pd.Series(dtype=bool)).eq(True).any()
    memory = "peak memory (GB, log)" if measured else "estimated peak memory (GB, log; no GPU)"
    figure = px.scatter(
        completed, x="peak_memory_gb", y=family.quality, color="epoch_seconds", log_x=True,
        symbol=completed["pareto"].map({True: "Pareto front", False: "dominated"}),
        hover_data=_hover(columns, completed), color_continuous_scale="Viridis",
        labels={"peak_memory_gb": memory, family.quality: f"validation {label}",
                "epoch_seconds": "epoch (s)", "symbol": ""},
        title=f"{label} against peak memory (color: epoch time)")
    ordered = front.sort_values("peak_memory_gb")
    figure.add_trace(go.Scatter(x=ordered["peak_memory_gb"], y=ordered[family.quality],
                                mode="lines", line={"dash": "dot", "color": "gray"},
                                name="front", showlegend=False))
    # On a log axis an annotation's x is the log of the value (a shape's is not): given as
    # the value, it stretched the axis to 1e40.
    figure.add_vline(x=budget_gb, line_dash="dash", line_color="red")
    figure.add_annotation(x=math.log10(budget_gb), y=1, yref="paper", yanchor="bottom",
                          text=f"budget {budget_gb:g} GB", showarrow=False,
                          font={"color": "red"})
    low = min(completed["peak_memory_gb"].min(), budget_gb)
    high = max(completed["peak_memory_gb"].max(), budget_gb)
    figure.update_xaxes(range=[math.log10(low) - 0.3, math.log10(high) + 0.3])
    return figure


def _quality_over_grid(family, completed: pd.DataFrame,
                       edge: pd.DataFrame | None) -> go.Figure | None:
    """The best quality at each value pair of the family's two main knobs, ticks at the
    values tried; a pair tried more than once shows its count. With `edge`, the budget's
    edge over the two knobs (the recommended trial's other knobs): whether scaling both
    together pays, and how far the budget lets it go."""
    x, y = family.grid
    if completed.empty or not {x, y} <= set(completed):
        return None
    cells = completed.groupby([x, y]).agg(best=(family.quality, "max"),
                                          trials=("trial", "count")).reset_index()
    numeric = {axis: pd.api.types.is_numeric_dtype(cells[axis]) for axis in (x, y)}
    figure = px.scatter(cells, x=x, y=y, color="best", size="trials", size_max=24,
                        text=cells["trials"].map(lambda n: f"x{n}" if n > 1 else ""),
                        log_x=numeric[x], log_y=numeric[y], color_continuous_scale="Viridis",
                        labels={x: _title(x), y: _title(y),
                                "best": f"best {family.quality_label}"},
                        title=f"Best {family.quality_label} over {_title(x)} x {_title(y)} "
                              "(xN: N trials there)")
    figure.update_traces(textposition="top center")
    shown = [cells]
    if edge is not None and all(numeric.values()):
        figure.add_trace(go.Scatter(
            x=edge[x], y=edge[y], mode="lines+markers", line_shape="hv",
            line={"dash": "dash", "color": "red"}, marker={"symbol": "line-ew-open"},
            name="budget edge: the most that fits (other knobs as recommended)"))
        shown.append(edge)
    for axis, name in (("xaxis", x), ("yaxis", y)):
        if numeric[name]:
            values = sorted(pd.concat([frame[name] for frame in shown]).unique())
            figure.update_layout({axis: {"tickvals": values,
                                         "ticktext": [_cell(v) for v in values]}})
    return figure


def _quality_by_cost(family, columns: list[tuple[str, str]], trials: pd.DataFrame,
                     history: pd.DataFrame) -> go.Figure | None:
    """Each trial's best validation quality so far against the training seconds it had
    spent: what a configuration buys for its GPU time, and where early stopping cut it."""
    if history.empty or history[COST].isna().all():
        return None
    curves = history.sort_values(["trial", "epoch"]).copy()
    curves["best"] = curves.groupby("trial")[family.quality].cummax()
    knobs = [knob for knob, _ in columns if knob in trials]
    curves = curves.merge(trials[["trial", "status", *knobs]], on="trial", how="left")
    label = family.quality_label
    figure = px.line(curves, x=COST, y="best", line_group="trial", color="status",
                     markers=True, log_x=True, hover_data=["trial", "epoch", *knobs],
                     labels={COST: "training time (s, log)", "best": f"best validation {label}",
                             "status": ""},
                     title=f"{label} reached by training time (a line per trial)")
    return figure


def _estimate_against_measured(trials: pd.DataFrame) -> go.Figure | None:
    """Only trials whose peak a GPU measured (on a CPU the estimate would face itself), on
    log axes zoomed to them: at a budget's scale, peaks of a tenth of it crowded into a
    corner. No budget line: these are allocated peaks, and the budget also holds the CUDA
    context and allocator slack."""
    if "memory_measured" not in trials:
        return None
    measured = trials[trials["memory_measured"].eq(True)]
    if measured.empty:
        return None
    low = min(measured["estimate_gb"].min(), measured["peak_memory_gb"].min()) / 1.2
    high = max(measured["estimate_gb"].max(), measured["peak_memory_gb"].max()) * 1.2
    figure = px.scatter(measured, x="estimate_gb", y="peak_memory_gb", color="status",
                        hover_data=["trial"], log_x=True, log_y=True,
                        labels={"estimate_gb": "estimated peak allocated (GB, log)",
                                "peak_memory_gb": "measured peak allocated (GB, log)"},
                        title="Estimated against measured peak memory")
    figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="y = x",
                                line={"dash": "dot", "color": "gray"}))
    span = [math.log10(low), math.log10(high)]
    figure.update_xaxes(range=span)
    figure.update_yaxes(range=span)
    return figure


def _table(family, knobs: list[tuple[str, str]], trials: pd.DataFrame) -> str:
    """Every trial, its status first (failed and out-of-memory ones with their error)."""
    columns = [("trial", "trial"), ("status", "status"), *knobs,
               (family.quality, family.quality_label), ("epochs", "epochs"),
               ("epoch_seconds", "epoch s"), ("peak_memory_gb", "peak GB"),
               ("estimate_total_gb", "budgeted GB (with CUDA context)"), ("error", "error")]
    columns = [(name, header) for name, header in columns if name in trials]
    head = "".join(f"<th>{html.escape(header)}</th>" for _, header in columns)
    rows = []
    for _, trial in trials.iterrows():
        status = str(trial["status"]).replace(" ", "-")
        cells = "".join(f"<td>{html.escape(_cell(trial.get(name)))}</td>"
                        for name, _ in columns)
        rows.append(f"<tr class='{status}'>{cells}</tr>")
    return (f"<h2>Trials</h2><table class='trials'><thead><tr>{head}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _hover(columns: list[tuple[str, str]], frame: pd.DataFrame) -> list[str]:
    return [c for c in ("trial", *(knob for knob, _ in columns), "epoch_seconds") if c in frame]


def _title(knob: str) -> str:
    return knob.replace("_", " ")


def _cell(value) -> str:
    """A value as a person reads it: whole numbers whole, rates short, nothing for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)
