import pytest
import torch

from cce_tune.tuner.clicks.rowwise_adagrad import RowWiseAdagrad


def test_rowwise_adagrad_equals_a_hand_loop():
    torch.manual_seed(0)
    table = torch.nn.EmbeddingBag(10, 4, mode="sum", sparse=True)
    start = table.weight.detach().clone()
    optimizer = RowWiseAdagrad(table.parameters(), lr=0.5)
    expected, accumulator = start.clone(), torch.zeros(10)
    for ids in ([1, 3, 3], [3, 7]):
        ids = torch.tensor(ids)
        optimizer.zero_grad()
        table(ids, torch.tensor([0])).pow(2).sum().backward()
        grad = table.weight.grad.to_dense()
        optimizer.step()
        for row in ids.unique():
            accumulator[row] += grad[row].pow(2).mean()
            expected[row] -= 0.5 * grad[row] / (accumulator[row].sqrt() + 1e-8)
    torch.testing.assert_close(table.weight.detach(), expected)
    assert torch.equal(table.weight[0], start[0])  # untouched rows stay
    assert optimizer.state[table.weight]["sum"].shape == (10,)


def test_dense_gradients_are_refused():
    weight = torch.nn.Parameter(torch.ones(3, 2))
    weight.grad = torch.ones(3, 2)
    with pytest.raises(ValueError, match="takes sparse gradients"):
        RowWiseAdagrad([weight]).step()
