"""Ray Tune's own logger callbacks that a run adds, writing inside RUN_DIR.

TensorBoard needs none: Ray Tune writes each trial's event file into `trial_<id>/` itself
when tensorboardX is installed (it is, with ray[tune]). MLflow, heavy and optional (the
`mlflow` extra), is Ray's `MLflowLoggerCallback`: one experiment named after the run, one
MLflow run per trial (its config as parameters, every reported metric by epoch), in an
SQLite store in RUN_DIR (MLflow 3 refuses its file store unless told to allow it), with
the experiment's artifact folder in RUN_DIR too. It logs from the driver, so these files
are the driver's on a cluster as well.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.run_dir import MLFLOW_ARTIFACTS, MLFLOW_DB

if TYPE_CHECKING:
    from ray.air.integrations.mlflow import MLflowLoggerCallback


def require_mlflow() -> None:
    """Refuse `--mlflow` at once, before any data or Ray, when mlflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise CceTuneError("--mlflow needs mlflow, which is not installed: "
                           "pip install 'cce-tune[mlflow]'")


def mlflow_uri(run_dir: Path) -> str:
    """The run's MLflow store: `mlflow ui --backend-store-uri` takes it."""
    return f"sqlite:///{(run_dir / MLFLOW_DB).resolve()}"


def mlflow_callback(run_dir: Path) -> MLflowLoggerCallback:
    """Ray Tune's MLflow logger on the run's store, its experiment created here so that
    artifacts would land in RUN_DIR (MLflow's default is ./mlruns wherever it runs)."""
    import mlflow
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    client = mlflow.MlflowClient(mlflow_uri(run_dir))
    if client.get_experiment_by_name(run_dir.name) is None:
        client.create_experiment(run_dir.name,
                                 artifact_location=(run_dir / MLFLOW_ARTIFACTS).resolve().as_uri())
    return MLflowLoggerCallback(tracking_uri=mlflow_uri(run_dir), experiment_name=run_dir.name)
