"""The CUDA caching allocator's setting for every process that trains or measures.

With its default setting the allocator keeps freed blocks for reuse at their size: a step
whose peak tensors change size from phase to phase (the per-position reference's gathered
rows, then their gradient) can hold tens of GB reserved but unallocated, and a trial capped
at its budget runs out of memory where the model's allocated peak fits. Expandable segments
grow one mapping per stream instead, so reserved memory follows allocated memory; issue 20
measured both (`verify-memory`, `benchmarks/results/memory-*.md`).
"""

from __future__ import annotations

import os

ALLOC_CONF = "PYTORCH_CUDA_ALLOC_CONF"
EXPANDABLE = "expandable_segments:True"


def use_expandable_segments() -> None:
    """Expandable segments unless the user set the allocator up: call before the process
    allocates on the GPU (PyTorch reads the variable at its first CUDA allocation)."""
    os.environ.setdefault(ALLOC_CONF, EXPANDABLE)


def allocator_setting() -> str:
    """The setting in force, as a person would write it."""
    return f"{ALLOC_CONF}={os.environ.get(ALLOC_CONF, '')}"
