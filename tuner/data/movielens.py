"""MovieLens in GroupLens' own layouts: ml-1m (`ratings.dat`) and ml-20m / ml-25m (`ratings.csv`).

A user either points at an extracted folder or lets `fetch` download the official zip into the
cache and check its MD5 against the checksum GroupLens publishes beside it.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cce_tune.tuner.data.prepare import Interactions
from cce_tune.tuner.data.progress import copy_with_progress
from cce_tune.tuner.errors import DataError

if TYPE_CHECKING:  # pandas loads only when a file is read: `estimate` stays fast
    import pandas as pd

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
CSV_COLUMNS = ("userId", "movieId", "rating", "timestamp")


@dataclass(frozen=True)
class MovieLensSpec:
    name: str
    md5: str  # GroupLens' published `<name>.zip.md5`
    ratings_file: str  # inside the extracted folder
    num_users: int  # with every rating kept and at least 5 per user (all MovieLens users have 20)
    num_items: int
    num_interactions: int

    @property
    def url(self) -> str:
        return f"{BASE_URL}{self.name}.zip"


MOVIELENS = {
    spec.name: spec
    for spec in (
        MovieLensSpec("ml-1m", "c4d9eecfca2ab87c1945afe126590906", "ratings.dat",
                      6_040, 3_706, 1_000_209),
        MovieLensSpec("ml-20m", "cd245b17a1ae2cc31bb14903e1204af3", "ratings.csv",
                      138_493, 26_744, 20_000_263),
        MovieLensSpec("ml-25m", "6b51fb2759a8657d3bfcbfc42b592ada", "ratings.csv",
                      162_541, 59_047, 25_000_095),
    )
}


def ratings_path(spec: MovieLensSpec, data_dir: Path | None, cache_dir: Path,
                 download: bool = True) -> Path:
    """The ratings file: from `data_dir` if given, else from the cache, downloading once
    (without `download`, a DataError where it was not downloaded yet)."""
    if data_dir is not None:
        for candidate in (data_dir / spec.ratings_file, data_dir / spec.name / spec.ratings_file):
            if candidate.is_file():
                return candidate
        raise DataError(
            f"{spec.name}: no {spec.ratings_file} in {data_dir} (nor in {data_dir / spec.name}); "
            f"point --data-dir at the folder extracted from {spec.name}.zip"
        )
    extracted = cache_dir / "raw" / spec.name / spec.ratings_file
    if not extracted.is_file():
        if not download:
            raise DataError(f"{spec.name}: not downloaded yet")
        fetch(spec, cache_dir / "raw")
    return extracted


def fetch(spec: MovieLensSpec, raw_dir: Path, url: str | None = None) -> None:
    """Download the official zip, verify its MD5, extract it into `raw_dir/<name>/`."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    archive = raw_dir / f"{spec.name}.zip"
    url = url or spec.url
    if not archive.is_file():
        # This process's own partial file: two processes downloading at once (torchrun's
        # ranks) each finish theirs, and the last rename wins.
        partial = archive.with_suffix(f".zip.{os.getpid()}.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
                size = response.headers.get("Content-Length")
                copy_with_progress(response, out, int(size) if size else None,
                                   f"downloading {archive.name}")
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"{spec.name}: could not download {url} ({error}); download it by hand and "
                f"pass --data-dir with the extracted folder"
            ) from None
        partial.replace(archive)
    digest = _md5(archive)
    if digest != spec.md5:
        archive.unlink()
        raise DataError(
            f"{spec.name}: checksum mismatch for {archive}: MD5 {digest}, expected {spec.md5} "
            "(the download was removed; run again to retry)"
        )
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(raw_dir)
    except zipfile.BadZipFile as error:
        raise DataError(f"{spec.name}: {archive} is not a readable zip ({error})") from None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_ratings(path: Path) -> Interactions:
    """Parse `ratings.dat` (user::item::rating::time) or `ratings.csv` (with header)."""
    import pandas as pd

    if path.suffix == ".dat":
        # '::' is not a single character, which pandas' fast parser needs: swap it for a tab.
        text = path.read_bytes().replace(b"::", b"\t")
        frame = pd.read_csv(io.BytesIO(text), sep="\t", header=None, names=list(CSV_COLUMNS))
        first_data_line = 1
    else:
        frame = pd.read_csv(path)
        if tuple(frame.columns[:4]) != CSV_COLUMNS:
            raise DataError(
                f"{path}: expected columns {','.join(CSV_COLUMNS)}, "
                f"found {','.join(map(str, frame.columns))}"
            )
        first_data_line = 2
    return frame_to_interactions(frame, CSV_COLUMNS, path, first_data_line)


def frame_to_interactions(
    frame: pd.DataFrame, columns: tuple[str | None, ...], path: Path, first_data_line: int
) -> Interactions:
    """Check the (user, item, rating or None, time) columns are complete; convert them.

    User and item ids may be any labels (they are remapped later); ratings must be numbers and
    timestamps numbers or dates.
    """
    import pandas as pd

    if frame.empty:
        raise DataError(f"{path}: no interactions in the file")
    user_col, item_col, rating_col, time_col = columns
    used = [c for c in columns if c is not None]
    incomplete = frame[used].isna().any(axis=1).to_numpy()
    if incomplete.any():
        line = int(np.argmax(incomplete)) + first_data_line
        raise DataError(
            f"{path}: line {line} lacks a value for one of {', '.join(used)} "
            "(a truncated or damaged file?)"
        )

    def bad_value(column: str, parsed: pd.Series, kind: str) -> DataError:
        line = int(np.argmax(parsed.isna().to_numpy())) + first_data_line
        value = frame[column].iloc[line - first_data_line]
        return DataError(f"{path}: column {column} must hold {kind}; line {line} has {value!r}")

    rating = None
    if rating_col is not None:
        rating = pd.to_numeric(frame[rating_col], errors="coerce")
        if rating.isna().any():
            raise bad_value(rating_col, rating, "numbers")
        rating = rating.to_numpy(np.float64)
    time = frame[time_col]
    if not pd.api.types.is_numeric_dtype(time):
        time = pd.to_datetime(time, errors="coerce")
        if time.isna().any():
            raise bad_value(time_col, time, "numbers or dates")
        time = time.astype("int64")
    return Interactions(
        user=_ids(frame[user_col]),
        item=_ids(frame[item_col]),
        timestamp=time.to_numpy(np.int64),
        rating=rating,
    )


def _ids(column: pd.Series) -> np.ndarray:
    """Integer ids as they are; any other labels as dense codes."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(np.int64)
    return pd.factorize(column)[0].astype(np.int64)
