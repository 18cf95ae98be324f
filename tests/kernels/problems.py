"""Fresh random loss problems with padding, accidental hits and padding negatives planted."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cce_tune.kernels.negatives import negatives_shape


@dataclass
class Problem:
    hidden: torch.Tensor
    emb: torch.Tensor
    targets: torch.Tensor
    negatives: torch.Tensor
    tile_size: int | None
    upstream: torch.Tensor  # (tokens,) d(result)/d(loss): weights per token, [0] for a scalar

    @property
    def num_items(self) -> int:
        return self.emb.shape[0] - 1


def make_problem(mode: str, *, tokens=13, num_items=20, dim=8, num_negatives=6, tile_size=4,
                 dtype=torch.float64, seed=None, device="cpu") -> Problem:
    generator = torch.Generator().manual_seed(seed if seed is not None else
                                              int(torch.randint(0, 2**31, ())))
    hidden = torch.randn(tokens, dim, generator=generator, dtype=torch.float64)
    emb = torch.randn(num_items + 1, dim, generator=generator, dtype=torch.float64)
    targets = torch.randint(1, num_items + 1, (tokens,), generator=generator)
    targets[::5] = 0  # padding tokens
    shape = negatives_shape(mode, tokens, num_negatives, tile_size)
    negatives = torch.randint(1, num_items + 1, shape, generator=generator)
    flat = negatives.view(-1, num_negatives)
    flat[0, 0] = 0  # a padding id among the negatives
    if mode == "per_position":
        negatives[1, -1] = targets[1] = 7  # accidental hits
        negatives[3, :2] = targets[3]
    elif mode == "tile":
        negatives[0, 3] = targets[1]
        negatives[-1, 1] = targets[-1]
    else:
        negatives[2] = targets[1]
    upstream = 0.5 + torch.rand(tokens, generator=generator, dtype=torch.float64)
    return Problem(hidden.to(device, dtype), emb.to(device, dtype), targets.to(device),
                   negatives.to(device), tile_size if mode == "tile" else None,
                   upstream.to(device))


def grads(loss_fn, problem: Problem, **kwargs):
    """Loss and d/d(hidden), d/d(emb) of `loss_fn` on fresh leaf copies, under the problem's
    upstream gradient (not ones, so that a wrong scale or stride shows)."""
    hidden = problem.hidden.detach().clone().requires_grad_()
    emb = problem.emb.detach().clone().requires_grad_()
    loss = loss_fn(hidden, emb, problem.targets, problem.negatives, **kwargs)
    upstream = problem.upstream if loss.dim() else problem.upstream[0]
    (loss * upstream.to(loss.dtype)).sum().backward()
    return loss.detach(), hidden.grad, emb.grad
