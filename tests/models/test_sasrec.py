import torch

from cce_tune.models import SASRec, SASRecConfig


def model(**overrides):
    torch.manual_seed(0)
    return SASRec(SASRecConfig(num_items=30, max_len=8, hidden=16, num_heads=2, **overrides)).eval()


def test_shape():
    items = torch.randint(1, 31, (3, 8))
    assert model()(items).shape == (3, 8, 16)


def test_later_items_never_change_earlier_positions():
    net = model()
    items = torch.randint(1, 31, (4, 8))
    items[:, :2] = 0  # left padding
    changed = items.clone()
    changed[:, 5:] = torch.randint(1, 31, (4, 3))
    before, after = net(items), net(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_padding_rows_are_invisible_to_real_positions():
    """Whatever the padding rows hold between blocks, real positions do not attend to them."""
    net = model()
    items = torch.randint(1, 31, (2, 8))
    items[:, :3] = 0
    hidden = net(items)

    def scramble_padding(module, inputs, output):
        output = output.clone()
        output[:, :3] = torch.randn_like(output[:, :3]) * 100
        return output

    handle = net.blocks[0].register_forward_hook(scramble_padding)
    scrambled = net(items)
    handle.remove()
    assert torch.isfinite(hidden).all()
    torch.testing.assert_close(scrambled[:, 3:], hidden[:, 3:])
    assert not torch.allclose(scrambled[:, :3], hidden[:, :3])


def test_too_long_sequence_is_refused():
    try:
        model()(torch.ones(1, 9, dtype=torch.long))
    except ValueError as error:
        assert "exceeds max_len 8" in str(error)
    else:
        raise AssertionError("no error")


def test_a_batch_cut_to_its_longest_sequence_gives_the_same_outputs():
    """Positions count from the right end, so dropping columns of padding changes nothing."""
    net = model()
    items = torch.randint(1, 31, (3, 8))
    items[0, :5], items[1, :3], items[2, :4] = 0, 0, 0  # longest: 5 real items
    full, cut = net(items), net(items[:, -5:])
    real = items[:, -5:] != 0
    torch.testing.assert_close(cut[real], full[:, -5:][real])
