"""What a user sees while a dataset is built for the first time (generated, downloaded,
prepared): a bar on stderr with the share done, the size where there is one, and the time
so far. A cached dataset loads without one.

    >>> with building("generating synthetic-ml-20m") as advance:
    ...     data = generate(spec, seed, progress=advance)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO


def _progress(*columns):
    from rich.console import Console
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), *columns, TimeElapsedColumn(),
                    console=Console(stderr=True))


@contextmanager
def building(what: str) -> Iterator[Callable[[float], None]]:
    """A bar for `what`; the caller advances it with the share done (0 to 1), if it can
    tell, and it is full when the block ends."""
    from rich.progress import BarColumn, TaskProgressColumn

    with _progress(BarColumn(), TaskProgressColumn()) as bar:
        task = bar.add_task(what, total=1.0)
        yield lambda share: bar.update(task, completed=share)
        bar.update(task, completed=1.0)


def copy_with_progress(source: BinaryIO, target: BinaryIO, total: int | None,
                       what: str) -> None:
    """Copy a download to `target` with its bytes, total size (when the server says it) and
    speed on a bar."""
    from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn

    with _progress(BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task(what, total=total)
        while chunk := source.read(1 << 20):
            target.write(chunk)
            bar.update(task, advance=len(chunk))
