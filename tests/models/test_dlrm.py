import pytest
import torch
import torch.nn.functional as F

from cce_tune.models.dlrm import DLRM, dot_interaction
from cce_tune.models.dlrm_config import DLRMConfig, parse_arch
from cce_tune.models.dlrm_memory import dense_parameter_bytes, table_bytes
from cce_tune.tuner.clicks.batches import ClickGenerator, ClickSpec

TABLES = (1000, 50, 7)


def small(**overrides) -> DLRMConfig:
    return DLRMConfig(TABLES, bottom=(13, 32, 16), top=(16, 1), embedding_dim=16, **overrides)


def batch(lookups=3, fixed=False, planted=True, size=16):
    spec = ClickSpec(TABLES, lookups=lookups, fixed_lookups=fixed)
    return ClickGenerator(spec, planted, seed=1).batch(size)


def test_architecture_strings_parse_and_bad_ones_are_named():
    assert parse_arch("13-512-256-64", "--arch-mlp-bot") == (13, 512, 256, 64)
    with pytest.raises(ValueError, match="--arch-mlp-bot '13-x-64'"):
        parse_arch("13-x-64", "--arch-mlp-bot")
    with pytest.raises(ValueError, match="must output the embedding dimension"):
        DLRMConfig(TABLES, bottom=(13, 32), embedding_dim=16)
    with pytest.raises(ValueError, match="must end in 1"):
        DLRMConfig(TABLES, bottom=(13, 16), top=(16, 2), embedding_dim=16)


def test_dot_interaction_equals_a_plain_loop():
    vectors = torch.randn(5, 4, 3, dtype=torch.float64)
    expected = [[float(vectors[b, i] @ vectors[b, j]) for i in range(4) for j in range(i + 1, 4)]
                for b in range(5)]
    torch.testing.assert_close(dot_interaction(vectors),
                               torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("interaction", ["dot", "cat"])
def test_forward_equals_per_table_bags(interaction):
    torch.manual_seed(0)
    model = DLRM(small(interaction=interaction)).double()
    data = batch()
    dense = data.dense.double()
    x = model.bottom(dense)
    pooled = [F.embedding_bag(ids, model.table(t), starts, mode="sum")
              for t, (ids, starts) in enumerate(zip(data.indices, data.offsets, strict=True))]
    if interaction == "dot":
        features = torch.cat([x, dot_interaction(torch.stack([x, *pooled], 1))], 1)
    else:
        features = torch.cat([x, *pooled], 1)
    assert features.shape[1] == model.config.interaction_dim
    torch.testing.assert_close(model(dense, data.indices, data.offsets),
                               model.top(features).squeeze(1))


def test_bags_follow_the_csr_offsets():
    """A sample's bag holds exactly its ids: moving an id between bags changes both."""
    torch.manual_seed(0)
    model = DLRM(small())
    data = batch(lookups=2, fixed=True, size=4)
    before = model(data.dense, data.indices, data.offsets)
    offsets = [o.clone() for o in data.offsets]
    offsets[0][1] -= 1  # sample 0 gives its last id of table 0 to sample 1
    after = model(data.dense, data.indices, offsets)
    assert not torch.isclose(before[0], after[0]) and not torch.isclose(before[1], after[1])
    torch.testing.assert_close(before[2:], after[2:])


def test_fused_sgd_equals_sparse_gradients_and_sgd():
    torch.manual_seed(0)
    plain, fused = DLRM(small()), DLRM(small())
    fused.load_state_dict(plain.state_dict())
    fused.fuse_table_sgd(0.1)
    data = batch()
    plain(data.dense, data.indices, data.offsets).sum().backward()
    assert plain.tables.weight.grad.is_sparse
    with torch.no_grad():
        plain.tables.weight.add_(plain.tables.weight.grad.to_dense(), alpha=-0.1)
    fused(data.dense, data.indices, data.offsets).sum().backward()
    assert fused.tables.weight.grad is None
    torch.testing.assert_close(fused.tables.weight, plain.tables.weight)


def test_training_on_synthetic_beats_a_constant_predictor():
    torch.manual_seed(0)
    spec = ClickSpec((200, 100, 50), dense_features=8, lookups=2, samples=40_000)
    config = DLRMConfig(spec.table_sizes, bottom=(8, 32, 16), top=(32, 1), embedding_dim=16)
    model = DLRM(config)
    model.fuse_table_sgd(0.5)
    optimizer = torch.optim.Adam(model.dense_parameters(), lr=3e-3)
    generator = ClickGenerator(spec, planted=True, seed=0)
    for data in generator.batches(256):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(
            model(data.dense, data.indices, data.offsets), data.labels)
        loss.backward()
        optimizer.step()
    test = generator.batch(5_000)
    model.eval()
    with torch.no_grad():
        scores = model(test.dense, test.indices, test.offsets)
    positive, negative = scores[test.labels == 1], scores[test.labels == 0]
    auc = (positive[:, None] > negative[None, :]).float().mean().item()
    assert auc > 0.7, auc


def test_parameter_bytes_by_hand():
    config = small()
    assert table_bytes(config) == [64_000, 3_584, 512]  # rows x 16 x 4, 512-byte blocks
    parameters = [p.numel() for p in DLRM(config).dense_parameters()]
    assert dense_parameter_bytes(config) == sum(-(-4 * n // 512) * 512 for n in parameters)


@pytest.mark.gpu
@pytest.mark.parametrize("fused_sgd", [True, False])
def test_a_training_step_never_waits_for_the_gpu(fused_sgd):
    """A copy from host values or a `.item()` in the step would serialise CPU and GPU (the
    tables' sparse gradients are checked up to the backward: their optimizers are torch's)."""
    model = DLRM(small()).cuda()
    if fused_sgd:
        model.fuse_table_sgd(0.1)
    spec = ClickSpec(TABLES, lookups=3)
    one = ClickGenerator(spec, planted=True, seed=1, device=torch.device("cuda")).batch(64)
    optimizer = torch.optim.SGD(model.dense_parameters(), lr=0.1)
    step = [one.dense, one.indices, one.offsets]
    F.binary_cross_entropy_with_logits(model(*step), one.labels).backward()  # lazy inits
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(model(*step), one.labels).backward()
        optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
