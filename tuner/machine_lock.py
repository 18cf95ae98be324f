"""One local tuning run per machine at a time. Each local run starts its own Ray, which claims
every core and GPU: two at once oversubscribe both (epoch times, the time objective, silently
wrong; on a GPU two runs could overrun its memory). A second run is refused with the way to
share instead: one Ray cluster (`ray start --head`) that every run joins with `--address`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cce_tune.tuner.data.cache import cache_dir
from cce_tune.tuner.errors import CceTuneError

LOCK_FILE = "local-run.lock"


@contextmanager
def only_local_run(run_dir: Path) -> Iterator[None]:
    """Hold this machine's lock for a run that starts its own Ray; refuse if another holds it."""
    path = cache_dir() / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # a second try after clearing a dead run's lock
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(path)
            if holder is not None:
                raise CceTuneError(
                    f"another cce-tune run is using this machine's Ray, cores and GPUs (pid "
                    f"{holder['pid']}, {holder['run_dir']}); wait for it to end, or share one "
                    "cluster: `ray start --head`, then give each run --address auto") from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as lock:
            json.dump({"pid": os.getpid(), "run_dir": str(run_dir)}, lock)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _holder(path: Path) -> dict | None:
    """The live run that holds the lock, or None when it is gone (or the file is unreadable)."""
    try:
        holder = json.loads(path.read_text())
        os.kill(int(holder["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return holder
