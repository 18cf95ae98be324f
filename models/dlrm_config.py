"""DLRM's config (Naumov et al., 2019), in the architecture strings of the reference code,
importable without torch (the memory model and the command line read it)."""

from __future__ import annotations

from dataclasses import dataclass

INTERACTIONS = ("dot", "cat")


def parse_arch(text: str, flag: str) -> tuple[int, ...]:
    """`13-512-256-64` -> (13, 512, 256, 64); the error names the flag and the bad part."""
    parts = text.split("-")
    try:
        sizes = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: write layer sizes joined by '-', "
                         "e.g. 13-512-256-64") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"{flag} {text!r}: at least two sizes, each at least 1")
    return sizes


@dataclass(frozen=True)
class DLRMConfig:
    table_sizes: tuple[int, ...]  # rows of each categorical feature's embedding table
    bottom: tuple[int, ...] = (13, 512, 256, 64)  # dense features -> embedding dimension
    top: tuple[int, ...] = (512, 256, 1)  # hidden sizes of the top MLP, ending in 1 logit
    embedding_dim: int = 64
    interaction: str = "dot"
    sparse: bool = True  # tables get sparse gradients (row-wise Adagrad or SGD)

    def __post_init__(self) -> None:
        if not self.table_sizes or min(self.table_sizes) < 1:
            raise ValueError(f"every table needs at least one row, got {self.table_sizes}")
        if self.bottom[-1] != self.embedding_dim:
            raise ValueError(
                f"--arch-mlp-bot ends in {self.bottom[-1]} but --arch-sparse-feature-size is "
                f"{self.embedding_dim}: the bottom MLP must output the embedding dimension")
        if self.top[-1] != 1:
            raise ValueError(f"--arch-mlp-top must end in 1 (one logit), not {self.top[-1]}")
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"interaction {self.interaction!r}: choose one of "
                             f"{', '.join(INTERACTIONS)}")

    @property
    def dense_features(self) -> int:
        return self.bottom[0]

    @property
    def num_vectors(self) -> int:
        """Vectors that interact: the bottom MLP's output and one per table."""
        return len(self.table_sizes) + 1

    @property
    def interaction_dim(self) -> int:
        """Width of the top MLP's input."""
        n, d = self.num_vectors, self.embedding_dim
        if self.interaction == "dot":  # the dense vector, then each pair's dot product once
            return d + n * (n - 1) // 2
        return n * d
