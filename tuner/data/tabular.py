"""Any interaction log as CSV, TSV or parquet, with the user, item and time columns named; and
RecBole's atomic `.inter` files, whose typed headers (`user_id:token`) are read as their names
(`user_id`), which are this loader's default column names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cce_tune.tuner.data.movielens import frame_to_interactions
from cce_tune.tuner.data.prepare import Interactions
from cce_tune.tuner.errors import DataError

TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet", ".inter")


@dataclass(frozen=True)
class ColumnNames:
    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"
    rating: str | None = None


def read_table(path: Path, columns: ColumnNames) -> Interactions:
    """Read a file whose suffix says its format; the named columns must be present."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in TABULAR_SUFFIXES:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use one of {TABULAR_SUFFIXES}")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t")
        if path.suffix == ".inter":  # RecBole: `name:type` headers
            frame.columns = [str(name).split(":")[0] for name in frame.columns]
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: cannot be read as {path.suffix[1:]} ({error})") from None
    wanted = [c for c in (columns.user, columns.item, columns.time, columns.rating) if c]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(missing)}; the file has "
            f"{', '.join(map(str, frame.columns))} "
            "(name yours with --user-col, --item-col, --time-col, --rating-col)"
        )
    first_data_line = 1 if path.suffix == ".parquet" else 2
    return frame_to_interactions(
        frame, (columns.user, columns.item, columns.rating, columns.time), path, first_data_line
    )
