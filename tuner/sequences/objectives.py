"""What differs between the sequence models that share the trainer: the model factory and the
batch builder, as one object per model.

An objective builds its model from the training config, cuts the dataset's device arrays
into what a step feeds the model, computes a batch's loss, and gives the histories that
validation and test rank from (the last position's hidden state scores the catalog).

- `NextItem` (SASRec): every position predicts the next item, causally.
- `Cloze` (BERT4Rec): masked items are predicted from both sides; the loss sees only the
  masked positions. To recommend, the mask token follows the history.

Both train on each user's items before the validation item only (`SequenceData.windows`,
split `train`), so validation and test items never enter a training input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from cce_tune.models import BERT4Rec, BERT4RecConfig, SASRec, SASRecConfig
from cce_tune.models.bert4rec_config import masked_capacity, mean_masked
from cce_tune.models.packing import Packed
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig
from cce_tune.tuner.sequences.device_windows import DeviceSequences
from cce_tune.tuner.sequences.flops import candidates, epoch_flops
from cce_tune.tuner.sequences.masking import cloze_mask
from cce_tune.tuner.sequences.token_bound import PACKED_MULTIPLE

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class NextItem:
    """SASRec's objective: position t predicts item t + 1 (the first item predicts nothing)."""

    model_name: ClassVar[str] = "sasrec"

    @staticmethod
    def build_model(config: TrainConfig, num_items: int) -> nn.Module:
        return SASRec(_encoder(SASRecConfig, config, num_items))

    def __init__(self, config: TrainConfig, sequences: DeviceSequences) -> None:
        self.config = config
        windows = sequences.windows("train", config.max_len + 1)
        self.inputs = windows[:, :-1]
        self.targets = torch.where(self.inputs == 0, 0, windows[:, 1:])
        self.lengths = (self.inputs != 0).sum(1)  # real items of each user's input
        # The items before each split's target, whose last position predicts it.
        self.histories = {split: sequences.windows(split, config.max_len)
                          for split in ("valid", "test")}
        self.flops_per_epoch = epoch_flops(
            self.lengths, self.tokens_per_epoch, config.hidden,
            config.num_blocks, causal=True,
            candidate_items=candidates(config.loss, sequences.num_items))

    @property
    def tokens_per_epoch(self) -> int:
        """Positions trained on per epoch: real predicted items."""
        return int((self.targets != 0).sum())

    @property
    def loss_tokens(self) -> torch.Tensor:
        """The loss's tokens each user brings: one a real input item."""
        return self.lengths

    def loss(self, model: nn.Module, loss_fn: Loss, batch: torch.Tensor,
             width: int | None = None) -> torch.Tensor:
        """The loss of the users in `batch`, their windows cut to the last `width` columns
        (all of them by default, the widest step, which the memory model describes); with
        packed batches, their real items packed into `width` tokens."""
        if width is not None and self.config.batches == "packed":
            items, positions, targets, layout = self.packed(batch, width)
            hidden = model(items, positions, layout)
        else:
            width = width or self.config.max_len
            hidden = model(self.inputs[:, -width:][batch])
            targets = self.targets[:, -width:][batch]
        return loss_fn(hidden.reshape(-1, self.config.hidden), model.output_embedding,
                       targets.reshape(-1))

    def packed(self, batch: torch.Tensor, tokens: int,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Packed]:
        """The real items of the users in `batch` laid end to end in `tokens` tokens (more
        than they hold: the rest is one padding sequence, item 0), as (items, positions,
        targets, layout). Built on the device from `tokens` alone, no wait for it, so a
        CUDA graph can capture it."""
        lengths = self.lengths[batch]
        layout = Packed.of(lengths, tokens, self.config.max_len, PACKED_MULTIPLE)
        real = layout.segment < len(batch)  # the last segment is padding
        user = layout.segment.clamp(max=len(batch) - 1)
        # Where each token sits in its user's full window, which also numbers its position.
        column = torch.where(real, self.config.max_len - lengths[user] + layout.offset, 0)
        rows = batch[user]
        items = self.inputs[rows, column].masked_fill_(~real, 0)
        targets = self.targets[rows, column].masked_fill_(~real, 0)
        return items, column, targets, layout


class Cloze:
    """BERT4Rec's objective: a share of the real items is replaced by the mask token and
    predicted; the loss's tokens are the masked positions only."""

    model_name: ClassVar[str] = "bert4rec"

    @staticmethod
    def build_model(config: ClozeConfig, num_items: int) -> nn.Module:
        return BERT4Rec(_encoder(BERT4RecConfig, config, num_items))

    def __init__(self, config: ClozeConfig, sequences: DeviceSequences) -> None:
        self.config = config
        self.mask_token = sequences.num_items + 1
        self.windows = sequences.windows("train", config.max_len)
        self.lengths = (self.windows != 0).sum(1)  # real items of each user's sequence
        # The last max_len - 1 items before each split's target, then the mask token, whose
        # position predicts it.
        self.histories = {split: self._with_mask(sequences.windows(split, config.max_len - 1))
                          for split in ("valid", "test")}
        self.flops_per_epoch = epoch_flops(
            self.lengths, self.loss_tokens.sum().item(), config.hidden, config.num_blocks,
            causal=False, candidate_items=candidates(config.loss, sequences.num_items))

    @property
    def loss_tokens(self) -> torch.Tensor:
        """The loss's tokens each user brings, expected: for l >= 1 real items, max(1,
        Binomial(l, p)) (mean p l + (1 - p)^l), or 1 in the last-item share; 0 for none."""
        lengths = self.lengths.to(torch.float64)
        last = self.config.last_item_prob
        random = mean_masked(lengths.clamp(min=1), self.config.mask_prob)
        return torch.where(lengths > 0, (1 - last) * random + last, 0.0)

    @property
    def tokens_per_epoch(self) -> int:
        """Positions the encoder reads per epoch: real items (about `mask_prob` of them are
        the loss's tokens; one a sequence in the `last_item_prob` share)."""
        return int((self.windows != 0).sum())

    def batch(self, batch: torch.Tensor, width: int | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The users in `batch`, their windows cut to the last `width` columns (all by
        default), as (masked inputs (B, width), flat indices of the masked positions, their
        items), both of the cap's length C: past the masked positions, index 0 with item 0,
        which the loss ignores as padding. A length known on the host, so no step waits for
        the device to count its masks. The cap is that of full sequences of the batch's
        width (`masked_capacity`), at most the full windows' that the memory model counts."""
        width = width or self.config.max_len
        items = self.windows[:, -width:][batch]
        capacity = masked_capacity(len(batch), width, self.config.mask_prob)
        mask = cloze_mask(items, self.config.mask_prob, capacity, self.config.last_item_prob)
        positions = torch.nonzero_static(mask.view(-1), size=capacity, fill_value=-1)[:, 0]
        masked = positions >= 0
        positions = positions.clamp_(min=0)
        targets = items.view(-1)[positions].masked_fill_(~masked, 0)
        return items.masked_fill_(mask, self.mask_token), positions, targets

    def loss(self, model: nn.Module, loss_fn: Loss, batch: torch.Tensor,
             width: int | None = None) -> torch.Tensor:
        inputs, positions, targets = self.batch(batch, width)
        hidden = model(inputs).view(-1, self.config.hidden).index_select(0, positions)
        return loss_fn(hidden, model.output_embedding, targets)

    def _with_mask(self, before: torch.Tensor) -> torch.Tensor:
        mask = torch.full((len(before), 1), self.mask_token, dtype=before.dtype,
                          device=before.device)
        return torch.cat([before, mask], dim=1)


def _encoder(kind: type[SASRecConfig], config: TrainConfig, num_items: int) -> SASRecConfig:
    """The encoder's config (SASRec's fields, or BERT4Rec's, the same) from a run's."""
    return kind(num_items=num_items, max_len=config.max_len, hidden=config.hidden,
                num_blocks=config.num_blocks, num_heads=config.num_heads, dropout=config.dropout,
                sparse_embedding=config.loss.sparse_item_grad)


OBJECTIVES: dict[str, type[NextItem] | type[Cloze]] = {
    objective.model_name: objective for objective in (NextItem, Cloze)}
