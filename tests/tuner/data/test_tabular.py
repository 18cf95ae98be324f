import pandas as pd
import pytest

from cce_tune.tuner.data import DataOptions, load
from cce_tune.tuner.data.tabular import ColumnNames
from cce_tune.tuner.errors import DataError


def frame():
    rows = [("alice", f"sku{i}", f"2024-01-0{i + 1}") for i in range(5)]
    rows += [("bob", f"sku{i}", f"2024-02-0{9 - i}") for i in range(6)]
    return pd.DataFrame(rows, columns=["who", "what", "when"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_string_ids_and_dates(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    if suffix == ".parquet":
        frame().to_parquet(path)
    else:
        frame().to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    data = load(DataOptions(str(path), columns=ColumnNames("who", "what", "when")))
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 6, 11)
    bob = data.items[data.offsets[1]:data.offsets[2]].tolist()
    assert bob == [6, 5, 4, 3, 2, 1]  # bob's dates run backwards through sku0..sku5


def test_missing_column_says_which_and_how_to_name_it(tmp_path):
    path = tmp_path / "log.csv"
    frame().to_csv(path, index=False)
    with pytest.raises(DataError, match="no column user_id, item_id, timestamp; the file has "
                                        "who, what, when .*--user-col"):
        load(DataOptions(str(path)))


def test_bad_date(tmp_path):
    path = tmp_path / "log.csv"
    bad = frame()
    bad.loc[3, "when"] = "someday"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match="column when must hold numbers or dates; line 5"):
        load(DataOptions(str(path), columns=ColumnNames("who", "what", "when")))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(DataOptions(str(tmp_path / "absent.csv")))


def test_a_log_with_one_user_is_refused_naming_the_counts(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"7,{i},{i}\n" for i in range(30)))
    with pytest.raises(DataError, match="1 users and 30 items after preparation; ranking needs "
                                        "at least 2 users and 2 items"):
        load(DataOptions(str(path)))


def test_a_catalog_that_fits_in_the_top_10_is_warned_about(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(
        f"{u},{i},{i}\n" for u in range(5) for i in range(8)))
    with pytest.warns(UserWarning, match="small: 8 items: the whole catalog fits in the top 10"):
        load(DataOptions(str(path)))


def test_a_recbole_atomic_file_needs_no_column_flags(tmp_path):
    """RecBole's `.inter`: tab-separated, `name:type` headers; its names are our defaults."""
    path = tmp_path / "ml-100k.inter"
    rows = [(user, item, 4.0, 1000 * user + (9 - item if user == 2 else item))
            for user in (1, 2) for item in range(6)]
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    data = load(DataOptions(str(path)))
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 6, 12)
    assert data.items[data.offsets[1]:data.offsets[2]].tolist() == [6, 5, 4, 3, 2, 1]
