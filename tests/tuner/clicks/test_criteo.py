import math

import numpy as np
import pytest

from cce_tune.tuner.clicks.config import CriteoOptions
from cce_tune.tuner.clicks.criteo import load_criteo, parse_criteo
from cce_tune.tuner.errors import DataError


def line(label="1", dense=None, cats=None) -> str:
    dense = [str(i) for i in range(13)] if dense is None else dense
    cats = [f"{i:08x}" for i in range(26)] if cats is None else cats
    return "\t".join([label, *dense, *cats])


def write(tmp_path, lines, name="day.txt"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fields_missing_values_and_hashing(tmp_path):
    dense = ["5", "", "-3", *["1"] * 10]
    cats = ["", "68fd1e64", *[f"{i:08x}" for i in range(24)]]
    path = write(tmp_path, [line("0", dense, cats), line()])
    data = parse_criteo(path, CriteoOptions(hash_size=1000))
    assert data.labels.tolist() == [0.0, 1.0]
    assert data.dense[0, :3].tolist() == pytest.approx([math.log(6), 0.0, 0.0])
    assert data.categorical[0, 0] == 0  # missing -> row 0
    assert data.categorical[0, 1] == int("68fd1e64", 16) % 1000 + 1
    assert data.table_sizes == (1001,) * 26
    assert data.dense.dtype == np.float32 and data.categorical.shape == (2, 26)


def test_frequency_threshold_numbers_frequent_values_only(tmp_path):
    common, rare = "aaaaaaaa", "bbbbbbbb"
    rows = [line(cats=[common, *["cccccccc"] * 25]) for _ in range(3)]
    rows.append(line(cats=[rare, *["cccccccc"] * 25]))
    data = parse_criteo(write(tmp_path, rows), CriteoOptions(hash_size=None, min_frequency=2))
    assert data.categorical[:3, 0].tolist() == [1, 1, 1] and data.categorical[3, 0] == 0
    assert data.table_sizes[0] == 2  # row 0 (missing or rare) and the common value


@pytest.mark.parametrize("bad,message", [
    (line()[:-9], "expected 40 tab-separated fields"),
    (line(label="2"), "label '2' is not 0 or 1"),
    (line(dense=["x", *["1"] * 12]), "integer feature I1 is 'x'"),
    (line(cats=["zz", *["1"] * 25]), "categorical feature C1 is 'zz'"),
])
def test_bad_rows_name_their_line_or_are_skipped_and_counted(tmp_path, bad, message):
    path = write(tmp_path, [line(), bad, line()])
    with pytest.raises(DataError, match=f"day.txt:2: {message}"):
        parse_criteo(path, CriteoOptions())
    data = parse_criteo(path, CriteoOptions(skip_bad_rows=True))
    assert data.bad_rows == 1 and len(data.labels) == 2


def test_parsed_arrays_are_cached_and_batched(tmp_path, monkeypatch):
    import cce_tune.tuner.clicks.criteo as criteo

    path = write(tmp_path, [line(label=str(i % 2)) for i in range(10)])
    first = load_criteo(path, CriteoOptions(hash_size=64))
    monkeypatch.setattr(criteo, "parse_criteo", lambda *a: pytest.fail("not cached"))
    again = load_criteo(path, CriteoOptions(hash_size=64))
    assert np.array_equal(first.categorical, again.categorical)
    batches = list(again.batches(4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert len(batches[0].indices) == 26 and batches[0].offsets[0].tolist() == [0, 1, 2, 3]


def test_dlrm_reads_criteo_batches(tmp_path):
    from cce_tune.models.dlrm import DLRM
    from cce_tune.models.dlrm_config import DLRMConfig

    path = write(tmp_path, [line(label=str(i % 2)) for i in range(6)])
    data = parse_criteo(path, CriteoOptions(hash_size=32))
    model = DLRM(DLRMConfig(data.table_sizes, bottom=(13, 8), top=(8, 1), embedding_dim=8))
    batch = next(data.batches(6))
    assert model(batch.dense, batch.indices, batch.offsets).shape == (6,)
