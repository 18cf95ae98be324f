"""A run directory written by hand, as a finished tuning run leaves it, for the tests of what
reads one (reports) without running Ray."""

import json
from pathlib import Path

from cce_tune.tuner.data import DataOptions
from cce_tune.tuner.run_dir import TuneSettings
from cce_tune.tuner.sequences.config import TrainConfig

TRIALS = [  # (params, validation NDCG@10, epoch seconds, peak GB)
    ({"loss": "cce_minus", "batch_size": 64, "negatives": 128, "max_len": 50, "hidden": 32,
      "lr": 1e-3}, 0.31, 2.0, 1.2),
    ({"loss": "ce_minus", "batch_size": 128, "negatives": 256, "max_len": 50, "hidden": 64,
      "lr": 2e-3}, 0.35, 3.0, 2.5),
    ({"loss": "cce_minus", "batch_size": 256, "negatives": 512, "max_len": 100, "hidden": 64,
      "lr": 5e-4}, 0.28, 1.5, 3.0),
]


def fake_sasrec_run(run_dir: Path, trials: list[tuple] = TRIALS) -> Path:
    TuneSettings(run_dir=run_dir, base=TrainConfig(epochs=2), data=DataOptions("synthetic"),
                 space="synthetic", budget_bytes=40 * 10**9, trials=len(trials),
                 epochs=2).save()
    for number, (params, ndcg, seconds, peak) in enumerate(trials):
        trial = run_dir / f"trial_{number:05d}"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(
            {**params, "estimate_bytes": peak * 0.8e9, "estimate_total_bytes": peak * 1e9}))
        epochs = [{"epoch": epoch, "ndcg10": ndcg * epoch / 2, "hr10": 2 * ndcg * epoch / 2,
                   "loss": 5.0 / epoch, "epoch_seconds": seconds, "tokens_per_s": 1e5,
                   "train_seconds": seconds * epoch,
                   "peak_memory_gb": peak, "memory_measured": False, "estimate_gb": peak,
                   "done": epoch == 2}
                  for epoch in (1, 2)]
        (trial / "result.json").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    return run_dir
