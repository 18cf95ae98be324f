"""BERT4Rec (Sun et al., 2019): a bidirectional encoder over a user's item sequence, trained by
the cloze task.

Some items of the input are replaced by a mask token and the model predicts them from both
sides; to recommend, the mask token is appended after the history and the item at that
position is predicted. The blocks are SASRec's (`models.sasrec.Block`); only the attention
mask differs: every position sees every real position.

The mask token has a row of its own in the tied item table, row `num_items + 1` (row 0 is
padding); `output_embedding` leaves it out, so it is never scored as an item. Like SASRec,
`forward` returns hidden states, and the loss owns the output projection.
"""

from __future__ import annotations

import torch

from cce_tune.models.bert4rec_config import BERT4RecConfig
from cce_tune.models.sasrec import SASRec


class BERT4Rec(SASRec):
    """SASRec's encoder without the causal mask, and a row for the mask token."""

    causal = False
    extra_rows = 1
    config: BERT4RecConfig

    @property
    def output_embedding(self) -> torch.Tensor:
        """Rows that score items: 0 (padding, never a class) to num_items; the mask token's
        row is not among them."""
        return self.item_emb.weight[: self.config.num_items + 1]
