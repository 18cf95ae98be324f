"""A space's continuous values are what a trial trains with and its command shows."""

from types import SimpleNamespace

from cce_tune.search_spaces import Param


def test_continuous_values_keep_four_significant_digits_within_their_bounds():
    lr = Param("lr", "log_uniform", (3e-4, 3e-3))
    assert lr.grid() == [0.0009487]  # sqrt(3e-4 x 3e-3) = 0.000948683...
    drawn = SimpleNamespace(suggest_float=lambda name, low, high, log: 0.0012345678)
    assert lr.suggest(drawn) == 0.001235
    edge = Param("mask_prob", "uniform", (0.1, 0.123456))
    at_top = SimpleNamespace(suggest_float=lambda name, low, high, log: 0.123456)
    assert edge.suggest(at_top) == 0.123456  # 0.1235 would leave the bounds
