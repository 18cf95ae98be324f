"""The trainer's loss selector (kernels.losses) in front of the fused kernels, run by Triton's
interpreter on the CPU in place of a GPU."""

import pytest
import torch

import cce_tune.kernels.losses as losses
from cce_tune.kernels import reference
from cce_tune.kernels.config import LossConfig


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU tensors through the interpreter; "
                    "on a GPU host the fused kernels run compiled (tests/kernels/test_fused.py)")
def test_under_autocast_a_sparse_item_gradient_leaves_the_table_float32(monkeypatch):
    """Under autocast (fp16 here: the interpreter has no bf16) the selector casts hidden for
    the fused kernel but passes the float32 table as it is, whose rows the kernel converts:
    the table's gradient comes back sparse and float32, the dense one's values."""
    monkeypatch.setattr(losses, "_fused_available", lambda hidden, name: True)
    calls = []
    fused = losses.cce_minus
    monkeypatch.setattr(losses, "cce_minus", lambda h, e, t, n, **options: calls.append(
        (h, e, n, options)) or fused(h, e, t, n, **options))
    module = losses.make_loss(LossConfig("cce_minus", 8, sparse_item_grad=True), num_items=30)
    hidden = torch.randn(20, 16, requires_grad=True)
    table = torch.randn(31, 16, requires_grad=True)
    targets = torch.randint(1, 31, (20,))
    with torch.autocast("cpu", dtype=torch.float16):
        module(hidden, table, targets).backward()
    [(cast_hidden, passed_table, negatives, options)] = calls
    assert cast_hidden.dtype == torch.float16 and passed_table is table
    assert options["sparse_item_grad"]
    assert table.grad.layout == torch.sparse_coo and table.grad.dtype == torch.float32
    wide_table = table.detach().double().requires_grad_()
    reference.ce_minus(cast_hidden.detach().double(), wide_table, targets, negatives).backward()
    error = (table.grad.to_dense().double() - wide_table.grad).norm() / wide_table.grad.norm()
    assert error < 2e-3, error  # the fp16 products' rounding
