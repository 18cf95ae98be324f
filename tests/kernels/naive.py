"""Straightforward float64 per-token loops: the yardstick for every loss implementation."""

from __future__ import annotations

import math

import torch


def rows_per_token(negatives: torch.Tensor, tokens: int, tile_size: int | None) -> list[list[int]]:
    if negatives.dim() == 1:
        return [negatives.tolist()] * tokens
    if tile_size is not None:
        return [negatives[t // tile_size].tolist() for t in range(tokens)]
    return negatives.tolist()


def finish(losses: list[torch.Tensor], targets: torch.Tensor, reduction: str) -> torch.Tensor:
    stacked = torch.stack(losses)
    if reduction == "none":
        return stacked
    total = stacked.sum()
    return total if reduction == "sum" else total / max(1, int((targets != 0).sum()))


def ce_minus(hidden, emb, targets, negatives, *, tile_size=None, reduction="mean",
             temperature=1.0, log_q=None, sampled_softmax=False, full_catalog=False):
    hidden, emb = hidden.double(), emb.double()
    tokens, num_items = len(targets), emb.shape[0] - 1
    rows = ([list(range(1, num_items + 1))] * tokens if full_catalog
            else rows_per_token(negatives, tokens, tile_size))
    zero = hidden.sum() * 0
    losses = []
    for t in range(tokens):
        target = int(targets[t])
        if target == 0:
            losses.append(zero)
            continue
        kept = [n for n in rows[t] if n not in (0, target)]
        scores = hidden[t] @ emb[[target, *kept]].T / temperature
        if log_q is not None:
            scores = scores - log_q[[target, *kept]].double()
        shift = math.log((num_items - 1) / max(1, len(kept))) if sampled_softmax else 0.0
        positive = scores[0]
        terms = [positive] + [score + shift for score in scores[1:]]
        losses.append(torch.logsumexp(torch.stack(terms), 0) - positive)
    return finish(losses, targets, reduction)


def gbce(hidden, emb, targets, negatives, *, beta=1.0, reduction="mean"):
    """beta = 1 with one negative per token is plain BCE."""
    hidden, emb = hidden.double(), emb.double()
    rows = rows_per_token(negatives, len(targets), None)
    zero = hidden.sum() * 0
    losses = []
    for t, target in enumerate(targets.tolist()):
        if target == 0:
            losses.append(zero)
            continue
        loss = -beta * torch.log(torch.sigmoid(hidden[t] @ emb[target]))
        for n in rows[t]:
            if n not in (0, target):
                loss = loss - torch.log(1 - torch.sigmoid(hidden[t] @ emb[n]))
        losses.append(loss)
    return finish(losses, targets, reduction)
