"""What the search needs to know of the model it tunes: a sampled point's training config,
its memory estimate, the trial function with its data, and what to prepare before trials.
`tuner.search` picks one by the run's `--model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces import SearchSpace
from tuner.memory import DatasetShape, MemoryBreakdown, MemoryProfile, estimate
from tuner.sasrec_knobs import config_from_params
from tuner.train_config import TrainConfig
from tuner.trial import TrialSettings

if TYPE_CHECKING:
    from tuner.search import TuneSettings


class SASRecTarget:
    """SASRec on a sequence dataset: what the search needs to know of the model it tunes."""

    def __init__(self, base: TrainConfig, shape: DatasetShape, profile: MemoryProfile | None,
                 data=None) -> None:
        self.base, self.shape, self.profile, self.data = base, shape, profile, data

    def __getstate__(self) -> dict:
        # Ray pickles the searcher (and this with it) into RUN_DIR for --resume, which needs
        # the dataset's shape only: without this, two copies of the dataset (78 MB for
        # synthetic-ml-20m) were written there.
        return {**self.__dict__, "data": None}

    @classmethod
    def load(cls, settings: TuneSettings, profile: MemoryProfile | None) -> SASRecTarget:
        from tuner.data import load

        data = load(settings.dataset)
        return cls(settings.base, DatasetShape(data.num_users, data.num_items), profile, data)

    def config(self, params: dict[str, Any]) -> TrainConfig:
        return config_from_params(params, self.base)

    def estimate(self, config: TrainConfig) -> MemoryBreakdown:
        return estimate(config, self.shape, self.profile)

    def describe(self) -> str:
        return self.data.summary()

    def trainable(self, trial_settings: TrialSettings):
        from ray import tune as ray_tune

        from tuner.trial import run_trial

        # The dataset goes to Ray's object store once; trials map it from there.
        return ray_tune.with_parameters(run_trial, data=self.data, settings=trial_settings)

    def warm(self, space: SearchSpace) -> None:
        from tuner.warmup import warm_and_say

        warm_and_say(space, self.base, self.data.num_items)


class DLRMTarget:
    """DLRM on click data (a generated preset or a Criteo file)."""

    def __init__(self, settings: TuneSettings, profile: MemoryProfile | None) -> None:
        from tuner.ctr.sources import click_lookups

        self.settings, self.profile = settings, profile
        self.lookups = click_lookups(settings.dataset.dataset)

    @classmethod
    def load(cls, settings: TuneSettings, profile: MemoryProfile | None) -> DLRMTarget:
        return cls(settings, profile)

    def config(self, params: dict[str, Any]):
        from tuner.trial_dlrm import dlrm_config_from_params

        return dlrm_config_from_params(params, self.settings.base)

    def estimate(self, config) -> MemoryBreakdown:
        from tuner.memory_dlrm import estimate_dlrm

        return estimate_dlrm(config.model, config.batch_size, self.lookups,
                             config.sparse_optimizer, config.dense_optimizer, self.profile,
                             cuda_graph=config.captures_step)

    def describe(self) -> str:
        tables = self.settings.base.model.table_sizes
        return (f"{self.settings.dataset.dataset}: {len(tables)} tables, {sum(tables):,} rows, "
                f"{self.settings.base.model.dense_features} dense features")

    def trainable(self, trial_settings: TrialSettings):
        from ray import tune as ray_tune

        from tuner.trial_dlrm import ClickDataset, run_dlrm_trial

        dataset = ClickDataset(self.settings.dataset.dataset, self.settings.criteo,
                               self.settings.seed)
        return ray_tune.with_parameters(run_dlrm_trial, dataset=dataset,
                                        settings=trial_settings)

    def warm(self, space: SearchSpace) -> None:
        """No Triton kernels to compile: DLRM runs on torch's own."""


TARGETS = {"sasrec": SASRecTarget, "dlrm": DLRMTarget}
