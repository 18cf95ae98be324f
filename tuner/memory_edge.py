"""The memory budget's edge in a search space: the largest configurations that still fit.

Quality grows with batch size, negatives and sequence length together (what scaling them
buys is the finding cce-tune exists for), and each of them costs memory, so the best
configuration under a budget tends to sit on the budget's edge. A generic sampler finds that
edge by trial and error, paying for every trial; the memory model knows it in milliseconds.
Here: the grid of the space's discrete knobs, each point estimated, the edge (the feasible
points that no other feasible point with the same categories matches or exceeds in every
ordered knob), and a few points spread along it for the search to start from.
"""

from __future__ import annotations

import math
from typing import Any

from cce_tune.search_spaces import SearchSpace
from cce_tune.tuner.families.base import Target

# A grid larger than this is not enumerated (about 0.1 ms per estimate): the search then
# starts without edge points, as a plain sampler does.
MAX_GRID = 20_000


def _ordered(space: SearchSpace) -> list:
    """The discrete numeric parameters: those whose larger values may cost more memory."""
    return [p for p in space.params if p.ordered]


def estimated_grid(space: SearchSpace, target: Target) -> list[tuple[dict[str, Any], float]]:
    """Every grid point the model accepts, with its estimated total bytes (empty for a grid
    over MAX_GRID points)."""
    grid = space.grid()
    if len(grid) > MAX_GRID:
        return []
    out = []
    for params in grid:
        try:
            out.append((params, target.estimate(target.config(params)).total))
        except ValueError:  # a combination the model refuses
            continue
    return out


def edge(space: SearchSpace, target: Target, limit: float,
         grid: list[tuple[dict[str, Any], float]] | None = None) -> list[dict[str, Any]]:
    """The grid points under `limit` bytes that no other such point dominates: with the
    same categories, at least as large in every ordered knob and estimated larger (a knob
    the memory does not grow with, a numeric `lr` among choices, dominates nothing).
    `grid`: the estimated grid, if already computed.

    A skyline sweep, largest estimate first: a point dominated by anything is dominated by
    a point already kept, so each is checked against the edge alone."""
    grid = estimated_grid(space, target) if grid is None else grid
    ordered = [p.name for p in _ordered(space)]
    categories = [p.name for p in space.params if p.name not in ordered]
    kept: list[tuple[dict[str, Any], float]] = []
    for point, total in sorted((g for g in grid if g[1] <= limit), key=lambda g: -g[1]):
        if not any(other_total > total and all(other[c] == point[c] for c in categories)
                   and all(other[n] >= point[n] for n in ordered)
                   for other, other_total in kept):
            kept.append((point, total))
    order = {id(point): i for i, (point, _) in enumerate(grid)}
    return [point for point, _ in sorted(kept, key=lambda k: order[id(k[0])])]


def spread(points: list[dict[str, Any]], space: SearchSpace, count: int) -> list[dict[str, Any]]:
    """`count` of `points` far apart: the largest first, then each time the point farthest
    from those chosen (each ordered knob by its value's rank in [0, 1], each category 1)."""
    ordered = _ordered(space)
    categories = [p.name for p in space.params if p not in ordered]

    def coordinates(point: dict[str, Any]) -> list[float]:
        out = []
        for param in ordered:
            values = sorted(param.grid())
            out.append(values.index(point[param.name]) / max(len(values) - 1, 1))
        return out

    coords = [coordinates(point) for point in points]
    chosen: list[int] = []
    if points:
        chosen.append(max(range(len(points)), key=lambda i: sum(coords[i])))
    while len(chosen) < min(count, len(points)):
        def gap(i: int) -> float:
            return min(math.dist(coords[i], coords[j])
                       + sum(points[i][c] != points[j][c] for c in categories)
                       for j in chosen)
        chosen.append(max((i for i in range(len(points)) if i not in chosen), key=gap))
    return [points[i] for i in chosen]


def edge_seeds(space: SearchSpace, target: Target, limit: float, count: int,
               grid: list[tuple[dict[str, Any], float]] | None = None) -> list[dict[str, Any]]:
    """`count` configurations on the budget's edge, spread along it, to evaluate first; none
    where the budget does not bind (every grid point fits): there is no edge then, only the
    grid's largest corner, the slowest configurations (replaying a 16-trial CPU run, starting
    there cut the hypervolume after 8 trials from 0.96 to 0.08)."""
    if not count:
        return []
    grid = estimated_grid(space, target) if grid is None else grid
    if all(total <= limit for _, total in grid):
        return []
    return spread(edge(space, target, limit, grid), space, count)
