"""PyTorch reference losses: plain, readable, and the yardstick for the fused kernels.

All take hidden states (tokens, d), the item embedding matrix (rows, d) whose row 0 is
padding and never a class, and targets (tokens,) with 0 marking padding tokens, which are
ignored. Sampled losses take negatives in one of the layouts of `kernels.negatives`; a negative
equal to the token's target (an accidental hit) or to 0 is masked out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cce_tune.kernels.negatives import per_token

REDUCTIONS = ("mean", "sum", "none")


def _wide(scores: torch.Tensor) -> torch.Tensor:
    """Half-precision scores in float32; float32 and float64 as they are."""
    return scores.float() if scores.element_size() < 4 else scores


def check_reduction(reduction: str) -> str:
    """`reduction` if it is one of REDUCTIONS, else a ValueError that names the valid ones."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
    return reduction


def reduce(loss: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    """Zero padding tokens, then mean over non-padding tokens, sum, or per-token values."""
    check_reduction(reduction)
    loss = loss.masked_fill(targets == 0, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (targets != 0).sum().clamp(min=1)


def ce(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    *,
    reduction: str = "mean",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy over the full catalog (rows 1..V): materialises tokens x V logits."""
    logits = _wide(hidden @ item_emb[1:].T) / temperature
    positive = logits.gather(1, (targets - 1).clamp(min=0)[:, None])[:, 0]
    loss = torch.logsumexp(logits, dim=1) - positive
    return reduce(loss, targets, reduction)


def _rows(item_emb: torch.Tensor, ids: torch.Tensor, sparse: bool = False) -> torch.Tensor:
    """`item_emb[ids]` as a lookup: its backward sums the rows' gradient into the table
    (into a sparse tensor of those rows with `sparse`) without copying it first."""
    return F.embedding(ids, item_emb, sparse=sparse)


def _dots(hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(tokens, K) dot products of each token with its own K rows (tokens, K, d), as one
    batched product: accumulated in float32 whatever the inputs, and the rows' gradient
    comes back contiguous, which the lookup's backward reads in place (an einsum's came
    back transposed, and was copied)."""
    return torch.bmm(rows, hidden[:, :, None])[:, :, 0]


def _negative_scores(
    hidden: torch.Tensor, item_emb: torch.Tensor, negatives: torch.Tensor, tile_size: int | None,
    sparse: bool = False,
) -> torch.Tensor:
    """(tokens, N) scores of each token against its negatives."""
    rows = _rows(item_emb, negatives, sparse)
    if negatives.dim() == 1:
        return hidden @ rows.T
    if tile_size is None:  # per position: a (tokens, N, d) gather
        return _dots(hidden, rows)
    tokens, dim = hidden.shape
    tiles = negatives.shape[0]
    padded = F.pad(hidden, (0, 0, 0, tiles * tile_size - tokens)).view(tiles, tile_size, dim)
    scores = torch.bmm(padded, rows.transpose(1, 2))
    return scores.reshape(tiles * tile_size, -1)[:tokens]


def ce_minus(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    tile_size: int | None = None,
    reduction: str = "mean",
    temperature: float = 1.0,
    log_q: torch.Tensor | None = None,
    sampled_softmax: bool = False,
    sparse_item_grad: bool = False,
) -> torch.Tensor:
    """Cross-entropy over the positive and N sampled negatives (softmax over 1 + N).

    `tile_size` marks `negatives` as one row per tile of tokens. `log_q` (rows,) holds each
    item's log sampling probability, subtracted from every score so that popularity-sampled
    negatives are unbiased. `sampled_softmax` adds log((V - 1) / kept negatives) to negative
    scores, so that CE with uniform negatives estimates the full-catalog CE.
    `sparse_item_grad` gathers rows as `nn.Embedding(sparse=True)` does: `item_emb`'s
    gradient is a sparse tensor of the rows the batch touches.
    """
    tokens = hidden.shape[0]
    neg_ids = per_token(negatives, tokens, tile_size).expand(tokens, -1)
    positive = _wide(_dots(hidden, _rows(item_emb, targets, sparse_item_grad)[:, None])[:, 0])
    positive = positive / temperature
    negative = _wide(_negative_scores(hidden, item_emb, negatives, tile_size,
                                      sparse_item_grad)) / temperature
    if log_q is not None:
        positive = positive - log_q[targets]
        negative = negative - log_q[neg_ids]
    masked = (neg_ids == targets[:, None]) | (neg_ids == 0)
    if sampled_softmax:
        kept = (~masked).sum(1, keepdim=True).clamp(min=1).to(negative.dtype)
        negative = negative + torch.log((item_emb.shape[0] - 2) / kept)
    negative = negative.masked_fill(masked, -math.inf)
    lse = torch.logsumexp(torch.cat([positive[:, None], negative], dim=1), dim=1)
    return reduce(lse - positive, targets, reduction)


def _sigmoid_terms(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    tile_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log sigma(positive) (tokens,) and the sum of log sigma(-negative) over kept negatives."""
    tokens = hidden.shape[0]
    neg_ids = per_token(negatives, tokens, tile_size).expand(tokens, -1)
    positive = _wide(_dots(hidden, _rows(item_emb, targets)[:, None])[:, 0])
    negative = _wide(_negative_scores(hidden, item_emb, negatives, tile_size))
    kept = (neg_ids != targets[:, None]) & (neg_ids != 0)
    return F.logsigmoid(positive), (F.logsigmoid(-negative) * kept).sum(1)


def bce(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary cross-entropy with one negative per token (the original SASRec loss)."""
    if negatives.dim() == 1:
        negatives = negatives[:, None]
    if negatives.shape != (hidden.shape[0], 1):
        raise ValueError(f"bce takes one negative per token, got shape {tuple(negatives.shape)}")
    log_pos, log_neg = _sigmoid_terms(hidden, item_emb, targets, negatives, None)
    return reduce(-log_pos - log_neg, targets, reduction)


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """gSASRec's exponent: beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = N / (V - 1)."""
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def gbce(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    tile_size: int | None = None,
    t: float = 0.75,
    reduction: str = "mean",
) -> torch.Tensor:
    """Generalised BCE of gSASRec (Petrov & Macdonald, 2023): the positive's probability is
    raised to beta, which counters the overconfidence that negative sampling causes.

    Per token: -beta log sigma(s+) - sum over negatives of log sigma(-s-).
    """
    beta = gbce_beta(negatives.shape[-1], item_emb.shape[0] - 1, t)
    log_pos, log_neg = _sigmoid_terms(hidden, item_emb, targets, negatives, tile_size)
    return reduce(-beta * log_pos - log_neg, targets, reduction)
