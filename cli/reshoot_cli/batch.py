"""``reshoot batch``: many shots, one job each, on Ray (reshoot.pipeline.batch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reshoot.pipeline.batch import BatchResult, BatchShot, ShotOutcome, load_batch, run_batch
from reshoot.workspace import StageError

#: The stages whose headline figures the summary table shows (all of them are in the JSON summary).
TABLE_STAGES = ("register", "reconstruct", "guide")


class BatchFailed(StageError):
    """One or more shots of a batch did not finish; the summary says which and why (the command exits with 1)."""


@dataclass
class BatchCommand:
    """Batch: run many shots, one `reshoot run` job each (its own workspace and config), on Ray: a local Ray that
    reshoot starts and stops, or an existing cluster with --address. Shots that fail are reported and the others go
    on; run it again to go on where it stopped. Ends with a summary table, also written as JSON beside the batch
    file; exits with 1 when a shot failed. Needs the `batch` extra (pip install 'reshoot[batch]')."""

    file: tyro.conf.Positional[Path]
    """The batch file (TOML): [defaults] and a [[shot]] table per shot (docs/batch.md)."""
    address: str | None = None
    """An existing Ray cluster to run on: `auto` (this machine is one of its nodes), `HOST:6379` or
    `ray://HOST:10001` (Ray Client). Not given: a local Ray on this machine, stopped at the end."""
    cpus_per_shot: float | None = None
    """CPUs each shot's task takes, over the file's `cpus` (torch uses as many threads)."""
    gpus_per_shot: float | None = None
    """GPUs each shot's task takes, over the file's `gpus` (0.5: two shots share a GPU)."""
    max_parallel: int | None = None
    """At most this many shots at a time, over the file's `max_parallel` (default: as many as the CPUs and GPUs
    allow)."""
    force: bool = False
    """Run every stage of every shot again even if it is up to date."""

    def run(self) -> None:
        out = Console()
        batch = load_batch(self.file)  # every error in the file stops us here, before Ray starts
        _say(f"reshoot batch: {len(batch.shots)} shot(s) from {batch.file} on {self.address or 'a local Ray'}; logs "
             f"in {batch.logs_dir}")
        result = run_batch(batch, address=self.address, cpus_per_shot=self.cpus_per_shot,
                           gpus_per_shot=self.gpus_per_shot, max_parallel=self.max_parallel, force=self.force,
                           on_event=_show_event)
        wide = out if out.is_terminal else Console(width=max(out.width, 160))  # a file or pipe: never cut the table
        wide.print(summary_table(result))
        out.print(f"summary (JSON): {result.summary_file}", highlight=False, soft_wrap=True)
        if result.failed:
            names = ", ".join(o.name for o in result.failed)
            raise BatchFailed(f"{len(result.failed)} of {len(result.outcomes)} shot(s) did not finish: {names}; "
                              "see their logs, fix, and run the same command again (finished shots are skipped)")


def _say(text: str) -> None:
    """A line on stderr, as written: one line whatever the width (for logs and farm tools), no markup."""
    Console(stderr=True).print(text, highlight=False, markup=False, soft_wrap=True)


def _show_event(event: str, shot: BatchShot, outcome: ShotOutcome | None) -> None:
    """A line as a shot is queued and as it ends (:func:`reshoot.pipeline.batch.run_batch`'s ``on_event``)."""
    if event == "queued":
        _say(f"shot {shot.name}: queued ({shot.cpus:g} CPU, {shot.gpus:g} GPU), log {shot.log}")
        return
    took = f" after {outcome.seconds:.1f} s" if outcome.seconds is not None else ""
    if outcome.state == "failed":
        stage = f" in {outcome.failed_stage}" if outcome.failed_stage else ""
        _say(f"shot {shot.name}: FAILED{stage}{took}: {outcome.error}")
    else:
        ran = sum(row["ran"] for row in outcome.stages)
        _say(f"shot {shot.name}: {outcome.state}{took} ({ran} of {len(outcome.stages)} stages ran)")


def summary_table(result: BatchResult) -> Table:
    """One row per shot: state, time, the stages that ran, headline figures (or the error), workspace, log (paths
    relative to the batch file's folder where inside it)."""
    table = Table(title=f"reshoot batch: {result.file.name} ({result.seconds:.0f} s on {result.address})")
    for col in ("shot", "state", "took", "ran", "figures", "workspace", "log"):
        table.add_column(col, overflow="fold")
    colours = {"done": "green", "skipped": "cyan", "failed": "red", "cancelled": "yellow"}
    for o in result.outcomes:
        took = f"{o.seconds:.1f} s" if o.seconds is not None else ""
        ran = f"{sum(row['ran'] for row in o.stages)}/{len(o.stages)}" if o.stages else ""
        if o.state in ("failed", "cancelled"):
            figures = f"{'in ' + o.failed_stage + ': ' if o.failed_stage else ''}{o.error}"
        else:
            figures = "; ".join(f"{stage}: {o.figures(stage)}" for stage in TABLE_STAGES if o.figures(stage))
        table.add_row(escape(o.name), f"[{colours[o.state]}]{o.state}[/]", took, ran, escape(figures),
                      escape(_shown(o.workspace, result.file.parent)), escape(_shown(o.log, result.file.parent)))
    return table


def _shown(path: Path, folder: Path) -> str:
    path = Path(path)
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)
