"""`cce-tune replay`: the tuner's search replayed over a table of measured configurations,
so search strategies are compared without training.

    >>> from cce_tune.tuner.replay import Columns, ReplaySettings, compare, load_table
    >>> table = load_table(Path("runs/ml-1m-grid"), Columns())
    >>> comparison = compare(table, ["random", "tpe", "cce-tune"], range(30),
    ...                      ReplaySettings(trials=32, limit_gb=14.4, grace_seconds=60.0))
    >>> comparison.summaries["cce-tune"].trials_to_within

One concept per module: `table` (reading and grouping a table into points), `strategies`
(the samplers compared, a registry), `simulate` (one search over the table, with the tuner's
memory constraint and ASHA), `metrics` (trials to within 1 %, GPU time, hypervolume),
`compare` (every strategy on the same seeds) and `report` (text, Markdown, JSON). Light:
Optuna and Ray are imported when a search runs, not here.
"""

from cce_tune.tuner.replay import report
from cce_tune.tuner.replay.compare import Comparison, compare, limit_gb
from cce_tune.tuner.replay.metrics import hypervolume, search_metrics, summarise
from cce_tune.tuner.replay.simulate import Evaluated, ReplaySettings, SearchLog, simulate
from cce_tune.tuner.replay.table import Columns, Outcome, Point, Table, load_table
from cce_tune.tuner.strategies import STRATEGIES, Strategy, cce_tune_sampler

__all__ = [
    "STRATEGIES", "Columns", "Comparison", "Evaluated", "Outcome", "Point", "ReplaySettings",
    "SearchLog", "Strategy", "Table", "cce_tune_sampler", "compare", "hypervolume", "limit_gb",
    "load_table", "report", "search_metrics", "simulate", "summarise",
]
