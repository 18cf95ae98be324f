"""A table read and grouped into points; its space; its history; bad tables refused."""

import math

import pandas as pd
import pytest

from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.replay.table import Columns, load_table
from tests.tuner.replay.tables import BATCHES, MAX_LENS, NEGATIVES, quality_of, write_table


def test_rows_sharing_knob_values_are_one_point_with_every_outcome(tmp_path):
    path = write_table(tmp_path, seeds=3)
    table = load_table(path)
    assert table.quality == "ndcg10" and table.memory == "estimate_total_gb"
    assert table.knobs == ("batch_size", "negatives", "max_len", "loss")  # hr10 is a metric
    assert len(table.points) == len(BATCHES) * len(NEGATIVES) * len(MAX_LENS)
    point = table.lookup({"batch_size": 512, "negatives": 2048, "max_len": 200,
                          "loss": "cce_minus"})
    assert len(point.outcomes) == 3
    assert point.quality == pytest.approx(quality_of(512, 2048, 200), abs=0.005)
    assert len(point.outcomes[0].history) == 6 and table.has_history
    assert point.outcomes[0].history[-1][0] == point.outcomes[0].cost
    assert table.lookup({"batch_size": 96, "negatives": 2048, "max_len": 200,
                         "loss": "cce_minus"}) is None


def test_space_orders_powers_of_two_and_fixes_single_values(tmp_path):
    space = load_table(write_table(tmp_path)).space()
    kinds = {p.name: (p.kind, p.values) for p in space.params}
    assert kinds == {"batch_size": ("powers_of_two", (64, 1024)),
                     "negatives": ("powers_of_two", (256, 4096)),
                     "max_len": ("choices", (50, 100, 200, 400))}
    assert space.fixed == {"loss": "cce_minus"}


def test_powers_of_two_with_gaps_are_ordered_choices(tmp_path):
    """16, 64, 256 as `powers_of_two` would make 32 and 128 proposals the table lacks, and
    a climb one exponent up from 16 would land on nothing."""
    grid = ((64, 128), (16, 64, 256), (50,))
    space = load_table(write_table(tmp_path, grid=grid)).space()
    kinds = {p.name: (p.kind, p.values) for p in space.params}
    assert kinds == {"batch_size": ("powers_of_two", (64, 128)),
                     "negatives": ("choices", (16, 64, 256))}


def test_a_run_directory_reads_its_report(tmp_path):
    write_table(tmp_path / "run" / "report")
    assert load_table(tmp_path / "run").source == tmp_path / "run" / "report" / "trials.csv"


def test_unfinished_rows_are_left_out_and_memory_falls_back_to_the_peak(tmp_path):
    path = write_table(tmp_path, history=False)
    frame = pd.read_csv(path)
    frame.loc[0, "status"] = "stopped early"
    frame.loc[1, "status"] = "out of memory"
    frame.loc[1, "ndcg10"] = math.nan
    frame.drop(columns="estimate_total_gb").to_csv(path, index=False)
    table = load_table(path)
    assert table.left_out == 2 and table.memory == "peak_memory_gb"
    assert not table.has_history


def test_any_csv_with_its_columns_named(tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"bs": [64, 64, 128], "opt": ["adam", "adam", "sgd"], "score": [0.1, 0.2, 0.3],
                  "gb": [1.0, 1.0, 2.0], "sec": [3.0, 3.0, 2.0], "cost": [30, 30, 20]}
                 ).to_csv(path, index=False)
    table = load_table(path, Columns("score", "gb", "sec", "cost", ("bs", "opt")))
    assert len(table.points) == 2
    assert table.lookup({"bs": 64, "opt": "adam"}).quality == pytest.approx(0.15)


@pytest.mark.parametrize(("columns", "message"), [
    (Columns(quality="nope"), "no column 'nope' (--quality)"),
    (Columns(memory="gpu"), "no column 'gpu' (--memory)"),
    (Columns(knobs=("batch_size", "hidden")), "no column 'hidden' (--knobs)"),
])
def test_missing_columns_are_named(tmp_path, columns, message):
    with pytest.raises(CceTuneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_table(write_table(tmp_path), columns)


def test_missing_table(tmp_path):
    with pytest.raises(CceTuneError, match="no such file or directory"):
        load_table(tmp_path / "absent.csv")
    with pytest.raises(CceTuneError, match="no report/trials.csv"):
        load_table(tmp_path)
