"""The BERT4Rec family: its memory estimate (the masked positions as the loss's tokens, the
mask token's row), its run file and its presets."""

import json
from dataclasses import asdict, replace

import pytest

from cce_tune.kernels.config import LossConfig
from cce_tune.kernels.memory import allocation, loss_memory
from cce_tune.models.bert4rec_config import masked_capacity
from cce_tune.search_spaces import load_space
from cce_tune.tuner.cli_tune import default_space
from cce_tune.tuner.data import DataOptions
from cce_tune.tuner.families import get
from cce_tune.tuner.memory import DatasetShape, estimate
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig

SHAPE = DatasetShape(num_users=138_493, num_items=26_744)


def cloze(**overrides) -> ClozeConfig:
    return ClozeConfig(**{"loss": LossConfig("ce_minus", num_negatives=4096), "batch_size": 256,
                          "max_len": 200, **overrides})


def test_the_loss_sees_the_masked_tokens_bound_not_batch_times_length():
    config = cloze()
    breakdown = estimate(config, SHAPE)
    masked = masked_capacity(256, 200, 0.2)
    assert 0.2 * 256 * 200 < masked < 0.23 * 256 * 200
    assert breakdown.phase == "backward"
    loss = loss_memory(config.loss, masked, SHAPE.num_items, 64, autocast=False)
    assert breakdown.terms["loss saved"] == loss.saved
    sasrec = estimate(TrainConfig(**{k: v for k, v in asdict(config).items()
                                     if k not in ("mask_prob", "last_item_prob")}
                                  | {"loss": config.loss}), SHAPE)
    # The loss sees about a fifth of the tokens; activations and data stay.
    assert breakdown.peak_allocated < sasrec.peak_allocated / 2
    more = estimate(replace(config, mask_prob=0.4), SHAPE)
    assert more.terms["loss saved"] > breakdown.terms["loss saved"]


def test_dataset_and_table_terms_by_hand():
    breakdown = estimate(cloze(), SHAPE)
    users, length = SHAPE.num_users, 200
    assert breakdown.terms["dataset on device"] == (
        3 * allocation(users * length, 8) + allocation(users, 8))
    step = estimate(cloze(batch_size=1, loss=LossConfig("ce")), DatasetShape(10, 1_000_000))
    # The table has the mask token's row: 1,000,002 rows of 64 float32.
    table = allocation(1_000_002 * 64, 4)
    assert step.phases["optimizer step"] >= 4 * table  # parameters, Adam state, gradients


def test_run_file_round_trips():
    family = get("bert4rec")
    config = cloze(mask_prob=0.31)
    run = json.loads(json.dumps({"data": asdict(DataOptions()), "base": asdict(config)},
                                default=str))
    assert family.from_json(run) == (DataOptions(), config)


def test_presets_tune_bert4rec():
    knobs_of = lambda model: get(model).space_knobs  # noqa: E731
    for name in ("bert4rec", "bert4rec-synthetic"):
        space = load_space(name, knobs_of)
        assert space.model == "bert4rec" and "mask_prob" in [p.name for p in space.params]
    # A dataset's preset for the model, named <model>-<dataset>; else the model's own.
    assert default_space("synthetic", get("bert4rec")) == "bert4rec-synthetic"
    assert default_space("ml-20m", get("bert4rec")) == "bert4rec"
    assert default_space("synthetic", get("sasrec")) == "synthetic"


def test_a_mask_probability_outside_zero_one_is_refused():
    family = get("bert4rec")
    with pytest.raises(ValueError, match="mask probability"):
        family.config_from_params({"mask_prob": 1.0}, cloze())
