"""The interactive report: one self-contained HTML page of plotly figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from tuner.search import TuneSettings

HOVER = ["trial", "loss", "batch_size", "negatives", "max_len", "hidden", "lr", "epoch_seconds"]


def write_html(path: Path, settings: TuneSettings, trials: pd.DataFrame,
               front: pd.DataFrame) -> None:
    finished = trials[trials["status"] == "finished"]
    budget_gb = settings.budget_bytes / 1e9
    figures = []
    if not finished.empty:
        hover = [c for c in HOVER if c in finished]
        scatter = px.scatter(
            finished, x="peak_memory_gb", y="ndcg10", color="epoch_seconds",
            symbol=finished["pareto"].map({True: "Pareto front", False: "dominated"}),
            hover_data=hover, color_continuous_scale="Viridis",
            labels={"peak_memory_gb": "peak memory (GB)", "ndcg10": "validation NDCG@10",
                    "epoch_seconds": "epoch (s)"},
            title="NDCG@10 against peak memory, colored by epoch time")
        ordered = front.sort_values("peak_memory_gb")
        scatter.add_trace(go.Scatter(x=ordered["peak_memory_gb"], y=ordered["ndcg10"],
                                     mode="lines", line={"dash": "dot", "color": "gray"},
                                     name="front", showlegend=False))
        scatter.add_vline(x=budget_gb, line_dash="dash", line_color="red",
                          annotation_text=f"budget {budget_gb:g} GB")
        figures.append(scatter)
        if {"batch_size", "negatives"} <= set(finished):
            grid = px.scatter(finished, x="batch_size", y="negatives", color="ndcg10",
                              size="peak_memory_gb", log_x=True, log_y=True, hover_data=hover,
                              color_continuous_scale="Viridis",
                              title="NDCG@10 over batch size x negatives "
                                    "(marker size: peak memory)")
            figures.append(grid)
        numeric = [c for c in ("batch_size", "negatives", "max_len", "hidden", "lr", "dropout",
                               "epoch_seconds", "peak_memory_gb", "ndcg10")
                   if c in finished and finished[c].nunique() > 1]
        if len(numeric) >= 2:
            figures.append(px.parallel_coordinates(
                finished, dimensions=numeric, color="ndcg10",
                color_continuous_scale="Viridis", title="Parallel coordinates"))
    measured = trials.dropna(subset=["estimate_gb", "peak_memory_gb"]) if (
        "estimate_gb" in trials) else trials.iloc[0:0]
    if not measured.empty:
        top = max(measured["estimate_gb"].max(), measured["peak_memory_gb"].max(), budget_gb)
        memory = px.scatter(measured, x="estimate_gb", y="peak_memory_gb", color="status",
                            hover_data=[c for c in HOVER if c in measured],
                            labels={"estimate_gb": "estimated peak (GB)",
                                    "peak_memory_gb": "measured peak (GB)"},
                            title="Estimated against measured peak memory")
        memory.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="y = x",
                                    line={"dash": "dot", "color": "gray"}))
        memory.add_hline(y=budget_gb, line_dash="dash", line_color="red",
                         annotation_text=f"budget {budget_gb:g} GB")
        figures.append(memory)
    parts = [f"<h1>cce-tune: {settings.dataset.dataset}, budget {budget_gb:g} GB</h1>",
             f"<p>{len(trials)} trials; {len(front)} on the Pareto front.</p>"]
    for index, figure in enumerate(figures):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cce-tune report"
                    "</title></head><body>" + "\n".join(parts) + "</body></html>\n")
