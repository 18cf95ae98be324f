"""The exact hypervolume against brute force, and the front share's bounds."""

import itertools

import numpy as np
import pytest

from cce_tune.tuner.replay.metrics import Normaliser, hypervolume, search_metrics
from cce_tune.tuner.replay.simulate import Evaluated, SearchLog
from cce_tune.tuner.replay.table import Outcome, Point


def brute_force(points: np.ndarray, reference: np.ndarray) -> float:
    """Sum of the grid cells (between every point's coordinates) some point dominates."""
    axes = [np.unique(np.append(points[:, d], reference[d])) for d in range(3)]
    volume = 0.0
    for i, j, k in itertools.product(*(range(len(a) - 1) for a in axes)):
        corner = np.array([axes[0][i], axes[1][j], axes[2][k]])
        if np.any(np.all(points <= corner, axis=1)):
            volume += np.prod([axes[0][i + 1] - axes[0][i], axes[1][j + 1] - axes[1][j],
                               axes[2][k + 1] - axes[2][k]])
    return volume


@pytest.mark.parametrize("seed", range(20))
def test_hypervolume_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    points = rng.random((n, 3))
    if seed % 2:  # ties on a grid
        points = np.round(points * 4) / 4
    reference = np.array([1.1, 1.1, 1.1])
    assert hypervolume(points, reference) == pytest.approx(brute_force(points, reference))


def test_hypervolume_of_simple_shapes():
    assert hypervolume(np.zeros((1, 3)), [1, 2, 3]) == pytest.approx(6.0)
    assert hypervolume(np.array([[2.0, 0, 0]]), [1, 1, 1]) == 0.0  # beyond the reference
    # two boxes overlapping in a 0.5 x 0.5 x 1 column
    assert hypervolume(np.array([[0.5, 0, 0], [0, 0.5, 0]]), [1, 1, 1]) == pytest.approx(0.75)


def point(quality: float, seconds: float, memory: float) -> Point:
    return Point({"q": quality, "s": seconds}, memory,
                 (Outcome("t", quality, seconds, memory, 10.0),))


def test_share_is_one_when_the_front_is_found_and_less_without_it():
    front = [point(0.3, 10, 8), point(0.2, 5, 8), point(0.2, 10, 4)]
    dominated = [point(0.1, 12, 9), point(0.2, 11, 8)]
    table = front + dominated
    normaliser = Normaliser(table)
    true_volume = normaliser.volume(table)
    assert normaliser.volume(front) == pytest.approx(true_volume)

    def share(found, stopped=()):
        log = SearchLog("probe", 0, [Evaluated(p, p.outcomes[0], p.quality, 10.0,
                                               stopped=p in stopped) for p in found])
        return search_metrics(log, 0.3, normaliser, true_volume, (len(found),))

    assert share(front + dominated[:1]).hypervolume_share[4] == pytest.approx(1.0)
    partial = share(front[1:] + dominated).hypervolume_share[4]
    assert 0 < partial < 1
    # A trial ASHA stopped is off the front, as in the tuner's report.
    assert share(front, stopped=front[:1]).hypervolume_share[3] == pytest.approx(partial)


def test_trials_and_gpu_seconds_to_within_one_percent():
    a, b, c = point(0.20, 10, 4), point(0.297, 10, 4), point(0.30, 10, 4)
    normaliser = Normaliser([a, b, c])
    log = SearchLog("probe", 0, [Evaluated(a, None, None, 3.0, out_of_memory=True),
                                 Evaluated(a, a.outcomes[0], 0.2, 10.0),
                                 Evaluated(b, b.outcomes[0], 0.297, 20.0),
                                 Evaluated(c, c.outcomes[0], 0.30, 40.0)])
    metrics = search_metrics(log, 0.30, normaliser, normaliser.volume([a, b, c]), (4,))
    assert metrics.trials_to_within == 3  # 0.297 is within 1 % of 0.30; the OOM counts
    assert metrics.gpu_seconds_to_within == 33.0
    assert metrics.gpu_seconds == 73.0
    assert metrics.out_of_memory == 1


def test_within_one_percent_judges_the_configuration_not_the_seed_it_drew():
    """A lesser point's lucky seed does not reach; the best point's weak seed does, once it
    ran to its end."""
    def seeds(*qualities: float) -> tuple[Outcome, ...]:
        return tuple(Outcome(name, q, 10, 4, 10.0)
                     for name, q in zip("tuv", qualities, strict=True))

    lesser = Point({"q": 0.25}, 4, seeds(0.20, 0.31, 0.25))  # median 0.25
    best = Point({"q": 0.30}, 4, seeds(0.26, 0.30, 0.31))  # median 0.30
    normaliser = Normaliser([lesser, best])
    log = SearchLog("probe", 0, [Evaluated(lesser, lesser.outcomes[1], 0.31, 10.0),
                                 Evaluated(best, best.outcomes[0], 0.26, 10.0, stopped=True),
                                 Evaluated(best, best.outcomes[0], 0.26, 10.0)])
    metrics = search_metrics(log, 0.30, normaliser, normaliser.volume([lesser, best]), (3,))
    assert metrics.trials_to_within == 3
