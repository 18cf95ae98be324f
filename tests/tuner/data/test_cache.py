"""Prepared arrays cached on disk survive two processes preparing the same data at once (the
ranks of a torchrun, or trials): each writes a partial file of its own."""

from pathlib import Path

import numpy as np

from cce_tune.tuner.data import cache
from cce_tune.tuner.data.sequences import SequenceData

DATA = SequenceData(name="tiny", num_items=3, offsets=np.array([0, 2, 4]),
                    items=np.array([1, 2, 3, 1]))


def test_a_second_writer_between_anothers_write_and_its_rename(tmp_path, monkeypatch):
    """The interleaving that broke a torchrun: A writes its partial file, B prepares and
    renames, then A renames."""
    monkeypatch.setenv("CCE_TUNE_CACHE", str(tmp_path))
    key = {"name": "tiny", "seed": 1}
    real_replace, calls = Path.replace, []

    def replace(self, target):
        calls.append(self.name)
        if len(calls) == 1:  # A, about to rename: B runs whole
            assert cache.cached(key, lambda: DATA).num_items == 3
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    assert cache.cached(key, lambda: DATA).num_items == 3
    assert len(set(calls)) == 2  # two partial files
    np.testing.assert_array_equal(cache.cached(key, lambda: None).items, DATA.items)
    assert [p.name for p in cache.cache_path(key).parent.iterdir()] == [
        cache.cache_path(key).name]  # no partial file left
