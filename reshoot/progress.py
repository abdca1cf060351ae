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


class StepProgress:
    """A progress bar for a loop of steps that reports figures as it goes (e.g. training loss and PSNR).

    Use as a context manager: ``with StepProgress("training", total=3000) as bar: bar.update(1, loss=0.1)``.
    Quiet (``RESHOOT_QUIET=1``) it shows nothing.
    """

    def __init__(self, description: str, total: int, completed: int = 0) -> None:
        self.description, self.total, self.completed = description, total, completed
        self._progress = None
        self._task = None

    def __enter__(self) -> "StepProgress":
        if progress_enabled():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[figures]}"),
                                      console=Console(stderr=True))
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.completed,
                                                 figures="")
        return self

    def set_total(self, total: int) -> None:
        """Change the number of steps (for work whose size is known only once it starts)."""
        self.total = total
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def update(self, advance: int = 1, **figures: float) -> None:
        self.completed += advance
        if self._progress is not None:
            text = "  ".join(f"{name} {value}" if isinstance(value, int) else f"{name} {value:.4g}"
                             for name, value in figures.items())
            self._progress.update(self._task, advance=advance, **({"figures": text} if figures else {}))

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
