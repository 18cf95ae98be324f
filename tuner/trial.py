"""What every tuning trial does around its family's trainer, and reports to Ray.

Everything Ray-specific about a trial is here; the trainers run unchanged inside it. With
`CCE_TUNE_PROFILE_FIRST_STEP=1` in the driver's environment, each trial writes where its
time until the first step went (torch.profiler's operators by CPU time; cProfile cannot
tell the trial's thread from Ray's) to `RUN_DIR/trial_<id>/first-step-profile.txt`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cce_tune.tuner.allocator import use_expandable_segments
from cce_tune.tuner.early_stopping import COST
from cce_tune.tuner.run_dir import LAST_EPOCH
from cce_tune.tuner.units import GB

PROFILE_FIRST_STEP = "CCE_TUNE_PROFILE_FIRST_STEP"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial shares: the budget it is capped at and the fixed training config."""

    base: Any  # the family's training config
    budget_bytes: int
    gpus_per_trial: float | None  # None: fractions by each trial's estimate


def data_parallel_workers(gpus_per_trial: float | None) -> int:
    """The ranks a trial trains on: its GPUs when it asks for two or more (a whole number,
    as the command line checks), else one."""
    return int(gpus_per_trial) if gpus_per_trial and gpus_per_trial >= 2 else 1


class TrialRun:
    """What every trial does around its trainer: caps the process at the budget (the
    allocator refuses to grow past it, whatever the GPU has), injects a requested fault,
    times the milestones and reports an epoch with them (to Tune, or through `report`:
    `ray.train.report` on a data-parallel trial's workers)."""

    def __init__(self, config: dict[str, Any], settings: TrialSettings,
                 report: Callable[[dict[str, Any]], None] | None = None) -> None:
        import torch
        from ray import tune

        self._report = report or tune.report

        use_expandable_segments()  # a remote cluster's workers get no driver environment
        self.started = time.time()
        self.profile = _start_profile() if os.environ.get(PROFILE_FIRST_STEP) else None
        self.config = config
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            total = torch.cuda.get_device_properties(0).total_memory
            cap = min(settings.budget_bytes, total * config.get("gpu_fraction", 1.0))
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total))
        _maybe_inject_fault(config)
        self.reached: dict[str, float] = {}  # milestone -> time.time() once the GPU got there
        self.train_seconds = 0.0  # what early stopping compares trials at
        self.epochs = getattr(settings.base, "epochs", None)  # the cap

    def on_milestone(self, name: str) -> None:
        import torch
        from ray import tune

        if self.cuda:
            torch.cuda.synchronize()
        self.reached[name] = time.time()
        if name == "first step" and self.profile is not None:
            self.profile.stop()
            out = Path(tune.get_context().get_trial_dir()) / "first-step-profile.txt"
            out.write_text(self.profile.key_averages().table(sort_by="cpu_time_total",
                                                             row_limit=40))

    def report(self, metrics: dict[str, Any], peak_memory_bytes: int | None) -> None:
        """Report one epoch's `metrics` (its `epoch` and `epoch_seconds` of training among
        them, and LAST_EPOCH true if the trainer stops after it for a reason of its own),
        with memory (measured, else estimated), the training seconds so far, and timings."""
        import ray

        estimate = self.config["estimate_bytes"]
        self.train_seconds += metrics["epoch_seconds"]
        capped = self.epochs is not None and metrics["epoch"] >= self.epochs
        self._report({
            **metrics,
            LAST_EPOCH: bool(metrics.get(LAST_EPOCH)) or capped,
            COST: self.train_seconds,
            "node_id": ray.get_runtime_context().get_node_id(),  # where it ran, on a cluster
            "peak_memory_gb": (estimate if peak_memory_bytes is None else peak_memory_bytes) / GB,
            "memory_measured": peak_memory_bytes is not None,
            "estimate_gb": estimate / GB,
            "trial_started_at": self.started,
            "setup_at": self.reached.get("setup"),
            "first_step_at": self.reached.get("first step"),
            "reported_at": time.time(),
        })


def _start_profile():
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    profiler = profile(activities=activities)
    profiler.start()
    return profiler


def _maybe_inject_fault(config: dict[str, Any]) -> None:
    """`CCE_TUNE_FAULT=oom:batch_size=64` makes trials with that value run out of memory:
    how the tests check that a failed trial is recorded and the run goes on."""
    fault = os.environ.get("CCE_TUNE_FAULT", "")
    if not fault.startswith("oom:"):
        return
    key, _, value = fault[4:].partition("=")
    if str(config.get(key)) == value:
        import torch

        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (injected by CCE_TUNE_FAULT for {key}={value})")
