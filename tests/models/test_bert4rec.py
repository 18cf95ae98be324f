import pytest
import torch

from cce_tune.models import BERT4Rec, BERT4RecConfig
from cce_tune.models.bert4rec_config import masked_capacity
from cce_tune.models.sasrec import attention_bias

V = 30


def model(**overrides):
    torch.manual_seed(0)
    return BERT4Rec(BERT4RecConfig(num_items=V, max_len=8, hidden=16, num_heads=2,
                                   **overrides)).eval()


def test_shape_and_the_mask_tokens_row_is_no_item():
    net = model()
    items = torch.randint(1, V + 2, (3, 8))
    assert net(items).shape == (3, 8, 16)
    assert net.item_emb.weight.shape == (V + 2, 16)
    assert net.config.mask_token == V + 1
    # Scores cover padding (column 0, ignored) and the V items, never the mask token.
    assert net.output_embedding.shape == (V + 1, 16)
    assert net.output_embedding.data_ptr() == net.item_emb.weight.data_ptr()


def test_later_items_change_earlier_positions():
    net = model()
    items = torch.randint(1, V + 1, (4, 8))
    changed = items.clone()
    changed[:, 6:] = V + 1  # masked
    before, after = net(items), net(changed)
    assert not torch.allclose(before[:, :5], after[:, :5])


def test_padding_rows_are_invisible_to_real_positions():
    net = model()
    items = torch.randint(1, V + 2, (2, 8))
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


def test_bias_blocks_padding_columns_only():
    real = torch.tensor([[False, True, True]])
    bias = attention_bias(real, torch.float32, causal=False)[0, 0]
    assert torch.isinf(bias[:, 0]).tolist() == [False, True, True]  # padding sees itself
    assert (bias[:, 1:] == 0).all()


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        model()(torch.ones(1, 9, dtype=torch.long))


def test_masked_capacity_by_hand():
    # B = 100, L = 50, p = 0.2: mean 100 * (10 + 0.8^50), sd sqrt(100 * (8 + 0.8^50)).
    none = 0.8**50
    mean, sd = 100 * (10 + none), (100 * (8 + none)) ** 0.5
    assert masked_capacity(100, 50, 0.2) == -(-(mean + 6 * sd) // 1) == 1170
    assert masked_capacity(4, 1, 0.2) == 4  # never more than every position
    assert masked_capacity(1000, 2, 0.01) >= 1000  # at least one a sequence


def test_a_batch_cut_to_its_longest_sequence_gives_the_same_outputs():
    """Bidirectional attention too: the cut columns are padding, which no position sees."""
    torch.manual_seed(0)
    net = BERT4Rec(BERT4RecConfig(num_items=30, max_len=8, hidden=16, num_heads=2)).eval()
    items = torch.randint(1, 32, (3, 8))
    items[0, :5], items[1, :3], items[2, :2] = 0, 0, 0  # longest: 6 real items
    full, cut = net(items), net(items[:, -6:])
    real = items[:, -6:] != 0
    torch.testing.assert_close(cut[real], full[:, -6:][real])
