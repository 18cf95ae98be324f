import numpy as np
import pytest

from cce_tune.tuner.data.sequences import SequenceData


@pytest.fixture
def data():
    # user 0: 1 2 3 4 5 ; user 1: 6 7 8
    return SequenceData("toy", 8, np.array([0, 5, 8]), np.array([1, 2, 3, 4, 5, 6, 7, 8]))


def test_leave_one_out_targets(data):
    assert data.targets("test").tolist() == [5, 8]
    assert data.targets("valid").tolist() == [4, 7]


def test_windows_are_left_padded_histories(data):
    assert data.windows("train", 4).tolist() == [[0, 1, 2, 3], [0, 0, 0, 6]]
    assert data.windows("valid", 2).tolist() == [[2, 3], [0, 6]]
    assert data.windows("test", 3).tolist() == [[2, 3, 4], [0, 6, 7]]


def test_test_history_never_contains_its_target(data):
    for split in ("valid", "test"):
        histories = data.windows(split, 10)
        assert not (histories == data.targets(split)[:, None]).any()


def test_train_counts_exclude_held_out_items(data):
    assert data.train_item_counts().tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 0]


def test_summary(data):
    assert data.summary() == "toy: 2 users, 8 items, 8 interactions, density 50.000%"


def test_device_windows_equal_numpy_windows(monkeypatch):
    import numpy as np
    import torch

    import cce_tune.tuner.sequences.device_windows as built
    from cce_tune.tuner.data.sequences import SequenceData

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, 300)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = SequenceData("t", 50, offsets, rng.integers(1, 51, offsets[-1]).astype(np.int32))
    monkeypatch.setattr(built, "CHUNK_POSITIONS", 1000)  # several chunks, a ragged last one
    sequences = built.DeviceSequences(data, torch.device("cpu"))
    for split in ("train", "valid", "test"):
        for length in (1, 7, 45):
            expected = torch.as_tensor(data.windows(split, length))
            got = sequences.windows(split, length)
            assert torch.equal(got, expected), (split, length)
