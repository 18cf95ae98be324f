"""Compile the fused kernels' variants a search space can launch, once, before the trials.

Triton compiles a kernel per variant (hidden size, dtype, negative mode, dense or compact
item-gradient accumulator) in each process on first use, 1.5-9 s on an H100, which was most
of the time from one trial's end to the next one's first step. Compiled here in the driver,
the variants sit in Triton's disk cache, and trials on this machine load them instead.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from cce_tune.kernels.config import FUSED_LOSSES
from cce_tune.kernels.losses import make_loss
from cce_tune.search_spaces import SearchSpace
from cce_tune.tuner.sequences.config import TrainConfig

Configure = Callable[[dict[str, Any]], TrainConfig]  # a point's params -> its config

VARIANT_KNOBS = ("loss", "hidden", "bf16", "negative_mode", "in_kernel_negatives")


def warm_kernels(space: SearchSpace, configure: Configure, num_items: int) -> int:
    """Run each fused-loss variant of `space` (its points' configs by `configure`) forward
    and backward on small inputs shaped like the trials' (the catalog's real size); returns
    how many variants ran."""
    if not torch.cuda.is_available():
        return 0
    choices = {p.name: p.values for p in space.params
               if p.kind == "choices" and p.name in VARIANT_KNOBS}
    ran = 0
    for values in itertools.product(*choices.values()):
        try:
            config = configure({**space.fixed, **dict(zip(choices, values, strict=True))})
        except ValueError:
            continue
        if config.loss.name not in FUSED_LOSSES:
            continue
        for tokens in (32, 16 * (num_items // 16 + 1)):  # compact, then dense accumulator
            _run(replace(config.loss, num_negatives=32), config, tokens, num_items)
            ran += 1
    return ran


def _run(loss_config, config: TrainConfig, tokens: int, num_items: int) -> None:
    dtype = torch.bfloat16 if config.bf16 else torch.float32
    hidden = torch.randn(tokens, config.hidden, device="cuda", dtype=dtype, requires_grad=True)
    table = torch.randn(num_items + 1, config.hidden, device="cuda", dtype=dtype,
                        requires_grad=True)
    targets = torch.randint(1, num_items + 1, (tokens,), device="cuda")
    make_loss(loss_config, num_items)(hidden, table, targets).backward()


def warm_and_say(space: SearchSpace, configure: Configure, num_items: int) -> None:
    started = time.perf_counter()
    ran = warm_kernels(space, configure, num_items)
    if ran:
        print(f"compiled {ran} fused-kernel variants in {time.perf_counter() - started:.1f} s")
