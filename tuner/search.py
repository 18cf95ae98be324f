"""The search: Ray Tune runs the trials, Optuna proposes them, the memory model vetoes them.

    >>> run_dir = tune(TuneSettings(run_dir, base=TrainConfig(), data=DataOptions("ml-20m"),
    ...                             budget_bytes=40 * 10**9, ...))

Optuna (through Ray's `OptunaSearch`, multi-objective: the family's quality up, epoch time
and peak memory down) samples a point of the search space; its define-by-run function estimates the
point's peak memory and records how far over the budget it is as an Optuna constraint. A
point over the budget is never launched: it is told to Optuna as complete and infeasible (so
the constrained sampler learns to avoid the region), written to `rejected.jsonl`, and Optuna
proposes again. A trial trains until validation stops improving (or its epoch cap); ASHA
stops poor trials early, comparing them at equal training seconds (`early_stopping.py`).
Ray Tune's experiment state, the Optuna journal and the reports all live in RUN_DIR, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from cce_tune.search_spaces import SearchSpace, SpaceError, load_space
from cce_tune.tuner.climb import OVER_BUDGET
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families import Target, get
from cce_tune.tuner.loggers import mlflow_callback
from cce_tune.tuner.machine_lock import only_local_run
from cce_tune.tuner.memory import MemoryProfile
from cce_tune.tuner.memory_edge import edge_seeds, estimated_grid
from cce_tune.tuner.per_batch_asha import PerBatchSizeASHA
from cce_tune.tuner.progress import ProgressTable
from cce_tune.tuner.run_dir import (
    JOURNAL_FILE,
    LAUNCHES_STOPPED_FILE,
    MEMORY_GRID_FILE,
    REJECTED_FILE,
    RESUMES_FILE,
    TuneSettings,
    objective_values,
)
from cce_tune.tuner.strategies import STRATEGIES, cce_tune_sampler
from cce_tune.tuner.trial import TrialSettings, data_parallel_workers
from cce_tune.tuner.trial_names import TrialNamer, named_actor_class
from cce_tune.tuner.units import GB, format_bytes


class SpaceSampler:
    """Optuna's define-by-run function: a point of the space, its memory estimate, and how far
    over the budget it lies, recorded on the Optuna trial for the constrained sampler."""

    def __init__(self, space: SearchSpace, target: Target, limit: float) -> None:
        self.space, self.target, self.limit = space, target, limit

    def __call__(self, trial) -> dict[str, Any]:
        params = self.space.suggest(trial)
        try:
            config = self.target.config(params)
        except ValueError as error:
            _constrain(trial, math.inf)
            return {**params, "invalid": str(error)}
        breakdown = self.target.estimate(config)
        _constrain(trial, breakdown.total - self.limit)
        return {**params, "estimate_bytes": breakdown.peak_allocated,
                "estimate_total_bytes": breakdown.total}


def _constrain(trial, over_budget_bytes: float) -> None:
    """Optuna's constraint (feasible when <= 0), and the same as a readable attribute."""
    trial.set_constraint(OVER_BUDGET, over_budget_bytes)
    trial.set_user_attr(OVER_BUDGET, float(over_budget_bytes))


class BudgetedSearch(Searcher):
    """Wraps `OptunaSearch`: proposals over the budget never reach Ray Tune, and none at all
    once `launch_until` (a time.time(): when the search began, plus `--time-budget`) has
    passed: the trials already running end as they would (Ray Tune's own time budget would
    stop them mid-training, so none would count on the front). A proposal made before then
    may still wait for a free GPU and start after it."""

    def __init__(self, searcher, limit: float, run_dir: Path, device_bytes: int | None,
                 gpus_per_trial: float | None, max_rejections: int, quality: str,
                 launch_until: float | None = None, time_budget_s: float | None = None,
                 ) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.quality = quality
        self.limit = limit
        self.run_dir = Path(run_dir)
        self.device_bytes = device_bytes
        self.gpus_per_trial = gpus_per_trial
        self.max_rejections = max_rejections
        self.launch_until, self.time_budget_s = launch_until, time_budget_s
        self.rejected = 0
        self._inner_ids: dict[str, str] = {}
        self._epochs: dict[str, dict] = {}  # each running trial's results by epoch

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | None:
        if self.launch_until is not None and time.time() >= self.launch_until:
            (self.run_dir / LAUNCHES_STOPPED_FILE).write_text(f"{self.time_budget_s}\n")
            return self.FINISHED
        for attempt in range(self.max_rejections):
            inner_id = f"{trial_id}~{attempt}"
            config = self.searcher.suggest(inner_id)
            if config is None or config == self.FINISHED:
                return config
            reason = self._veto(config)
            if reason is None:
                self._inner_ids[trial_id] = inner_id
                return {**config, "gpu_fraction": self._gpu_fraction(config)}
            self.rejected += 1
            with open(self.run_dir / REJECTED_FILE, "a") as log:
                log.write(json.dumps({**config, "reason": reason}) + "\n")
            # Complete and infeasible for Optuna: the constraint carries the verdict, the
            # objective values are placeholders that constrained samplers rank below any
            # feasible trial.
            self.searcher.on_trial_complete(inner_id, result={
                self.quality: 0.0, "epoch_seconds": 1e9,
                "peak_memory_gb": config.get("estimate_total_bytes", 0) / GB})
        print(f"cce-tune: {self.max_rejections} proposals in a row were over the budget; "
              "stopping the search")
        return self.FINISHED

    def _veto(self, config: dict) -> str | None:
        if "invalid" in config:
            return config["invalid"]
        if config["estimate_total_bytes"] > self.limit:
            return (f"estimate {format_bytes(config['estimate_total_bytes'])} over "
                    f"{format_bytes(self.limit)}")
        return None

    def _gpu_fraction(self, config: dict) -> float:
        """A whole GPU, or 1/k of one when k such trials fit on it by their estimates;
        none on a machine without GPUs."""
        if self.gpus_per_trial is not None:
            return self.gpus_per_trial
        if not self.device_bytes:
            return 0.0
        per_gpu = int(self.device_bytes // max(config["estimate_total_bytes"], 1))
        return 1.0 / min(max(per_gpu, 1), 8)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.quality in result:
            self._epochs.setdefault(trial_id, {})[result.get("epoch")] = result
        self.searcher.on_trial_result(self._inner_ids.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """Optuna learns what the reports score a trial by (`objective_values`: its best
        quality, median epoch time, highest peak), not its last epoch's figures: quality
        falls once validation has stalled."""
        inner = self._inner_ids.pop(trial_id, None)
        epochs = self._epochs.pop(trial_id, {})
        if result is not None and self.quality in result:
            # the result at which ASHA stopped a trial reaches Ray's searcher only here
            epochs[result.get("epoch")] = result
            result = {**result, **objective_values(list(epochs.values()), self.quality)}
        if inner is not None:
            self.searcher.on_trial_complete(inner, result=result, error=error)

    # Checkpointing as Ray's own wrappers do it: this wrapper's state apart, the wrapped
    # searcher (with its Optuna study) saved and restored by itself.
    def get_state(self) -> dict:
        state = self.__dict__.copy()
        del state["searcher"]
        return copy.deepcopy(state)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


def space_for(name_or_path: str, model: str) -> SearchSpace:
    """The space `name_or_path`, refused unless it tunes `model`."""
    try:
        space = load_space(name_or_path, lambda name: get(name).space_knobs)
    except SpaceError as error:
        raise CceTuneError(str(error)) from None
    if space.model != model:
        raise CceTuneError(f"--space {name_or_path} tunes {space.model}, not {model}: give "
                           f"--model {space.model}, or a space with `model: {model}`")
    return space


def check_space_fits(space: SearchSpace, settings: TuneSettings, target: Target) -> None:
    """Refuse before starting Ray when not even the smallest corner of the space fits, or
    when the model refuses every corner (a corner it refuses is left to the search, which
    vetoes such points one by one)."""
    smallest, refused = None, None
    for corner in space.smallest_corners():
        try:
            total = target.estimate(target.config(corner)).total
        except ValueError as error:
            refused = refused or error
            continue
        if total <= settings.budget_limit:
            return
        smallest = total if smallest is None else min(smallest, total)
    if smallest is None:
        raise CceTuneError(f"space {space.name}: {refused}")
    raise CceTuneError(
        f"nothing in space {space.name!r} fits: its smallest configuration needs "
        f"{format_bytes(smallest)}, over {settings.margin:.0%} of the "
        f"{format_bytes(settings.budget_bytes)} budget")


def tune(settings: TuneSettings, resume: bool = False, verbose: bool = False) -> Path:
    """Run (or resume) the search; returns RUN_DIR, from which the reports are written.
    Ray's and Optuna's own messages are shown with `verbose` only: the live table says what
    happens, and a failed trial's traceback is in its `error.txt`."""
    run_dir = settings.run_dir.resolve()
    # Refused before anything is written: a second local run would oversubscribe the machine.
    with contextlib.nullcontext() if settings.address else only_local_run(run_dir):
        space = space_for(settings.space, settings.model)
        profile = (MemoryProfile.load(settings.memory_profile) if settings.memory_profile
                   else None)
        target = settings.family.target(settings, profile)
        if not resume:
            check_space_fits(space, settings, target)
            settings.save()
        else:
            with open(run_dir / RESUMES_FILE, "a") as out:
                out.write(f"{time.time()}\n")
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # experiment state every 2 s
        _quiet(not verbose)
        _run(settings, run_dir, space, target, resume)
    return run_dir


def _run(settings: TuneSettings, run_dir: Path, space: SearchSpace, target: Target,
         resume: bool) -> None:
    """Ray started (or joined), the trials run to the end or to an interruption."""
    import ray
    from ray import tune as ray_tune

    context = _start_ray(settings)
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    check_gpus_per_trial(settings.gpus_per_trial, cluster_gpus)
    device_bytes = local_gpu_bytes()
    if device_bytes is None and cluster_gpus and (
            settings.gpus_per_trial is None):  # a cluster's GPUs, unseen from this driver
        settings = replace(settings, gpus_per_trial=1.0)
    trial_settings = TrialSettings(base=settings.base, budget_bytes=settings.budget_bytes,
                                   gpus_per_trial=settings.gpus_per_trial)
    trainable = ray_tune.with_resources(target.trainable(trial_settings),
                                        _Resources(cpus_per_trial=_cpus_per_trial(device_bytes)))
    if settings.actor_per_trial:
        trainable = named_actor_class(trainable)
    print(target.describe())
    target.warm(space)
    if context is not None and context.dashboard_url:
        print(f"Ray dashboard: http://{context.dashboard_url} (it asks for a token: "
              "`ray get-auth-token` prints it)")
    progress = ProgressTable(settings.trials, settings.budget_bytes, settings.family,
                             settings.epochs, searched=tuple(p.name for p in space.params),
                             run_dir=run_dir)
    try:
        if resume:
            tuner = ray_tune.Tuner.restore(str(run_dir), trainable=trainable,
                                           resume_unfinished=True, resume_errored=False,
                                           restart_errored=False)
        else:
            tuner = _new_tuner(settings, run_dir, space, target, device_bytes, trainable,
                               progress, cluster_gpus)
        tuner.fit()
    finally:
        progress.close()
        ray.shutdown()


def _new_tuner(settings: TuneSettings, run_dir: Path, space: SearchSpace, target: Target,
               device_bytes: int | None, trainable, progress: ProgressTable,
               cluster_gpus: float):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray import tune as ray_tune
    from ray.tune.search.optuna import OptunaSearch

    sampler = cce_tune_sampler(settings.seed)  # the one `cce-tune replay` measures
    storage = JournalStorage(JournalFileBackend(str(run_dir / JOURNAL_FILE)))
    family = settings.family
    grid = estimated_grid(space, target)
    with open(run_dir / MEMORY_GRID_FILE, "w") as out:  # the reports draw the budget's edge
        out.writelines(json.dumps({**params, "estimate_total_gb": total / GB}) + "\n"
                       for params, total in grid)
    edge = edge_seeds(space, target, settings.budget_limit, STRATEGIES["cce-tune"].edge_points,
                      grid)
    optuna_search = OptunaSearch(
        space=SpaceSampler(space, target, settings.budget_limit),
        metric=list(family.objectives), mode=list(family.objectives.values()),
        sampler=sampler, storage=storage, study_name="cce-tune", seed=settings.seed,
        points_to_evaluate=[space.optuna_params(point) for point in edge] or None)
    budget = settings.time_budget_s
    search = BudgetedSearch(optuna_search, settings.budget_limit, run_dir, device_bytes,
                            settings.gpus_per_trial, settings.max_rejections, family.quality,
                            launch_until=None if budget is None else time.time() + budget,
                            time_budget_s=budget)
    scheduler = PerBatchSizeASHA(family.quality, settings.grace_seconds)
    return ray_tune.Tuner(
        trainable,
        tune_config=ray_tune.TuneConfig(
            search_alg=search, scheduler=scheduler, num_samples=settings.trials,
            # Data-parallel trials hold a CPU each while their workers wait for GPUs: no
            # more of them at once than the GPUs serve, or waiting ones would starve the rest.
            max_concurrent_trials=_parallel_trials_at_once(settings.gpus_per_trial,
                                                           cluster_gpus),
            # a reused actor keeps the name of its first trial (trial_names.py)
            reuse_actors=not settings.actor_per_trial,
            trial_name_creator=TrialNamer(family.columns), trial_dirname_creator=trial_dirname),
        run_config=ray_tune.RunConfig(
            name=run_dir.name, storage_path=str(run_dir.parent),
            failure_config=ray_tune.FailureConfig(max_failures=0, fail_fast=False),
            # files a trial writes (a first-step profile) reach RUN_DIR, from any node
            sync_config=ray_tune.SyncConfig(sync_artifacts=True),
            # each trial's own output (warnings, prints) in its folder, not the driver's
            log_to_file=True, verbose=0,
            callbacks=[progress, *([mlflow_callback(run_dir)] if settings.mlflow else [])]),
    )


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


class _Resources:
    """Ray resources of a trial from its config: a GPU fraction chosen with the proposal."""

    def __init__(self, cpus_per_trial: int) -> None:
        self.cpus_per_trial = cpus_per_trial

    def __call__(self, config: dict) -> dict:
        fraction = config.get("gpu_fraction", 0.0)
        if data_parallel_workers(fraction) > 1:  # its Ray Train workers take the GPUs
            return {"cpu": 1}
        return {"cpu": self.cpus_per_trial, "gpu": fraction} if fraction else {
            "cpu": self.cpus_per_trial}


def _quiet(quiet: bool) -> None:
    """Ray Tune's experiment box, TensorBoard hint, restore hint and trial tracebacks,
    Optuna's study messages and MLflow's, off when `quiet`; shown as their libraries print
    them if not."""
    import logging

    import optuna

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0" if quiet else "1"
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL if quiet else logging.NOTSET)
    # "Token authentication is enabled...": the dashboard line says how to get the token
    logging.getLogger("ray._private.authentication").setLevel(
        logging.ERROR if quiet else logging.NOTSET)
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    # MLflow's "Creating initial MLflow database tables" (--mlflow): it sets its logger's
    # level from this variable when imported
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING" if quiet else "INFO"
    logging.getLogger("mlflow").setLevel(logging.WARNING if quiet else logging.INFO)


def _start_ray(settings: TuneSettings):
    import ray

    # Every worker of the job, a data-parallel trial's too: NVLink multicast off (NCCL).
    runtime_env = {"env_vars": {"NCCL_NVLS_ENABLE": "0"}}
    if settings.address:
        return ray.init(address=settings.address, runtime_env=runtime_env)
    options = {"dashboard_host": "127.0.0.1", "configure_logging": False,
               "log_to_driver": False, "runtime_env": runtime_env}
    try:
        return ray.init(include_dashboard=settings.dashboard, **options)
    except Exception as error:  # Ray without its dashboard packages refuses to start
        if not settings.dashboard:
            raise
        ray.shutdown()
        print(f"cce-tune: the Ray dashboard cannot start ({error}); install ray[default] for "
              "it. Going on without it.")
        return ray.init(include_dashboard=False, **options)


def _parallel_trials_at_once(gpus_per_trial: float | None, cluster_gpus: float) -> int | None:
    """How many data-parallel trials the cluster's GPUs serve at once; None (Ray's choice)
    for trials of one GPU or less."""
    workers = data_parallel_workers(gpus_per_trial)
    return max(1, int(cluster_gpus // workers)) if workers > 1 else None


def check_gpus_per_trial(gpus_per_trial: float | None, cluster_gpus: float) -> None:
    """A data-parallel trial needs that many GPUs in the cluster, else it would wait forever."""
    workers = data_parallel_workers(gpus_per_trial)
    if workers > 1 and cluster_gpus < workers:
        raise CceTuneError(f"--gpus-per-trial {gpus_per_trial:g}: GPUs to train on: "
                           f"{cluster_gpus:g} (this machine's, or with --address the Ray "
                           "cluster's); ask for at most that many, or join a larger cluster "
                           "with --address")


def local_gpu_bytes() -> int | None:
    """Memory of this machine's first GPU, which the trials' fractions are cut from (and a
    local run's budget must fit); None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory


def _cpus_per_trial(device_bytes: int | None) -> int:
    """With GPUs, one CPU feeds a trial; without, a trial takes every core (one at a time)."""
    if device_bytes:
        return 1
    return max(1, os.cpu_count() or 1)

