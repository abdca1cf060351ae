"""Progress of long steps, one helper so every stage reports the same way, on stderr.

How it shows is decided when each step starts (:func:`progress_mode`):

- ``rich``: bars redrawn in place; the choice when stderr is a terminal (or a Jupyter notebook).
- ``plain``: lines a render manager's regular expression can follow (:data:`PLAIN_LINE`); the choice when stderr
  is a file or a pipe. A step prints its first line, then at most one every ``RESHOOT_PROGRESS_INTERVAL`` seconds
  (default 10) as it advances, then its last line.
- ``json``: the same updates as one JSON object a line (``event`` start, progress or end), for tools.
- ``off``: nothing.

``RESHOOT_PROGRESS=auto|rich|plain|json|off`` chooses (``reshoot --progress MODE`` and ``--json-progress`` set
it); unset or ``auto``, ``RESHOOT_QUIET=1`` means ``off``. A plain line, with the stage when a step runs inside
one (:func:`progress_stage`; :meth:`reshoot.workspace.Workspace.run_stage` names each stage)::

    [reshoot reconstruct] training 120/2400 5.0% elapsed 0:01:02 eta 0:19:40 loss=0.02109 psnr=31.45 gaussians=5210
    [reshoot] rendering set survey 12/12 100.0% elapsed 0:00:01 eta 0:00:00

An unknown number is ``?`` (the total of an endless iterator, the eta before the first step is done).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

MODES = ("auto", "rich", "plain", "json", "off")
DEFAULT_INTERVAL_S = 10.0
"""Seconds between two plain or JSON lines of a step (``RESHOOT_PROGRESS_INTERVAL`` changes it)."""
PLAIN_LINE = re.compile(
    r"^\[reshoot(?: (?P<stage>[\w-]+))?\] (?P<step>.+?) (?P<done>\d+)/(?P<total>\d+|\?) (?P<percent>\d+\.\d|\?)% "
    r"elapsed (?P<elapsed>\d+:\d\d:\d\d) eta (?P<eta>\d+:\d\d:\d\d|\?)(?P<figures>(?: \w+=\S+)*)$")
"""A plain progress line, field by field (docs/farm.md quotes it; ``figures`` is `` name=value`` pairs)."""

_TRUE = ("1", "true", "yes")
_stage: ContextVar[str | None] = ContextVar("reshoot_progress_stage", default=None)
_clock = time.monotonic  # tests replace it


def progress_mode() -> str:
    """How a step starting now shows its progress: ``rich``, ``plain``, ``json`` or ``off`` (see the module's
    docstring for the rules)."""
    chosen = os.environ.get("RESHOOT_PROGRESS", "").strip().lower() or "auto"
    if chosen not in MODES:
        raise ValueError(f"RESHOOT_PROGRESS={chosen!r}: give one of {', '.join(MODES)}")
    if chosen != "auto":
        return chosen
    if os.environ.get("RESHOOT_QUIET", "") in _TRUE:
        return "off"
    from rich.console import Console

    console = Console(stderr=True)  # rich's own test: honours FORCE_COLOR, TTY_COMPATIBLE, TERM=dumb
    return "rich" if console.is_interactive or console.is_jupyter else "plain"


def progress_enabled() -> bool:
    """Whether progress shows at all (any mode but ``off``)."""
    return progress_mode() != "off"


def progress_interval_s() -> float:
    """Seconds between two plain or JSON lines of a step: ``RESHOOT_PROGRESS_INTERVAL``, default 10."""
    text = os.environ.get("RESHOOT_PROGRESS_INTERVAL", "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    try:
        interval_s = float(text)
    except ValueError:
        interval_s = -1.0
    if not interval_s >= 0:
        raise ValueError(f"RESHOOT_PROGRESS_INTERVAL={text!r}: give seconds, 0 or more (e.g. 10)")
    return interval_s


@contextmanager
def progress_stage(name: str) -> Iterator[None]:
    """Name the stage whose steps report inside the block (plain lines show ``[reshoot NAME]``, JSON ``"stage"``)."""
    token = _stage.set(name)
    try:
        yield
    finally:
        _stage.reset(token)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` as step ``description``, showing its progress (``total``: default ``len(items)``)."""
    mode = progress_mode()
    if mode == "off":
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    if mode == "rich":
        from rich.progress import Progress

        with Progress(*_rich_columns(), console=_rich_console()) as progress:
            yield from progress.track(items, total=total, description=description)
        return
    report = _LineReport(mode, description, total)
    try:
        for item in items:
            yield item
            report.update(report.done + 1)
    finally:
        report.end()


class StepProgress:
    """The progress of a loop of steps that reports figures as it goes (e.g. training loss and PSNR).

    Use as a context manager: ``with StepProgress("training", total=3000) as bar: bar.update(1, loss=0.1)``;
    ``completed``: steps already done (a resumed run). Shown as :func:`progress_mode` says.
    """

    def __init__(self, description: str, total: int, completed: int = 0) -> None:
        self.description, self.total, self.completed = description, total, completed
        self._progress = None
        self._task = None
        self._report: _LineReport | None = None

    def __enter__(self) -> "StepProgress":
        mode = progress_mode()
        if mode == "rich":
            from rich.progress import Progress, TextColumn

            self._progress = Progress(*_rich_columns(), TextColumn("{task.fields[figures]}"),
                                      console=_rich_console())
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, completed=self.completed,
                                                 figures="")
        elif mode != "off":
            self._report = _LineReport(mode, self.description, self.total, self.completed)
        return self

    def set_total(self, total: int) -> None:
        """Change the number of steps (for work whose size is known only once it starts)."""
        self.total = total
        if self._progress is not None:
            self._progress.update(self._task, total=total)
        if self._report is not None:
            self._report.total = total

    def update(self, advance: int = 1, **figures: float) -> None:
        self.completed += advance
        if self._progress is not None:
            text = "  ".join(f"{name} {_figure_text(value)}" for name, value in figures.items())
            self._progress.update(self._task, advance=advance, **({"figures": text} if figures else {}))
        if self._report is not None:
            self._report.update(self.completed, figures)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._report is not None:
            self._report.end()


class _LineReport:
    """The plain or JSON lines of one step: the first, then at most one every interval, then the last."""

    def __init__(self, mode: str, step: str, total: int | None, done: int = 0) -> None:
        self.mode, self.step, self.total, self.done = mode, " ".join(step.split()), total, done
        self.stage = _stage.get()
        self.figures: dict[str, float] = {}
        self.interval_s = progress_interval_s()
        self._done_at_start = done
        self._started = self._printed = _clock()
        self._write("start", self._started)

    def update(self, done: int, figures: dict[str, float] | None = None) -> None:
        self.done = done
        if figures:
            self.figures = dict(figures)
        now = _clock()
        if now - self._printed >= self.interval_s and done != self.total:  # the last line says when it is done
            self._printed = now
            self._write("progress", now)

    def end(self) -> None:
        self._write("end", _clock())

    def _write(self, event: str, now: float) -> None:
        elapsed_s = now - self._started
        percent = None if self.total is None else (100.0 * self.done / self.total if self.total else 100.0)
        eta_s = None
        if self.total is not None and self.done >= self.total:
            eta_s = 0.0
        elif self.total is not None and self.done > self._done_at_start:
            eta_s = elapsed_s / (self.done - self._done_at_start) * (self.total - self.done)
        if self.mode == "json":
            line = json.dumps({"event": event, "stage": self.stage, "step": self.step, "done": self.done,
                               "total": self.total, "percent": None if percent is None else round(percent, 2),
                               "elapsed_s": round(elapsed_s, 3), "eta_s": None if eta_s is None else round(eta_s, 1),
                               "figures": {k: _json_number(v) for k, v in self.figures.items()}})
        else:
            where = f"reshoot {self.stage}" if self.stage else "reshoot"
            figures = "".join(f" {name}={_figure_text(value)}" for name, value in self.figures.items())
            line = (f"[{where}] {self.step} {self.done}/{_or_unknown(self.total)} "
                    f"{'?' if percent is None else f'{percent:.1f}'}% elapsed {_clock_text(elapsed_s)} "
                    f"eta {'?' if eta_s is None else _clock_text(eta_s)}{figures}")
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _rich_columns() -> tuple:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn())


def _rich_console():
    from rich.console import Console

    return Console(stderr=True)


def _figure_text(value: float) -> str:
    return str(int(value)) if isinstance(value, numbers.Integral) else f"{float(value):.4g}"


def _json_number(value: float) -> float | None:
    """A figure for JSON: an int stays one, NaN and infinity (not JSON) become null."""
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if math.isfinite(value) else None


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _clock_text(seconds: float) -> str:
    """``H:MM:SS``, rounded to the second."""
    total_s = int(round(seconds))
    return f"{total_s // 3600}:{total_s // 60 % 60:02d}:{total_s % 60:02d}"
