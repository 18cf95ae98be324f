"""A sequence-model trial over several GPUs: Ray Train's `TorchTrainer` inside the Tune trial.

`cce-tune tune --gpus-per-trial 2` trains each trial data parallel over 2 GPUs. The Tune
trial holds one CPU and starts a Ray Train run whose workers (a GPU each, anywhere in the
cluster) form the process group; each trains its share of every batch
(`tuner.sequences.data_parallel`) and reports every epoch, and Ray's `TuneReportCallback`
passes rank 0's reports to Tune, where the scheduler and the search see them as any
trial's. Each worker caps its process at the per-GPU budget, which the memory model
describes for one of `workers` GPUs (`tuner.memory.estimate(gpus=...)`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.trial import TrialSettings

# The workers' process-group backend; unset, Ray's choice: NCCL, as the workers have GPUs.
# The tests set gloo, their cluster's GPUs being fake.
BACKEND_ENV = "CCE_TUNE_DDP_BACKEND"


def run_parallel_trial(config: dict[str, Any], data: SequenceData, settings: TrialSettings,
                       configure: Callable[[dict[str, Any], Any], Any], workers: int,
                       train: Callable[..., None]) -> None:
    """Train `config` on `workers` GPUs through a Ray Train run, reporting to this trial:
    each worker calls `train(run, config, data, settings, configure)` (the single-GPU
    trial's training, `tuner.sequences.trial.train_and_report`)."""
    import ray
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    context = tune.get_context()
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"config": config, "data": ray.put(data), "settings": settings,
                           "configure": configure, "train": train},
        torch_config=TorchConfig(backend=os.environ.get(BACKEND_ENV)),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=True,
                                     resources_per_worker={"CPU": 1, "GPU": 1}),
        run_config=RunConfig(name=f"train_{context.get_trial_id()}",
                             storage_path=context.get_trial_dir(),
                             callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One rank: the trial's training on its share of each batch, every epoch reported."""
    import ray
    import ray.train

    from cce_tune.tuner.trial import TrialRun

    config = loop_config["config"]
    run = TrialRun(config, loop_config["settings"], report=ray.train.report)
    loop_config["train"](run, config, ray.get(loop_config["data"]), loop_config["settings"],
                         loop_config["configure"])
