"""How hard each candidate synthetic setting is, against real MovieLens-1M's published figures.

    python -m benchmarks.synthetic_calibration --bf16 --out benchmarks/results/calibration

For each candidate of `CALIBRATION_CANDIDATES` (tuner/data/synthetic.py), the data is drawn
at ml-1m shape and measured three ways on the leave-one-out test item, full ranking, seen
items excluded (the evaluator's protocol):

- CPU proxies, seconds each: popularity; a first-order Markov proxy (next-item counts after
  the last history item in the training part, popularity breaking ties); the planted oracle
  (the generator's own next-item probabilities: a ceiling no learner reaches on average).
- SASRec trained to convergence (validation NDCG@10 each epoch, patience 3, at most 50
  epochs; test at the best epoch): full cross-entropy at batch 128, then CCE- with 256 and
  2,048 uniform negatives at batch 128 and 1,024 (learning rate scaled by the square root
  of the batch, from 1e-3 at 128), so the gain of more negatives and larger batches shows.
  `--sasrec none` leaves SASRec out (CPU calibration).

Targets (ml-1m, Klenitskiy & Vasilev, RecSys 2023): SASRec full CE NDCG@10 0.10-0.20 (0.182
published), popularity 2-6x below it, 3,000 negatives within a few percent of full CE (0.186
vs 0.182). Results: calibration.json and calibration.md under --out, the command first.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.kernels import command_line
from cce_tune.kernels import LossConfig
from cce_tune.tuner.data.sequences import SequenceData
from cce_tune.tuner.data.synthetic import (
    CALIBRATION_CANDIDATES,
    SYNTHETIC_PRESETS,
    PlantedModel,
    SyntheticSpec,
    generate,
    planted_model,
    planted_scores,
)
from cce_tune.tuner.sequences.evaluate import evaluate, popularity_scorer
from cce_tune.tuner.sequences.train import Setup, TrainConfig

# SASRec runs per candidate: (name, loss, negatives, batch size).
RUNS = {
    "ce-b128": ("ce", 1, 128),
    "cce256-b128": ("cce_minus", 256, 128),
    "cce2048-b128": ("cce_minus", 2048, 128),
    "cce256-b1024": ("cce_minus", 256, 1024),
    "cce2048-b1024": ("cce_minus", 2048, 1024),
}
BASE_LR, BASE_BATCH = 1e-3, 128


@dataclass(frozen=True)
class Shape:
    """What a dataset looks like, beside real ml-1m's facts."""

    median_length: float
    top10_share: float  # interactions on the top 10 % of items
    top_item_users: float  # share of users who saw the most popular item
    items_under_40: float  # share of items with fewer than 40 interactions


def shape(data: SequenceData) -> Shape:
    counts = np.sort(np.bincount(data.items, minlength=data.num_items + 1)[1:])[::-1]
    top = max(1, data.num_items // 10)
    return Shape(float(np.median(data.lengths)), float(counts[:top].sum() / counts.sum()),
                 float(counts[0] / data.num_users), float(np.mean(counts < 40)))


def transition_counts(data: SequenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Next-item counts in the training part as a CSR over the previous item:
    (row starts (V + 2,), next items, counts)."""
    user_of = np.repeat(np.arange(data.num_users), data.lengths)
    position = np.arange(data.num_interactions)
    # A pair (position - 1, position) inside one user's training part.
    inside = (position < data.history_end("train")[user_of]) & (
        position > data.offsets[:-1][user_of])
    width = data.num_items + 1
    codes, counts = np.unique(data.items[position[inside] - 1].astype(np.int64) * width
                              + data.items[inside], return_counts=True)
    starts = np.searchsorted(codes // width, np.arange(width + 1))
    return starts, codes % width, counts


def markov_scorer(data: SequenceData, split: str):
    """Scores: transition counts from the last history item, then popularity on ties."""
    starts, following, counts = transition_counts(data)
    popularity = data.train_item_counts().astype(np.float64)
    tie_break = popularity / (popularity.max() + 1.0)
    previous = data.items[data.history_end(split) - 1]

    def score(users: torch.Tensor) -> torch.Tensor:
        rows = users.numpy()
        out = np.tile(tie_break, (len(rows), 1))
        begin, end = starts[previous[rows]], starts[previous[rows] + 1]
        sizes = end - begin
        row = np.repeat(np.arange(len(rows)), sizes)
        at = np.arange(sizes.sum()) + np.repeat(begin - np.cumsum(sizes) + sizes, sizes)
        out[row, following[at]] += counts[at]
        return torch.from_numpy(out)

    return score


def oracle_scorer(data: SequenceData, model: PlantedModel, split: str):
    previous = data.items[data.history_end(split) - 1]

    def score(users: torch.Tensor) -> torch.Tensor:
        rows = users.numpy()
        return torch.from_numpy(planted_scores(model, rows, previous[rows]))

    return score


def proxies(data: SequenceData, model: PlantedModel, split: str = "test") -> dict[str, float]:
    """NDCG@10 of popularity, the Markov proxy and the planted oracle on `split`."""
    scorers = {"popularity": popularity_scorer(data, "cpu"),
               "markov": markov_scorer(data, split),
               "oracle": oracle_scorer(data, model, split)}
    return {name: evaluate(scorer, data, split, batch_size=512).ndcg10
            for name, scorer in scorers.items()}


def train_sasrec(data: SequenceData, config: TrainConfig, patience: int,
                 min_epochs: int = 0) -> dict:
    """Train until validation NDCG@10 has not improved for `patience` epochs, once past
    `min_epochs` (or `config.epochs`); the test metrics of the best epoch's weights."""
    setup = Setup(config, data)
    rng = np.random.default_rng(config.seed)
    best, best_epoch, best_state, started = -1.0, 0, None, time.perf_counter()
    curve = []
    for epoch in range(1, config.epochs + 1):
        setup.model.train()
        order = torch.as_tensor(rng.permutation(data.num_users), device=setup.device)
        for first in range(0, data.num_users, config.batch_size):
            setup.step(order[first:first + config.batch_size])
        valid = setup.evaluate("valid", data).ndcg10
        curve.append(round(valid, 4))
        if valid > best:
            best, best_epoch = valid, epoch
            best_state = {key: value.detach().to("cpu", copy=True)
                          for key, value in setup.model.state_dict().items()}
        elif epoch - max(best_epoch, min_epochs) >= patience:
            break
    setup.model.load_state_dict(best_state)
    test = setup.evaluate("test", data)
    return {"valid_ndcg10": best, "test_ndcg10": test.ndcg10, "test_hr10": test.hr10,
            "best_epoch": best_epoch, "epochs": epoch,
            "seconds": time.perf_counter() - started, "valid_curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", choices=CALIBRATION_CANDIDATES,
                        default=["follow-0.25", "follow-0.35", "follow-0.5"])
    parser.add_argument("--shape", default="synthetic-ml-1m", choices=SYNTHETIC_PRESETS,
                        help="whose users, items and lengths (default: synthetic-ml-1m)")
    parser.add_argument("--sasrec", nargs="+", default=list(RUNS), choices=[*RUNS, "none"])
    parser.add_argument("--epochs", type=int, default=50, help="at most")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--min-epochs", type=int, default=0,
                        help="patience counts from this epoch on (sampled losses start with "
                             "a plateau of up to ~12 epochs that patience 3 can stop in)")
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="of data and training")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON and Markdown")
    args = parser.parse_args()
    runs = [] if "none" in args.sasrec else args.sasrec

    rows = []
    for name in args.candidates:
        spec = candidate_spec(args.shape, name)
        started = time.perf_counter()
        data = generate(spec, args.seed)
        generated = time.perf_counter() - started
        row = {"candidate": name, "settings": CALIBRATION_CANDIDATES[name],
               "generate_s": generated, "shape": asdict(shape(data)),
               "proxies": proxies(data, planted_model(spec, args.seed)), "sasrec": {}}
        print(_proxy_line(row), flush=True)
        for run in runs:
            loss, negatives, batch = RUNS[run]
            config = TrainConfig(loss=LossConfig(loss, num_negatives=negatives),
                                 batch_size=batch, max_len=args.max_len, hidden=args.hidden,
                                 lr=BASE_LR * math.sqrt(batch / BASE_BATCH),
                                 epochs=args.epochs, seed=args.seed, bf16=args.bf16)
            row["sasrec"][run] = train_sasrec(data, config, args.patience, args.min_epochs)
            print(f"  {run}: {row['sasrec'][run]}", flush=True)
        rows.append(row)

    command = command_line("benchmarks.synthetic_calibration", args, omit=("out",))
    report = markdown(rows, runs, command)
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        (args.out / "calibration.json").write_text(json.dumps(
            {"command": command, "device": device, "rows": rows}, indent=1))
        (args.out / "calibration.md").write_text(report)


def candidate_spec(shape_of: str, candidate: str) -> SyntheticSpec:
    """The preset's shape with the candidate's settings; the rest at the generator's defaults."""
    preset = SYNTHETIC_PRESETS[shape_of]
    return SyntheticSpec(f"{shape_of}:{candidate}", preset.num_users, preset.num_items,
                         preset.num_interactions, preset.min_length, preset.median_length,
                         preset.max_length, **CALIBRATION_CANDIDATES[candidate])


def _proxy_line(row: dict) -> str:
    p, s = row["proxies"], row["shape"]
    return (f"{row['candidate']}: popularity {p['popularity']:.4f}, markov {p['markov']:.4f}, "
            f"oracle {p['oracle']:.4f}, oracle/popularity {p['oracle'] / p['popularity']:.1f}x"
            f"; top-10% share {s['top10_share']:.2f}, top item {s['top_item_users']:.2f} of "
            f"users, items < 40 {s['items_under_40']:.2f}; generated in {row['generate_s']:.1f} s")


def markdown(rows: list[dict], runs: list[str], command: str) -> str:
    lines = [f"`{command}`", "",
             "Test NDCG@10, leave-one-out, full ranking, seen items excluded. Target (ml-1m, "
             "Klenitskiy & Vasilev 2023): SASRec full CE 0.10-0.20 (0.182), popularity 2-6x "
             "below, 3,000 negatives 0.186.", "",
             "| candidate | popularity | markov | oracle | " + " | ".join(runs)
             + (" | CE / popularity |" if "ce-b128" in runs else " |"),
             "|---" * (4 + len(runs) + ("ce-b128" in runs)) + "|"]
    for row in rows:
        p = row["proxies"]
        cells = [row["candidate"], *(f"{p[k]:.4f}" for k in ("popularity", "markov", "oracle"))]
        cells += [f"{row['sasrec'][r]['test_ndcg10']:.4f} ({row['sasrec'][r]['best_epoch']})"
                  for r in runs]
        if "ce-b128" in runs:
            cells.append(f"{row['sasrec']['ce-b128']['test_ndcg10'] / p['popularity']:.1f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "SASRec cells: test NDCG@10 (best validation epoch). Settings:", ""]
    lines += [f"- {row['candidate']}: {row['settings'] or 'generator defaults'}; "
              f"{_shape_text(row['shape'])}" for row in rows]
    return "\n".join(lines) + "\n"


def _shape_text(s: dict) -> str:
    return (f"median length {s['median_length']:.0f}, top 10 % of items hold "
            f"{s['top10_share']:.0%} of interactions, the top item {s['top_item_users']:.0%} "
            f"of users, {s['items_under_40']:.0%} of items under 40")


if __name__ == "__main__":
    main()
