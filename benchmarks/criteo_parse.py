"""How fast the Criteo parser reads the tab-separated format, and so how long the 45 M-row
Kaggle file takes the first time (afterwards it loads from the .npz cache).

    python -m benchmarks.criteo_parse --rows 200000

Writes a file of `--rows` lines in the exact format (a fifth of the integers and a tenth of
the categorical values missing), parses it with hashing and with a frequency threshold, and
writes criteo-parse-<machine>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

from cce_tune.tuner.clicks.criteo import CATEGORICAL, DENSE, CriteoOptions, parse_criteo

KAGGLE_ROWS = 45_840_617


def write_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as out:
        for _ in range(rows):
            dense = [str(rng.randint(0, 1000)) if rng.random() > 0.2 else ""
                     for _ in range(DENSE)]
            cats = [f"{rng.getrandbits(32):08x}" if rng.random() > 0.1 else ""
                    for _ in range(CATEGORICAL)]
            out.write("\t".join([str(rng.randint(0, 1)), *dense, *cats]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "day.txt"
        write_file(path, args.rows)
        for name, options in (("hash 2^20", CriteoOptions()),
                              ("min frequency 2", CriteoOptions(hash_size=None,
                                                                min_frequency=2))):
            started = time.perf_counter()
            parse_criteo(path, options)
            seconds = time.perf_counter() - started
            rate = args.rows / seconds
            rows.append({"tables": name, "rows": args.rows, "seconds": seconds,
                         "rows_per_s": rate, "kaggle_minutes": KAGGLE_ROWS / rate / 60})
    table = ("| tables | rows | seconds | rows/s | Kaggle file (45.8 M rows), minutes |\n"
             "|---|---|---|---|---|\n" + "\n".join(
                 f"| {r['tables']} | {r['rows']:,} | {r['seconds']:.2f} | "
                 f"{r['rows_per_s']:,.0f} | {r['kaggle_minutes']:.1f} |" for r in rows))
    print(table)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    command = f"python -m benchmarks.criteo_parse --rows {args.rows}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / "criteo-parse-vm"
    stem.with_suffix(".json").write_text(json.dumps(
        {"machine": machine, "command": command, "results": rows}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(
        f"# Criteo parser speed\n\n`{command}` on {machine} (one core: the parser is a "
        f"single Python loop).\n\n{table}\n")


if __name__ == "__main__":
    main()
