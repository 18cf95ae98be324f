"""`SequenceData.windows` built on the device from the CSR arrays, in chunks of users.

Tuning builds three windows per trial (training, validation, test histories); for 138k users
and 200 positions numpy took 0.8 s each, most of the time between one trial's end and the
next one's first step. On a GPU the gather takes milliseconds; chunks keep its temporaries
(about 21 bytes a position) under 64 MB whatever the dataset. The arrays cross to the device
once: a copy from pageable memory waits for the GPU, which trials sharing it make slow.
"""

from __future__ import annotations

import torch

from cce_tune.tuner.data.sequences import HOLDOUT, SequenceData

CHUNK_POSITIONS = 3 * 2**20


class DeviceSequences:
    """A dataset's items and offsets on `device`, copied once, for cutting windows there."""

    def __init__(self, data: SequenceData, device: torch.device) -> None:
        # A copy even on the CPU: a trial's arrays come read-only from Ray's object store.
        self.items = torch.tensor(data.items, device=device)
        self.offsets = torch.tensor(data.offsets, device=device)
        self.num_users, self.num_items = data.num_users, data.num_items

    def windows(self, split: str, length: int) -> torch.Tensor:
        """Equal to `torch.as_tensor(data.windows(split, length))`, on the device."""
        all_ends = self.offsets[1:] - HOLDOUT[split]
        all_starts = torch.maximum(all_ends - length, self.offsets[:-1])
        out = torch.empty((self.num_users, length), dtype=torch.int64, device=self.items.device)
        columns = torch.arange(length, device=self.items.device)
        users = max(1, CHUNK_POSITIONS // max(length, 1))
        for first in range(0, self.num_users, users):
            ends, starts = all_ends[first:first + users], all_starts[first:first + users]
            source = (ends - length)[:, None] + columns
            window = self.items[source.clamp(min=0)].long()
            out[first:first + users] = window.masked_fill_(source < starts[:, None], 0)
        return out
