"""The interactive report: one self-contained HTML page of plotly figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from cce_tune.tuner.run_dir import COMPLETED, TuneSettings
from cce_tune.tuner.units import GB


def write_html(path: Path, settings: TuneSettings, trials: pd.DataFrame,
               front: pd.DataFrame) -> None:
    family = settings.family
    quality, label = family.quality, family.quality_label
    finished = trials[trials["status"] == COMPLETED]
    budget_gb = settings.budget_bytes / GB
    figures = []
    hover = ["trial", *(knob for knob, _ in family.columns), "epoch_seconds"]
    if not finished.empty:
        hover = [c for c in hover if c in finished]
        scatter = px.scatter(
            finished, x="peak_memory_gb", y=quality, color="epoch_seconds",
            symbol=finished["pareto"].map({True: "Pareto front", False: "dominated"}),
            hover_data=hover, color_continuous_scale="Viridis",
            labels={"peak_memory_gb": "peak memory (GB)", quality: f"validation {label}",
                    "epoch_seconds": "epoch (s)"},
            title=f"{label} against peak memory, colored by epoch time")
        ordered = front.sort_values("peak_memory_gb")
        scatter.add_trace(go.Scatter(x=ordered["peak_memory_gb"], y=ordered[quality],
                                     mode="lines", line={"dash": "dot", "color": "gray"},
                                     name="front", showlegend=False))
        scatter.add_vline(x=budget_gb, line_dash="dash", line_color="red",
                          annotation_text=f"budget {budget_gb:g} GB")
        figures.append(scatter)
        x, y = family.grid
        if {x, y} <= set(finished):
            grid = px.scatter(finished, x=x, y=y, color=quality, size="peak_memory_gb",
                              log_x=True, log_y=True, hover_data=hover,
                              color_continuous_scale="Viridis",
                              title=f"{label} over {x.replace('_', ' ')} x "
                                    f"{y.replace('_', ' ')} (marker size: peak memory)")
            figures.append(grid)
        numeric = [c for c in (*family.searchable, "epoch_seconds", "peak_memory_gb", quality)
                   if c in finished and pd.api.types.is_numeric_dtype(finished[c])
                   and finished[c].nunique() > 1]
        if len(numeric) >= 2:
            figures.append(px.parallel_coordinates(
                finished, dimensions=numeric, color=quality,
                color_continuous_scale="Viridis", title="Parallel coordinates"))
    measured = trials.dropna(subset=["estimate_gb", "peak_memory_gb"]) if (
        "estimate_gb" in trials) else trials.iloc[0:0]
    if not measured.empty:
        top = max(measured["estimate_gb"].max(), measured["peak_memory_gb"].max(), budget_gb)
        memory = px.scatter(measured, x="estimate_gb", y="peak_memory_gb", color="status",
                            hover_data=[c for c in hover if c in measured],
                            labels={"estimate_gb": "estimated peak (GB)",
                                    "peak_memory_gb": "measured peak (GB)"},
                            title="Estimated against measured peak memory")
        memory.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="y = x",
                                    line={"dash": "dot", "color": "gray"}))
        memory.add_hline(y=budget_gb, line_dash="dash", line_color="red",
                         annotation_text=f"budget {budget_gb:g} GB")
        figures.append(memory)
    parts = [f"<h1>cce-tune: {settings.dataset_name}, budget {budget_gb:g} GB</h1>",
             f"<p>{len(trials)} trials; {len(front)} on the Pareto front.</p>"]
    for index, figure in enumerate(figures):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cce-tune report"
                    "</title></head><body>" + "\n".join(parts) + "</body></html>\n")
