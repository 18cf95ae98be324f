"""Each SASRec knob's translations (space name, config field, flag) agree: a trial's params
become a config, the config a `cce-tune train` command, and the command the same config."""

from dataclasses import replace
from pathlib import Path

import pytest

from kernels.config import LossConfig
from search_spaces import KNOBS as SPACE_KNOBS
from tuner.arguments import data_options, run_config
from tuner.cli import build_parser
from tuner.data import DataOptions
from tuner.data.prepare import PrepareOptions
from tuner.data.tabular import ColumnNames
from tuner.sasrec_knobs import (
    KNOBS,
    SEARCHABLE,
    config_from_params,
    params_of,
    train_argv,
)
from tuner.train_config import TrainConfig

# A value other than the default for every knob.
OTHER = {"loss": "cce_minus", "negatives": 777, "negative_mode": "tile", "tile_size": 32,
         "temperature": 0.37, "in_kernel_negatives": True, "sampled_softmax": True,
         "gbce_t": 0.5, "batch_size": 48, "max_len": 17, "hidden": 24, "blocks": 3,
         "heads": 2, "dropout": 0.123456789, "lr": 0.000123456789, "bf16": True, "epochs": 7,
         "eval_batch_size": 99, "seed": 5, "include_seen": True}
BASE = TrainConfig(device="auto")


def retrained(options: DataOptions, config: TrainConfig) -> tuple[DataOptions, TrainConfig]:
    args = build_parser().parse_args(train_argv(options, config))
    return data_options(args), run_config(args)


def test_every_knob_has_a_value_to_try():
    assert set(OTHER) == {knob.name for knob in KNOBS}
    defaults = params_of(BASE)
    assert all(OTHER[name] != defaults[name] for name in OTHER)


@pytest.mark.parametrize("name", [knob.name for knob in KNOBS])
def test_one_knob_round_trips(name):
    params = {name: OTHER[name]}
    if name in ("in_kernel_negatives",):
        params["loss"] = "cce_minus"  # in-kernel ids are the fused loss's
    config = config_from_params(params, BASE)
    assert params_of(config)[name] == OTHER[name]
    assert retrained(DataOptions(), config)[1] == config


def test_all_knobs_at_once_round_trip():
    config = config_from_params(OTHER, BASE)
    assert params_of(config) == OTHER
    assert retrained(DataOptions(), config)[1] == config
    assert config_from_params(params_of(config), BASE) == config
    assert config_from_params({**OTHER, "estimate_bytes": 1}, BASE) == config


def test_single_negative_losses_take_one_negative():
    config = config_from_params({"loss": "bce", "negatives": 512}, BASE)
    assert config.loss == LossConfig("bce", num_negatives=1)
    assert retrained(DataOptions(), config)[1] == config


def test_file_dataset_options_round_trip(tmp_path: Path):
    options = DataOptions(dataset=str(tmp_path / "log.csv"), data_dir=None,
                          prepare=PrepareOptions(min_rating=3.5, min_user_interactions=7),
                          columns=ColumnNames("uid", "iid", "ts", "stars"))
    assert retrained(options, BASE) == (options, BASE)
    movielens = replace(options, dataset="ml-1m", data_dir=tmp_path,
                        columns=ColumnNames())
    assert retrained(movielens, BASE)[0] == movielens


def test_space_knobs_are_the_searchable_ones():
    """The space loader's names and types agree with this table (one fact, checked)."""
    by_name = {knob.name: knob.kind for knob in KNOBS if knob.searchable}
    assert SPACE_KNOBS["sasrec"] == by_name
    assert tuple(by_name) == SEARCHABLE
