import hashlib
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from cce_tune.tuner.data import DataOptions, load, load_prepared, movielens
from cce_tune.tuner.data.prepare import PrepareOptions
from cce_tune.tuner.errors import DataError

# user, item, rating, timestamp; user 3 has too few interactions; user 1 has a timestamp tie
ROWS = [
    (1, 10, 4.0, 100), (1, 20, 3.0, 50), (1, 30, 5.0, 100), (1, 40, 2.0, 10), (1, 50, 4.5, 200),
    (2, 20, 4.0, 1), (2, 10, 1.0, 2), (2, 60, 5.0, 3), (2, 30, 4.0, 4), (2, 40, 3.5, 5),
    (2, 50, 4.0, 6), (3, 10, 5.0, 1), (3, 20, 5.0, 2),
]


def write_dat(path, rows=ROWS):
    path.write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in rows))


def write_csv(path, rows=ROWS, header="userId,movieId,rating,timestamp"):
    path.write_text(header + "\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))


def check_prepared(data):
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 6, 11)
    # item ids remap in sorted order of the originals: 10->1, 20->2, ..., 60->6
    user1 = data.items[data.offsets[0]:data.offsets[1]].tolist()
    # by time 10, 50, 100 (10 before 30: file order breaks the tie), 200
    assert user1 == [4, 2, 1, 3, 5]
    assert data.items[data.offsets[1]:data.offsets[2]].tolist() == [2, 1, 6, 3, 4, 5]


def test_ml_1m_dat(tmp_path):
    write_dat(tmp_path / "ratings.dat")
    check_prepared(load(DataOptions("ml-1m", data_dir=tmp_path)))


@pytest.mark.parametrize("name", ["ml-20m", "ml-25m"])
def test_ml_20m_25m_csv_in_named_subfolder(tmp_path, name):
    (tmp_path / name).mkdir()
    write_csv(tmp_path / name / "ratings.csv")
    check_prepared(load(DataOptions(name, data_dir=tmp_path)))


def test_min_rating_filters_before_user_filter(tmp_path):
    # User 4 rates like user 2 (5 ratings >= 3.5); user 1 has 5 ratings, 3 of them >= 3.5.
    user_4 = [(4, item, rating, time) for _, item, rating, time in ROWS if _ == 2]
    write_csv(tmp_path / "ratings.csv", ROWS + user_4)
    data = load(DataOptions("ml-20m", data_dir=tmp_path, prepare=PrepareOptions(min_rating=3.5)))
    assert (data.num_users, data.num_interactions) == (2, 10)  # users 2 and 4 keep 5 each


def test_empty_after_filtering_names_the_options(tmp_path):
    write_csv(tmp_path / "ratings.csv")
    with pytest.raises(DataError, match="no user has 5 or more interactions with rating >= 5"):
        load(DataOptions("ml-20m", data_dir=tmp_path, prepare=PrepareOptions(min_rating=5.0)))


def test_truncated_file_names_file_and_line(tmp_path):
    path = tmp_path / "ratings.dat"
    write_dat(path)
    path.write_text(path.read_text() + "4::10::5")  # cut off mid-line
    with pytest.raises(DataError, match=r"ratings\.dat: line 14 lacks a value"):
        load(DataOptions("ml-1m", data_dir=tmp_path))


def test_wrong_columns(tmp_path):
    write_csv(tmp_path / "ratings.csv", header="user,item,rating,time")
    with pytest.raises(DataError, match="expected columns userId,movieId,rating,timestamp, found "
                                        "user,item,rating,time"):
        load(DataOptions("ml-20m", data_dir=tmp_path))


def test_non_numeric_rating(tmp_path):
    rows = [*ROWS[:3], (1, 40, "x", 10), *ROWS[4:]]
    write_csv(tmp_path / "ratings.csv", rows)
    with pytest.raises(DataError, match="column rating must hold numbers; line 5 has 'x'"):
        load(DataOptions("ml-20m", data_dir=tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"no ratings\.csv in .*--data-dir"):
        load(DataOptions("ml-20m", data_dir=tmp_path))


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'ml-2m'; choose one of synthetic"):
        load(DataOptions("ml-2m"))


def official_zip(tmp_path):
    """A zip laid out as GroupLens ships ml-1m, and the spec that would match it."""
    folder = tmp_path / "served"
    folder.mkdir()
    write_dat(tmp_path / "ratings.dat")
    with zipfile.ZipFile(folder / "ml-1m.zip", "w") as zipped:
        zipped.write(tmp_path / "ratings.dat", "ml-1m/ratings.dat")
    md5 = hashlib.md5((folder / "ml-1m.zip").read_bytes()).hexdigest()
    return folder, md5


def test_download_verifies_checksum_and_caches(tmp_path, monkeypatch):
    folder, md5 = official_zip(tmp_path)
    monkeypatch.setattr(movielens, "BASE_URL", folder.as_uri() + "/")
    spec = replace(movielens.MOVIELENS["ml-1m"], md5=md5)
    monkeypatch.setitem(movielens.MOVIELENS, "ml-1m", spec)
    check_prepared(load(DataOptions("ml-1m")))
    (folder / "ml-1m.zip").unlink()  # a second run needs no download
    check_prepared(load(DataOptions("ml-1m")))


def test_a_download_shows_its_size_then_preparation_its_time(tmp_path, monkeypatch, capsys):
    folder, md5 = official_zip(tmp_path)
    monkeypatch.setattr(movielens, "BASE_URL", folder.as_uri() + "/")
    monkeypatch.setitem(movielens.MOVIELENS, "ml-1m",
                        replace(movielens.MOVIELENS["ml-1m"], md5=md5))
    load(DataOptions("ml-1m"))
    size = (folder / "ml-1m.zip").stat().st_size
    shown = capsys.readouterr().err
    assert "downloading" in shown and f"{size}/{size} bytes" in shown
    assert "preparing ml-1m (once: it is cached)" in shown and "100%" in shown
    load(DataOptions("ml-1m"))
    assert capsys.readouterr().err == ""  # cached: nothing to show


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    folder, _ = official_zip(tmp_path)
    monkeypatch.setattr(movielens, "BASE_URL", folder.as_uri() + "/")
    expected = movielens.MOVIELENS["ml-1m"].md5
    with pytest.raises(DataError, match=f"checksum mismatch .*expected {expected}"):
        load(DataOptions("ml-1m"))


def test_download_failure_suggests_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "BASE_URL", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(DataError, match="could not download .*--data-dir"):
        load(DataOptions("ml-1m"))


def test_known_shapes_are_the_published_ones():
    spec = movielens.MOVIELENS["ml-20m"]
    assert (spec.num_users, spec.num_items, spec.num_interactions) == (138_493, 26_744, 20_000_263)
    assert np.all([len(s.md5) == 32 for s in movielens.MOVIELENS.values()])


def test_load_prepared_downloads_nothing(monkeypatch):
    def fetch(*_):
        raise AssertionError("load_prepared must not download")

    monkeypatch.setattr(movielens, "fetch", fetch)
    assert load_prepared(DataOptions("ml-1m")) is None
