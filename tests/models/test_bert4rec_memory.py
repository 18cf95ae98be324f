"""BERT4Rec's memory terms by hand: SASRec's encoder with one more table row, and the masked
positions as the loss's tokens."""

from cce_tune.kernels.memory import allocation
from cce_tune.models import sasrec_memory
from cce_tune.models.bert4rec_config import BERT4RecConfig
from cce_tune.models.bert4rec_memory import (
    activation_memory,
    batch_bytes,
    inference_extra,
    parameter_bytes,
    parameter_shapes,
)
from cce_tune.models.sasrec_config import SASRecConfig

CONFIG = BERT4RecConfig(num_items=1000, max_len=50, hidden=64, num_blocks=2)
SASREC = SASRecConfig(num_items=1000, max_len=50, hidden=64, num_blocks=2)


def test_parameters_are_sasrecs_and_the_mask_tokens_row():
    assert parameter_shapes(CONFIG)[0] == 1002 * 64  # padding, 1,000 items, the mask token
    assert parameter_shapes(CONFIG)[1:] == sasrec_memory.parameter_shapes(SASREC)[1:]
    assert parameter_bytes(CONFIG) - sasrec_memory.parameter_bytes(SASREC) == (
        allocation(1002 * 64, 4) - allocation(1001 * 64, 4))


def test_activations_add_the_gathered_masked_states_to_sasrecs():
    sasrec = sasrec_memory.activation_memory(SASREC, 32, autocast=False)
    ours = activation_memory(CONFIG, 32, masked=300, autocast=False)
    # 300 float32 rows of 64 (76,800 B -> 150 granules of 512) and 300 int64 indices (2,400 B
    # -> 5 granules).
    assert ours.saved - sasrec.saved == 76_800 + 2_560
    assert (ours.forward_extra, ours.backward_extra) == (sasrec.forward_extra,
                                                         sasrec.backward_extra)
    assert inference_extra(CONFIG, 7, True) == sasrec_memory.inference_extra(SASREC, 7, True)


def test_batch_ids_by_hand():
    # B = 32, L = 50: 1,600 positions; int64 window 12,800 B, mask 1,600 B -> 2,048, two
    # float32 draws 6,400 B each -> 6,656; 300 masked: indices and items 2,400 B -> 2,560 each.
    assert batch_bytes(32, 50, 300) == 12_800 + 2_048 + 2 * 6_656 + 2 * 2_560
