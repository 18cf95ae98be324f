"""Model FLOPs of a training epoch, by formula: divided by the epoch's training time, the
throughput a step achieves against the GPU's matrix peak (what the step is measured by).

Forward multiply-adds, on real tokens only (padding is not counted):

- each block, per real position: 6 d^2 in its linear layers (the query, key, value and
  output projections, 4 d^2, and the feed-forward d -> d -> d, 2 d^2), and 2 d per key the
  position attends to (its scores, then the weighted values). Keys are real positions: under
  SASRec's causal mask position i of a sequence of l real items sees i of them (l (l + 1) / 2
  a sequence), under BERT4Rec's bidirectional attention all l (l^2 a sequence);
- the loss, per token it scores: d per candidate item, the positive and the N negatives (the
  whole catalog for full cross-entropy).

FLOPs are 2 x multiply-adds, and a training step 3 x its forward (the backward costs twice
the forward). Embeddings, norms, dropout, softmaxes and the optimizer are O(d) a token and
left out.
"""

from __future__ import annotations

import torch

from cce_tune.kernels import LossConfig

FULL_CATALOG_LOSSES = ("ce", "cce")


def candidates(loss: LossConfig, num_items: int) -> int:
    """Items a loss token is scored against: the catalog, or the positive and N negatives."""
    return num_items if loss.name in FULL_CATALOG_LOSSES else loss.num_negatives + 1


def epoch_flops(lengths: torch.Tensor, loss_tokens: float, hidden: int, blocks: int,
                causal: bool, candidate_items: int) -> float:
    """Training FLOPs of one epoch over sequences of `lengths` real items each, the loss
    scoring `loss_tokens` tokens against `candidate_items` items each."""
    lengths = lengths.to(torch.float64)
    keys = (lengths * (lengths + 1) / 2 if causal else lengths**2).sum().item()
    per_block = 6 * hidden**2 * lengths.sum().item() + 2 * hidden * keys
    forward = blocks * per_block + loss_tokens * hidden * candidate_items
    return 2 * 3 * forward
