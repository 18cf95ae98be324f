"""A space's continuous values are what a trial trains with and its command shows."""

from types import SimpleNamespace

import pytest

from cce_tune.search_spaces import Param


def test_continuous_values_keep_four_significant_digits_within_their_bounds():
    lr = Param("lr", "log_uniform", (3e-4, 3e-3))
    assert lr.grid() == [0.0009487]  # sqrt(3e-4 x 3e-3) = 0.000948683...
    drawn = SimpleNamespace(suggest_float=lambda name, low, high, log: 0.0012345678)
    assert lr.suggest(drawn) == 0.001235
    edge = Param("mask_prob", "uniform", (0.1, 0.123456))
    at_top = SimpleNamespace(suggest_float=lambda name, low, high, log: 0.123456)
    assert edge.suggest(at_top) == 0.123456  # 0.1235 would leave the bounds


KNOBS = {"batch_size": int, "lr": float, "dropout": float, "loss": str, "max_len": int}
SCALED = {"params": {"batch_size": {"powers_of_two": [128, 2048]},
                     "lr": {"log_uniform": [3e-4, 3e-3]}},
          "scale": {"lr": {"by": "batch_size", "reference": 128, "power": 0.5}}}


def scaled_space(spec=None):
    from cce_tune.search_spaces import parse_space
    return parse_space(spec or SCALED, "test", "test.yaml", lambda model: KNOBS)


def test_a_scaled_knob_trains_at_its_drawn_value_times_the_rule():
    """The lr drawn is the one at batch 128; a batch of 2,048 trains with 4x it."""
    space = scaled_space()
    trial = SimpleNamespace(suggest_int=lambda name, low, high: 11,  # 2 ** 11 = 2048
                            suggest_float=lambda name, low, high, log: 0.001)
    assert space.suggest(trial) == {"batch_size": 2048, "lr": 0.004}
    # and back, for enqueuing a chosen configuration: Optuna's own parameters
    assert space.optuna_params({"batch_size": 2048, "lr": 0.004}) == {
        "batch_size_log2": 11, "lr": 0.001}
    # a trained value whose drawn one would leave the bounds is enqueued at the bound
    assert space.optuna_params({"batch_size": 2048, "lr": 0.0009487})["lr"] == 3e-4
    # the grid (the memory edge's seeds) trains as a trial would: the middle lr, scaled
    assert [point["lr"] for point in space.grid()] == [0.0009487, 0.001342, 0.001897, 0.002683,
                                                       0.003795]
    assert space.optuna_params(space.grid()[-1])["lr"] == pytest.approx(0.0009487, rel=1e-3)


@pytest.mark.parametrize("scale,message", [
    ({"batch_size": {"by": "lr", "reference": 128, "power": 0.5}},
     "only a searched real knob"),
    ({"lr": {"by": "batch_size", "reference": 128}}, "give by, reference, power"),
    ({"lr": {"by": "batch_size", "reference": 128, "power": 0.5, "base": 1}},
     "unknown key 'base'; give by, reference, power"),
    ({"lr": {"by": "lr", "reference": 128, "power": 0.5}}, "not another numeric knob"),
    ({"lr": {"by": "loss", "reference": 128, "power": 0.5}}, "not another numeric knob"),
    ({"lr": {"by": "batch_size", "reference": 0, "power": 0.5}},
     "scale.lr.reference: 0 is not a positive number"),
    ({"lr": {"by": "batch_size", "reference": 128, "power": "half"}},
     "scale.lr.power: 'half' is not a number"),
    ({"lr": {"by": "dropout", "reference": 0.1, "power": 1},
      "dropout": {"by": "batch_size", "reference": 128, "power": 1}}, "is scaled itself"),
])
def test_a_bad_scale_rule_names_the_key_and_what_is_allowed(scale, message):
    from cce_tune.search_spaces import SpaceError
    params = {**SCALED["params"], "dropout": {"uniform": [0.1, 0.4]}}
    with pytest.raises(SpaceError, match=message):
        scaled_space({"params": params, "fixed": {"loss": "ce"}, "scale": scale})


def test_a_scale_by_a_knob_that_can_be_zero_is_refused():
    from cce_tune.search_spaces import SpaceError
    with pytest.raises(SpaceError, match="max_len takes 0; scaling needs it positive"):
        scaled_space({"params": {**SCALED["params"], "max_len": {"choices": [0, 50]}},
                      "scale": {"lr": {"by": "max_len", "reference": 50, "power": 1}}})


def test_the_presets_scale_the_learning_rate_with_the_batch():
    from cce_tune.search_spaces import load_space
    from cce_tune.tuner.families import get

    for preset in ("default", "ml-1m", "ml-20m"):
        space = load_space(preset, lambda model: get(model).space_knobs)
        assert [(s.knob, s.by, s.power) for s in space.scales] == [("lr", "batch_size", 0.5)]
