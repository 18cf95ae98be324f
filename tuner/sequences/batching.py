"""Which users train together, and how wide their batch is: padding should not cost compute.

MovieLens users have a median of about 68 ratings, so at max_len 512 a random batch of 256
is about 77 % padding, and every layer and the attention paid for it. Windows are
right-aligned (left-padded), so a batch's real items sit in its last columns: a batch is cut
to its longest sequence (`width`), and, since the models count positions from the right end
(`models.sasrec`), the cut batch gives the same outputs as the full window.

Cutting alone saves little while a batch of random users almost always holds one long
sequence, so by default users are grouped by length the usual way (fairseq's and Hugging
Face's `group_by_length`): shuffled, cut into groups of `GROUP` batches, sorted by width
(length rounded up to WIDTH_MULTIPLE) within each group, the users of one width in random
order, split into batches, and the batches shuffled. Every epoch draws a new grouping.
Widths are computed on the host from lengths known at setup, so no step waits for the GPU
to learn its shape. Users with nothing to train on are left out.

A batch's loss is a mean over its tokens, and a batch of short sequences holds far fewer
tokens than one of long sequences: left alone, grouping would weigh a short user's item up
to tens of times more than a long user's (on the H200 it cost 0.5-7 % of validation NDCG@10
at ml-1m shape, 3 of 3 seeds). Each batch's loss is therefore scaled by its loss tokens
(expected, for BERT4Rec's random masks) over the epoch's mean per batch (`Batch.weight`),
so that every token of an epoch weighs the same, as it would in one batch of them all.

Packed (`--batches packed`, SASRec), a batch keeps its random users and lays their real
items end to end (`models.packing`): no padding is computed and no grouping changes which
users share a step. Its width is then its tokens, rounded up (`packed_tokens`) so that an
epoch's batches come in a few shapes, as CUDA graphs want. A batch whose real items pass the
cap the memory model sizes the step by (`token_bound.token_cap`) is split into consecutive
parts within it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cce_tune.tuner.sequences.config import check_batches
from cce_tune.tuner.sequences.token_bound import packed_tokens

GROUP = 64  # batches per group sorted by length
# Widths are rounded up to this: the memory-efficient attention wants 16-aligned bias rows,
# and it bounds the distinct shapes an epoch compiles and caches for.
WIDTH_MULTIPLE = 16


@dataclass(frozen=True)
class Batch:
    users: torch.Tensor  # user ids, on the training device
    # The last columns of the windows that hold every real item of `users`; packed, the
    # tokens their real items are laid out in.
    width: int
    weight: float = 1.0  # the loss tokens of `users` over the epoch's mean per batch
    host_users: np.ndarray | None = None  # the same ids on the host
    packed: bool = False

    @property
    def positions(self) -> int:
        """The positions a step computes, padding included."""
        return self.width if self.packed else len(self.users) * self.width


def epoch_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                  order_by: str, max_width: int, device: torch.device,
                  tokens: np.ndarray | None = None, cap: int | None = None) -> list[Batch]:
    """One epoch's batches over the users with something to train on, in training order.

    `lengths[u]`: real items in user u's training input; `max_width`: the windows' width;
    `tokens[u]`: the loss's tokens user u brings, expected (`lengths` by default), which
    the batches' weights count. `order_by` is one of `config.ORDERS`: "length" groups users of
    similar length; "random" and "packed" take them in random order, each batch cut (and
    weighted), or packed. Packed, a batch of more than `cap` real items (`token_cap`: the
    memory model sizes the step by it) is split into consecutive parts within it.
    """
    check_batches(order_by, auto=False)  # a config's AUTO is made concrete before
    tokens = lengths if tokens is None else tokens
    order = rng.permutation(np.flatnonzero(lengths > 0))
    starts = range(0, len(order), batch_size)
    if order_by == "length":
        # Sorted by width, not by exact length: users of one width stay in the random
        # order the permutation gave them, so a small dataset (one group) still draws new
        # batches every epoch; the widths, hence the work, are the same.
        widths = -(-lengths // WIDTH_MULTIPLE)
        group = GROUP * batch_size
        for first in range(0, len(order), group):
            chunk = order[first:first + group]
            order[first:first + group] = chunk[np.argsort(-widths[chunk], kind="stable")]
        starts = rng.permutation(np.arange(0, len(order), batch_size))
    on_device = torch.as_tensor(order, device=device)  # one copy an epoch
    mean_tokens = max(tokens[order].sum(), 1e-9) / max(len(starts), 1)
    batches = []
    packed = order_by == "packed"
    for start in starts:
        end = min(start + batch_size, len(order))
        for first, last in (_within(lengths[order[start:end]], cap) if packed and cap
                            else [(0, end - start)]):
            users = order[start + first:start + last]
            width = (packed_tokens(int(lengths[users].sum()), len(users), max_width) if packed
                     else batch_width(lengths[users], max_width))
            batches.append(Batch(on_device[start + first:start + last], width,
                                 float(tokens[users].sum() / mean_tokens), users, packed))
    return batches


def _within(lengths: np.ndarray, cap: int) -> list[tuple[int, int]]:
    """(first, last) bounds of consecutive parts of a batch of these lengths, each of at most
    `cap` items (a single user is never more): the whole batch unless it passes the cap."""
    if lengths.sum() <= cap:
        return [(0, len(lengths))]
    parts, first, held = [], 0, 0
    for index, length in enumerate(lengths.tolist()):
        if held + length > cap and index > first:
            parts.append((first, index))
            first, held = index, 0
        held += length
    return [*parts, (first, len(lengths))]


def batch_width(lengths: np.ndarray, max_width: int) -> int:
    """The columns that hold every real item of sequences this long, rounded up."""
    longest = int(lengths.max(initial=1))
    return min(max_width, -(-max(longest, 1) // WIDTH_MULTIPLE) * WIDTH_MULTIPLE)
