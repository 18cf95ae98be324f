"""The compact accumulator's bookkeeping: who owns a row, and the table it expands to."""

import torch

from cce_tune.kernels.compact import UNTOUCHED, compact_accumulator, expand_gradient

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_each_touched_row_is_owned_by_its_first_position(monkeypatch):
    empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **k: empty(*a, **k).fill_(float("nan")))
    targets = torch.tensor([5, 0, 9, 5, 3], device=DEVICE)
    ids = torch.tensor([[9, 12, 3], [7, 12, 1]], device=DEVICE)[:, :2]  # row stride 3
    owners, accumulator = compact_accumulator(targets, ids, 20, 70)
    # positions: targets 0..4, then ids 9, 12 (5, 6) and 7, 12 (7, 8)
    expected = torch.full((20,), UNTOUCHED, dtype=torch.int32)
    for row, first in {5: 0, 0: 1, 9: 2, 3: 4, 12: 6, 7: 7}.items():
        expected[row] = first
    assert torch.equal(owners.cpu(), expected)
    assert accumulator.shape == (9, 70) and not accumulator.any()  # zeroed by the claim


def test_as_many_positions_as_rows_needs_no_compaction():
    targets = torch.tensor([1, 2, 3], device=DEVICE)
    assert compact_accumulator(targets, torch.tensor([4, 5], device=DEVICE), 5, 8) is None
    assert compact_accumulator(targets, None, 100, 8) is None


def test_expanded_table_takes_owner_rows_and_zeros_elsewhere():
    owners = torch.tensor([UNTOUCHED, 2, UNTOUCHED, 0, 1], dtype=torch.int32, device=DEVICE)
    accumulator = torch.randn(4, 200, device=DEVICE)  # wider than one column block
    table = expand_gradient(owners, accumulator.half())
    assert table.dtype == torch.float16 and table.shape == (5, 200)
    expected = torch.zeros(5, 200, device=DEVICE)
    expected[1], expected[3], expected[4] = accumulator[2], accumulator[0], accumulator[1]
    assert torch.equal(table, expected.to(torch.float16))
