"""DLRM's training config and its click data's options: importable without torch, as a run
directory and the command line read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from cce_tune.models.dlrm_config import DLRMConfig


@dataclass(frozen=True)
class CriteoOptions:
    hash_size: int | None = 1 << 20  # rows per table when hashing
    min_frequency: int | None = None  # instead: number values seen this often
    skip_bad_rows: bool = False

    def __post_init__(self) -> None:
        if (self.hash_size is None) == (self.min_frequency is None):
            raise ValueError("give exactly one of hash_size and min_frequency")


@dataclass(frozen=True)
class ClickDataset:
    """Which click data a run trains on: a generated preset's name or a Criteo file, with
    the options that parse it; each trial builds the data from this on its own device (a
    preset drawn with the trial's seed)."""

    name: str = "synthetic-dlrm"
    criteo: CriteoOptions = field(default_factory=CriteoOptions)


@dataclass(frozen=True)
class DLRMTrainConfig:
    model: DLRMConfig
    batch_size: int = 1024
    lr: float = 3e-3  # the MLPs'
    table_lr: float = 0.5
    sparse_optimizer: str = "sgd"
    dense_optimizer: str = "adam"
    epochs: int = 1
    seed: int = 0
    device: str = "auto"
    cuda_graph: bool = True  # where it can: a GPU and tables updated inside the backward

    @property
    def captures_step(self) -> bool:
        """Whether a GPU replays the step from a CUDA graph: sparse gradients cannot be
        captured, so only with the tables' SGD inside the backward."""
        return self.cuda_graph and self.sparse_optimizer == "sgd"
