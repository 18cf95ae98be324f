"""The live view of a tuning run: one line per trial epoch, finish or failure."""

from __future__ import annotations

from ray.tune import Callback

from tuner.memory import format_bytes


class ProgressTable(Callback):
    """Prints each trial's progress as it reports, with measured against estimated memory."""

    def __init__(self, trials: int, budget_bytes: int) -> None:
        self.trials = trials
        self.budget_bytes = budget_bytes
        self.done = 0
        self.numbers: dict[str, int] = {}

    def _number(self, trial) -> int:
        return self.numbers.setdefault(trial.trial_id, len(self.numbers) + 1)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        c = trial.config
        print(f"[{self._number(trial):>3}/{self.trials}] start  B={c.get('batch_size')} "
              f"N={c.get('negatives')} L={c.get('max_len')} lr={c.get('lr', 0):.2e}  "
              f"estimate {format_bytes(c.get('estimate_total_bytes', 0))} of "
              f"{format_bytes(self.budget_bytes)}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        print(f"[{self._number(trial):>3}/{self.trials}] epoch {result['epoch']}  "
              f"NDCG@10 {result['ndcg10']:.4f}  {result['epoch_seconds']:.1f} s  "
              f"peak {result['peak_memory_gb']:.2f} GB "
              f"({'measured' if result['memory_measured'] else 'estimated'}; "
              f"estimate {result['estimate_gb']:.2f} GB)", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        print(f"[{self._number(trial):>3}/{self.trials}] done   ({self.done} finished)",
              flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        print(f"[{self._number(trial):>3}/{self.trials}] FAILED ({self.done} finished); "
              "the run goes on", flush=True)
