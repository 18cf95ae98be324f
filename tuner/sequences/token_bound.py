"""How many tokens a packed batch may hold: the bound that the memory model sizes a packed
step by and that the batcher enforces. Importable without torch.

A packed batch of B random users holds the sum of their real lengths, which varies from
batch to batch; the step's memory follows the largest. Its full windows (B x max_len) bound
it but waste the point of packing (MovieLens users are mostly far shorter than max_len). The
cap here is Bernstein's inequality for a sum of B lengths drawn without replacement, each in
[0, max_len]: past mean + t, with t solved from exp(-t^2 / (2 (B var + max_len t / 3))) =
EXCEED, a batch is improbable (and sampling without replacement only narrows the sum, as
Hoeffding showed). A batch that still exceeds it is split into consecutive parts within it by
the batcher (`tuner.sequences.batching`), so the cap holds for every batch, not only almost
every one.
"""

from __future__ import annotations

import math

import numpy as np

# A packed batch's tokens are rounded up to this, with one token more at least: the padding
# is a sequence of its own, never empty.
PACKED_MULTIPLE = 1024
# The chance that a batch's real tokens pass the cap, by Bernstein: about one split per
# 10,000 batches at most (a 50-epoch MovieLens-20M run at batch 256 takes 27,000).
EXCEED = 1e-4


def token_cap(lengths: np.ndarray, users: np.ndarray, batch_size: int, max_len: int) -> int:
    """The most real tokens a packed batch of `batch_size` users may hold, when `users[i]`
    users have `lengths[i]` real items each (after the cut to `max_len`; users with none are
    never batched). Never less than one full window, so any single user fits."""
    keep = (users > 0) & (lengths > 0)
    lengths, users = lengths[keep].astype(np.float64), users[keep].astype(np.float64)
    total = users.sum()
    if total == 0:
        return max_len
    batch = min(batch_size, int(total))
    mean = float((lengths * users).sum() / total)
    variance = float((users * (lengths - mean) ** 2).sum() / total)
    level = math.log(1 / EXCEED)
    linear = max_len * level / 3
    spread = linear + math.sqrt(linear**2 + 2 * batch * variance * level)
    # The batch's longest users all together: what no batch can pass.
    order = np.argsort(-lengths)
    longest = np.minimum(np.cumsum(users[order]), batch)
    largest = float(np.diff(longest, prepend=0) @ lengths[order])
    return max(max_len, min(math.ceil(batch * mean + spread), int(largest)))


def packed_tokens(real: int, users: int, max_width: int) -> int:
    """The tokens `users` sequences of `real` items in all are packed into: rounded up to
    PACKED_MULTIPLE past one padding token, but never more than one past their full windows:
    a packed batch computes at most one position more than the widest padded one."""
    rounded = (real // PACKED_MULTIPLE + 1) * PACKED_MULTIPLE
    return min(rounded, users * max_width + 1)
