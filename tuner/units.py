"""One unit for memory on screen and in files: decimal gigabytes, as `--gpu-mem 40GB` reads
and as GPUs are sold (an H200's 141 GB). Budgets may still be given in GiB: they are parsed
to bytes where they enter."""

from __future__ import annotations

GB = 10**9
UNITS = (("TB", 10**12), ("GB", GB), ("MB", 10**6), ("kB", 10**3))


def format_bytes(size: float) -> str:
    """`12.35 GB`, `640.00 MB`, `512 B`: two decimals in the largest unit that fits."""
    for unit, scale in UNITS:
        if abs(size) >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{int(size)} B"
