"""Climbing from the best trial: untried neighbours along the ordered knobs, then along the
budget's edge."""

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cce_tune.tuner.climb import PlannedSampler, neighbours, next_neighbour

DISTRIBUTIONS = {"batch_size_log2": IntDistribution(5, 10), "max_len": CategoricalDistribution(
    [50, 100, 200]), "loss": CategoricalDistribution(["ce", "cce_minus"]),
    "lr": FloatDistribution(1e-4, 1e-2, log=True)}
BEST = {"batch_size_log2": 10, "max_len": 100, "loss": "ce", "lr": 1e-3}


def test_neighbours_go_up_first_then_down_then_across_then_along_the_edge():
    found = neighbours(BEST, DISTRIBUTIONS)
    changed = [{k: v for k, v in n.items() if BEST[k] != v} for n in found]
    assert changed == [
        {"max_len": 200},  # batch size is at its top already
        {"batch_size_log2": 9}, {"max_len": 50},
        {"loss": "cce_minus"},
        {"max_len": 200, "batch_size_log2": 9},
    ]
    assert all(n["lr"] == 1e-3 for n in found)  # continuous knobs keep their value


def study_with(trials):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for params, values, over in trials:
        trial = optuna.trial.create_trial(params=params, distributions={
            k: DISTRIBUTIONS[k] for k in params}, values=values,
            user_attrs={"over_budget_bytes": over})
        study.add_trial(trial)
    return study


def test_the_climb_starts_from_the_best_feasible_trial_and_skips_tried_points():
    worse = {**BEST, "batch_size_log2": 6}
    over_budget = {**BEST, "max_len": 200}
    study = study_with([(BEST, [0.3, 1.0], 0.0), (worse, [0.2, 1.0], 0.0),
                        (over_budget, [0.0, 1e9], 5e9),  # vetoed: tried, but not a best
                        ({**BEST, "max_len": 50, "batch_size_log2": 5}, [0.9, 1.0], 1e9)])
    assert next_neighbour(study.get_trials()) == {**BEST, "batch_size_log2": 9}


def test_every_other_proposal_climbs_and_the_others_are_tpes():
    sampler = PlannedSampler(optuna.samplers.TPESampler(seed=0), every=2)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.add_trial(optuna.trial.create_trial(params=BEST, distributions=DISTRIBUTIONS,
                                              values=[0.3, 1.0]))
    proposals = []
    for _ in range(4):
        trial = study.ask()
        params = {name: getattr(trial, f"suggest_{kind}")(name, *spec)
                  for name, kind, spec in (("batch_size_log2", "int", (5, 10)),
                                           ("max_len", "categorical", ([50, 100, 200],)),
                                           ("loss", "categorical", (["ce", "cce_minus"],)),
                                           ("lr", "float", (1e-4, 1e-2)))}
        proposals.append(params)
        study.tell(trial, [0.1, 1.0])
    # trial numbers 1 and 3 climb from the best (number 0): its first untried neighbours
    assert proposals[0] == {**BEST, "max_len": 200}
    assert proposals[2] == {**BEST, "batch_size_log2": 9}


def test_a_sampler_pickled_before_planners_existed_resumes_climbing():
    """A run started under the old class name and state resumes: it unpickles and climbs."""
    import pickle

    from cce_tune.tuner import climb

    sampler = PlannedSampler(optuna.samplers.TPESampler(seed=0))
    del sampler.__dict__["planner"]  # the state as the old class pickled it
    climb.PlannedSampler.__qualname__ = "ClimbingSampler"  # pickled under the old name
    try:
        pickled = pickle.dumps(sampler)
    finally:
        climb.PlannedSampler.__qualname__ = "PlannedSampler"
    assert b"ClimbingSampler" in pickled
    restored = pickle.loads(pickled)
    assert isinstance(restored, climb.PlannedSampler) and restored.planner is next_neighbour
