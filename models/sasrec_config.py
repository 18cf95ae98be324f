"""SASRec's config and the layout choices its memory model reads, importable without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SASRecConfig:
    num_items: int  # item ids 1..num_items; 0 is padding
    max_len: int = 50
    hidden: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    # The item table's gradient from the input lookup as a sparse tensor (nn.Embedding's
    # sparse=True), to meet a loss that returns its own sparse: no dense (rows, d) gradient.
    sparse_embedding: bool = False

    def __post_init__(self) -> None:
        if self.hidden % self.num_heads:
            raise ValueError(
                f"hidden size {self.hidden} is not divisible by {self.num_heads} heads"
            )


def bias_columns(length: int) -> int:
    """Row length of the attention bias's storage: the memory-efficient attention kernel
    wants every row 16-element aligned and copies a bias that is not, in every block."""
    return -(-length // 16) * 16
