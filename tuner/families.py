"""What differs between the model families a run can tune, as the search, the live view and the
reports see it: the quality metric, the knobs worth a column, how fast a trial trains.

Torch-free, like the reports that read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuner.sasrec_knobs import SEARCHABLE


@dataclass(frozen=True)
class Family:
    model: str
    quality: str  # the validation metric maximised (and ranked on by ASHA)
    quality_label: str
    second: str  # another validation metric, shown beside it
    second_label: str
    throughput: str  # a trial's speed, per second
    columns: tuple[tuple[str, str], ...]  # (knob, short header) for tables
    knobs: tuple[str, ...]  # every knob a trial's row keeps

    @property
    def objectives(self) -> dict[str, str]:
        """Optuna's objectives: quality up, epoch time and peak memory down."""
        return {self.quality: "max", "epoch_seconds": "min", "peak_memory_gb": "min"}


SASREC = Family(
    model="sasrec", quality="ndcg10", quality_label="NDCG@10", second="hr10",
    second_label="HR@10", throughput="tokens_per_s",
    columns=(("loss", "loss"), ("batch_size", "B"), ("negatives", "N"), ("max_len", "L"),
             ("hidden", "d"), ("lr", "lr")),
    knobs=SEARCHABLE,
)
DLRM = Family(
    model="dlrm", quality="auc", quality_label="AUC", second="log_loss",
    second_label="log loss", throughput="samples_per_s",
    columns=(("batch_size", "B"), ("embedding_dim", "d"), ("mlp_bot", "bottom"),
             ("mlp_top", "top"), ("lr", "lr"), ("table_lr", "table lr")),
    knobs=("batch_size", "embedding_dim", "mlp_bot", "mlp_top", "interaction", "lr",
           "table_lr", "dense_optimizer"),
)
FAMILIES = {family.model: family for family in (SASREC, DLRM)}
