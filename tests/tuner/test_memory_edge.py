"""The budget's edge: the largest feasible configurations, found with the memory model."""

import itertools
from types import SimpleNamespace

from cce_tune.search_spaces import parse_space
from cce_tune.tuner.families import get
from cce_tune.tuner.memory_edge import edge, edge_seeds, spread

SPACE = parse_space({"params": {"batch_size": {"powers_of_two": [64, 1024]},
                                "negatives": {"powers_of_two": [64, 4096]},
                                "max_len": {"choices": [50, 100, 200]},
                                "loss": {"choices": ["ce_minus", "cce_minus"]},
                                "lr": {"log_uniform": [1e-4, 1e-2]}}},
                    "test", "test", lambda model: get(model).space_knobs)


class Bytes:
    """A memory model in miniature: tokens x negatives, the fused loss 8x leaner."""

    def config(self, params):
        if params["batch_size"] == 1024 and params["max_len"] == 200:
            raise ValueError("refused")  # a combination the model refuses is skipped
        return params

    def estimate(self, params):
        tokens = params["batch_size"] * params["max_len"]
        lean = 8 if params["loss"] == "cce_minus" else 1
        return SimpleNamespace(total=tokens * params["negatives"] / lean)


def test_the_edge_is_every_feasible_point_nothing_feasible_exceeds():
    limit = 2.0e7
    found = edge(SPACE, Bytes(), limit)
    feasible = [p for p in SPACE.grid() if not (p["batch_size"] == 1024 and p["max_len"] == 200)
                and Bytes().estimate(p).total <= limit]
    knobs = ("batch_size", "negatives", "max_len")
    expected = [p for p in feasible if not any(
        q is not p and q["loss"] == p["loss"] and all(q[k] >= p[k] for k in knobs)
        for q in feasible)]
    assert found == expected and found
    assert {p["loss"] for p in found} == {"ce_minus", "cce_minus"}
    assert all(p["lr"] == 1e-3 for p in found)  # a continuous knob at its (log) middle


def test_edge_seeds_start_from_the_largest_and_spread_along_the_edge():
    seeds = edge_seeds(SPACE, Bytes(), 2.0e7, 4)
    assert len(seeds) == 4 and len({tuple(sorted(s.items())) for s in seeds}) == 4
    sizes = [s["batch_size"] * s["negatives"] * s["max_len"] for s in seeds]
    assert sizes[0] == max(p["batch_size"] * p["negatives"] * p["max_len"]
                           for p in edge(SPACE, Bytes(), 2.0e7))
    # spread along the edge, not one corner's neighbours
    assert len({s["batch_size"] for s in seeds}) >= 2 and len({s["max_len"] for s in seeds}) >= 2
    assert {s["loss"] for s in seeds} == {"ce_minus", "cce_minus"}


def test_a_budget_that_does_not_bind_has_no_edge_to_start_from():
    """Every point fits: the 'edge' would be the grid's largest corner, the slowest runs."""
    largest = max(Bytes().estimate(p).total for p in SPACE.grid()
                  if not (p["batch_size"] == 1024 and p["max_len"] == 200))
    assert edge_seeds(SPACE, Bytes(), largest, 4) == []
    assert len(edge_seeds(SPACE, Bytes(), largest - 1, 4)) == 4


def test_spread_of_fewer_points_than_asked_returns_them_all_the_largest_first():
    small = SPACE.grid()[0]
    points = [small, {**small, "negatives": 128}]
    assert spread(points, SPACE, 5) == [points[1], points[0]]


def test_optuna_params_round_trip_through_an_enqueued_trial():
    import optuna

    point = {"batch_size": 256, "negatives": 1024, "max_len": 100, "loss": "cce_minus",
             "lr": 3e-3}
    study = optuna.create_study()
    study.enqueue_trial(SPACE.optuna_params(point))
    assert SPACE.suggest(study.ask()) == point


def test_the_grid_holds_every_combination_of_the_discrete_knobs():
    assert len(SPACE.grid()) == 5 * 7 * 3 * 2
    assert SPACE.grid()[0] == dict(zip(("batch_size", "negatives", "max_len", "loss", "lr"),
                                       (64, 64, 50, "ce_minus", 1e-3), strict=True))
    assert len(list(itertools.product(*(p.grid() for p in SPACE.params)))) == 210


def test_a_numeric_knob_memory_does_not_grow_with_dominates_nothing():
    """`lr` among numeric choices is ordered but costs no memory: points that differ only
    in it do not hide each other, so the edge keeps its spread."""
    space = parse_space({"params": {"batch_size": {"powers_of_two": [64, 1024]},
                                    "negatives": {"powers_of_two": [64, 4096]},
                                    "lr": {"choices": [1e-4, 1e-3, 1e-2]}},
                         "fixed": {"loss": "cce_minus", "max_len": 100}},
                        "test", "test", lambda model: get(model).space_knobs)
    seeds = edge_seeds(space, Bytes(), 2.0e7, 4)
    assert len({(s["batch_size"], s["negatives"]) for s in seeds}) >= 2


def test_the_edge_of_a_large_grid_is_found_quickly():
    import time

    space = parse_space({"params": {"batch_size": {"int": [1, 40]},
                                    "negatives": {"int": [1, 40]},
                                    "max_len": {"int": [1, 12]}},
                         "fixed": {"loss": "ce_minus"}},
                        "test", "test", lambda model: get(model).space_knobs)
    started = time.perf_counter()
    found = edge(space, Bytes(), 5_000)
    assert time.perf_counter() - started < 10  # 19,200 points; quadratic took 92 s
    assert all(p["batch_size"] * p["negatives"] * p["max_len"] <= 5_000 for p in found)
