"""Progress display for long steps (rich), one helper so every stage looks the same."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Progress bars show unless ``RESHOOT_QUIET=1``."""
    return os.environ.get("RESHOOT_QUIET", "") not in ("1", "true", "yes")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a rich progress bar (elapsed and remaining time) on stderr."""
    if not progress_enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield from progress.track(items, total=total, description=description)
