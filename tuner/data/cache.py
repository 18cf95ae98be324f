"""Prepared datasets cached as .npz, keyed by everything that shaped them."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cce_tune.tuner.data.sequences import SequenceData

# Bump when preparation changes meaning, so old caches are not reused.
FORMAT_VERSION = 1


def cache_dir() -> Path:
    """`$CCE_TUNE_CACHE`, else `~/.cache/cce-tune`."""
    return Path(os.environ.get("CCE_TUNE_CACHE") or Path.home() / ".cache" / "cce-tune")


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(
        json.dumps({"version": FORMAT_VERSION, **key}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return cache_dir() / "prepared" / f"{key['name']}-{digest}.npz"


def cached_counts(key: dict) -> tuple[int, int] | None:
    """(users, items) of the prepared arrays for `key` if they are cached, reading no items."""
    path = cache_path(key)
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return len(stored["offsets"]) - 1, int(stored["num_items"])


def cached(key: dict, build: Callable[[], SequenceData]) -> SequenceData:
    """Load the prepared arrays for `key`, or build and store them (atomically)."""
    path = cache_path(key)
    if path.is_file():
        with np.load(path) as stored:
            return SequenceData(
                name=str(stored["name"]),
                num_items=int(stored["num_items"]),
                offsets=stored["offsets"],
                items=stored["items"],
            )
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    # A partial file of this process's own: processes preparing the same data at once (the
    # ranks of a torchrun, trials) each write theirs and the last replace wins; one shared
    # name had one's replace find the file already moved.
    partial = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part.npz")
    np.savez(partial, name=data.name, num_items=data.num_items, offsets=data.offsets,
             items=data.items)
    partial.replace(path)
    return data
