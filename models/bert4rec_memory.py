"""BERT4Rec's bytes on the GPU as a function of its config, batch, masked tokens and precision.

The encoder is SASRec's, block for block, and its bidirectional attention bias has the causal
one's shape, so its activations are SASRec's (`models.sasrec_memory`) at the same (B, L);
the item table has one row more (the mask token). What differs is around the loss: a step
gathers the hidden states of its masked positions, and the loss sees those `masked` tokens,
not B x L (`masked_capacity` bounds their count).

Not yet measured on a GPU (`verify-memory --model bert4rec` is to come): the terms below
follow the code and err on the safe side where it is unsure.
"""

from __future__ import annotations

from cce_tune.kernels.memory import allocation
from cce_tune.models import sasrec_memory
from cce_tune.models.bert4rec_config import BERT4RecConfig
from cce_tune.models.sasrec_config import SASRecConfig
from cce_tune.models.sasrec_memory import ActivationMemory


def encoder(config: BERT4RecConfig) -> SASRecConfig:
    """SASRec of the same shape with the mask token counted as one more item: the same
    parameter tensors and activations."""
    return SASRecConfig(num_items=config.num_items + 1, max_len=config.max_len,
                        hidden=config.hidden, num_blocks=config.num_blocks,
                        num_heads=config.num_heads, dropout=config.dropout)


def table_rows(config: BERT4RecConfig) -> int:
    """Rows of the item table: padding, the items and the mask token."""
    return config.num_items + 2


def parameter_shapes(config: BERT4RecConfig) -> list[int]:
    return sasrec_memory.parameter_shapes(encoder(config))


def parameter_bytes(config: BERT4RecConfig) -> int:
    return sasrec_memory.parameter_bytes(encoder(config))


def batch_bytes(batch: int, length: int, masked: int) -> int:
    """A training batch's ids (`tuner.sequences.objectives.Cloze.batch`): the windows' copy,
    masked in place (int64), the mask and its random draws (float32, two of them, freed
    before the forward but counted), the masked positions' flat indices and items."""
    tokens = batch * length
    return (allocation(tokens, 8) + allocation(tokens, 1) + 2 * allocation(tokens, 4)
            + 2 * allocation(masked, 8))


def activation_memory(config: BERT4RecConfig, batch: int, masked: int,
                      autocast: bool) -> ActivationMemory:
    """SASRec's activations at (B, L), and the `masked` hidden states gathered for the loss
    (float32, as the final norm returns them) with the gather's saved indices. SASRec's
    count keeps the final norm's (B, L, d) output in `saved`; here it dies once gathered,
    and the gather's backward makes a (B, L, d) gradient in its place."""
    base = sasrec_memory.activation_memory(encoder(config), batch, autocast)
    gathered = allocation(masked * config.hidden, 4) + allocation(masked, 8)
    return ActivationMemory(base.saved + gathered, base.forward_extra, base.backward_extra)


def inference_extra(config: BERT4RecConfig, batch: int, autocast: bool) -> int:
    """A no-grad forward over (batch, L): SASRec's (the bias is built from two boolean
    (B, L, L) temporaries, not three: counted as SASRec's)."""
    return sasrec_memory.inference_extra(encoder(config), batch, autocast)

