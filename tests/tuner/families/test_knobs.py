"""Every knob of every family translates one way only: a trial's params become a config, the
config a `cce-tune train` command, and the command, parsed, the same config again."""

from dataclasses import replace
from pathlib import Path

import pytest

from cce_tune.kernels.config import LossConfig
from cce_tune.tuner.cli import build_parser
from cce_tune.tuner.clicks.config import ClickDataset, CriteoOptions
from cce_tune.tuner.data import DataOptions
from cce_tune.tuner.data.prepare import PrepareOptions
from cce_tune.tuner.data.tabular import ColumnNames
from cce_tune.tuner.families import get, names
from cce_tune.tuner.sequences.config import TrainConfig

# A value other than the default for every knob of every family.
SASREC = {"loss": "cce_minus", "negatives": 777, "negative_mode": "tile",
          "tile_size": 32, "temperature": 0.37, "in_kernel_negatives": True,
          "sampled_softmax": True, "gbce_t": 0.5, "batch_size": 48, "max_len": 17,
          "hidden": 24, "blocks": 3, "heads": 2, "dropout": 0.123456789,
          "lr": 0.000123456789, "bf16": True, "batches": "packed", "compile": True,
          "cuda_graphs": True, "epochs": 7, "patience": 4,
          "eval_batch_size": 99, "seed": 5, "include_seen": True, "sparse_item_grad": True}
# Knobs whose other values exclude each other's: each at once with all the others but these.
EXCLUSIVE = {"sasrec": ("cuda_graphs", "sparse_item_grad")}  # SparseAdam is not graphed
OTHER = {
    "sasrec": SASREC,
    # (no CUDA graphs, packed batches nor sparse item gradients: not yet for BERT4Rec)
    "bert4rec": {**{k: v for k, v in SASREC.items() if k not in ("cuda_graphs",
                                                                   "sparse_item_grad")},
                 "batches": "random", "mask_prob": 0.123456789, "last_item_prob": 0.25},
    "dlrm": {"batch_size": 48, "embedding_dim": 24, "mlp_bot": "64-32", "mlp_top": "128",
             "interaction": "cat", "lr": 0.00123456789, "table_lr": 0.0777,
             "dense_optimizer": "adam", "sparse_optimizer": "rowwise_adagrad", "epochs": 7,
             "seed": 5},
}
DATA = {"sasrec": DataOptions(), "bert4rec": DataOptions(),
        "dlrm": ClickDataset("synthetic-dlrm-small")}


def command(model: str, data, config) -> list[str]:
    """The recommended command's arguments, as the report writes them."""
    return ["train", "--model", model, *get(model).train_argv(data, config)]


def retrained(model: str, data, config):
    """The data and config that `cce-tune train` runs for `config` on `data`."""
    family = get(model)
    args = build_parser(model).parse_args(command(model, data, config))
    return family.data_options(args), family.run_config(args)


def base(model: str):
    """The config `cce-tune train --model MODEL` runs by default on its DATA."""
    family = get(model)
    argv = ["train", "--model", model, *family.data_argv(DATA[model])]
    return family.run_config(build_parser(model).parse_args(argv))


@pytest.fixture(scope="module", params=names())
def family(request):
    return get(request.param)


def test_every_family_lists_a_value_to_try_for_every_knob(family):
    assert set(OTHER[family.name]) == {knob.name for knob in family.knobs}
    defaults = family.params_of(base(family.name))
    assert all(OTHER[family.name][k] != defaults[k] for k in OTHER[family.name])


def test_one_knob_round_trips(family):
    for knob in family.knobs:
        params = {knob.name: OTHER[family.name][knob.name]}
        if knob.name == "in_kernel_negatives":
            params["loss"] = "cce_minus"  # in-kernel ids are the fused loss's
        config = family.config_from_params(params, base(family.name))
        assert family.params_of(config)[knob.name] == params[knob.name], knob.name
        assert retrained(family.name, DATA[family.name], config)[1] == config, knob.name


def test_all_knobs_at_once_round_trip(family):
    start = base(family.name)
    for left_out in EXCLUSIVE.get(family.name, (None,)):
        other = {k: v for k, v in OTHER[family.name].items() if k != left_out}
        config = family.config_from_params(other, start)
        assert family.params_of(config) == {**family.params_of(start), **other}
        assert retrained(family.name, DATA[family.name], config) == (DATA[family.name], config)
        assert family.config_from_params({**other, "estimate_bytes": 1}, start) == config


def test_exclusive_knobs_are_refused_together():
    with pytest.raises(ValueError, match="--cuda-graphs and --sparse-item-grad do not combine"):
        get("sasrec").config_from_params(SASREC, base("sasrec"))


def test_space_knobs_are_the_searchable_ones(family):
    assert family.space_knobs == {k.name: k.kind for k in family.knobs if k.searchable}
    assert tuple(family.space_knobs) == family.searchable


def test_single_negative_losses_take_one_negative():
    sasrec = get("sasrec")
    config = sasrec.config_from_params({"loss": "bce", "negatives": 512}, base("sasrec"))
    assert config.loss == LossConfig("bce", num_negatives=1)
    assert retrained("sasrec", DataOptions(), config)[1] == config


def test_file_dataset_options_round_trip(tmp_path: Path):
    options = DataOptions(dataset=str(tmp_path / "log.csv"), data_dir=None,
                          prepare=PrepareOptions(min_rating=3.5, min_user_interactions=7),
                          columns=ColumnNames("uid", "iid", "ts", "stars"))
    config = base("sasrec")
    assert retrained("sasrec", options, config) == (options, config)
    movielens = replace(options, dataset="ml-1m", data_dir=tmp_path, columns=ColumnNames())
    assert retrained("sasrec", movielens, config)[0] == movielens


def test_criteo_options_round_trip(tmp_path: Path):
    criteo = tmp_path / "day_0.txt"
    for options in (CriteoOptions(hash_size=1000, skip_bad_rows=True),
                    CriteoOptions(hash_size=None, min_frequency=3)):
        data = ClickDataset(str(criteo), options)
        assert get("dlrm").data_argv(data)[:2] == ["--dataset", str(criteo)]
        args = build_parser("dlrm").parse_args(
            ["train", "--model", "dlrm", *get("dlrm").data_argv(data)])
        assert get("dlrm").data_options(args) == data


def test_the_recommended_command_names_only_what_differs_from_the_defaults(family):
    start, data = base(family.name), DATA[family.name]
    assert family.train_argv(data, start) == family.data_argv(data)
    for knob in family.knobs:
        params = {knob.name: OTHER[family.name][knob.name]}
        if knob.name == "in_kernel_negatives":
            params["loss"] = "cce_minus"
        config = family.config_from_params(params, start)
        flags = family.train_argv(data, config)[len(family.data_argv(data)):]
        named = [k for k in family.knobs if k.flag in flags]
        assert knob in named, knob.name
        # Only what differs (DLRM's bottom MLP ends in the embedding size, so both change).
        assert all(k.get(config) != k.get(start) for k in named), knob.name
        assert retrained(family.name, data, config)[1] == config, knob.name


@pytest.mark.parametrize("old,batches", [(True, "length"), (False, "random")])
def test_a_run_saved_before_batches_had_a_name_still_loads(old, batches):
    """Runs before `--batches` saved `batch_by_length`; `report` and `--resume` read them."""
    import json
    from dataclasses import asdict

    base = asdict(TrainConfig(batches=batches))
    del base["batches"]
    run = json.loads(json.dumps({"data": asdict(DataOptions()),
                                 "base": {**base, "batch_by_length": old}}, default=str))
    assert get("sasrec").from_json(run) == (DataOptions(), TrainConfig(batches=batches))
