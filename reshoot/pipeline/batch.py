"""Many shots on one engine: ``reshoot batch shots.toml`` runs one job (:func:`reshoot.pipeline.job.run_job`) per shot on Ray.

Each shot is a whole ``reshoot run`` job over its own workspace, run as one Ray task (a worker process) with the
CPUs and GPUs it asks for: on a local Ray that reshoot starts and stops, or on an existing cluster (``address``).
A shot that fails is reported (its error, the stage it failed in, its log) and the others go on; a batch run again
skips what is done, because a job skips its stages that are up to date. The user's guide is ``docs/batch.md``.

A batch file is TOML (or JSON, the same tables); paths in it are relative to it::

    [defaults]                      # every shot starts from these (all optional)
    cpus = 2                        # CPUs a shot's task takes (torch uses as many threads)
    gpus = 0                        # GPUs a shot's task takes (fractions share one)
    config = "base.toml"            # a `reshoot run` config file every shot starts from
    workspaces = "workspaces"       # where shots without a workspace get one: workspaces/<name>
    [defaults.reconstruct]          # inline `reshoot run` settings, over the config file's
    steps = 600

    [[shot]]
    name = "sc12_tk3"               # letters, digits, '.', '_', '-'; names the log and the default workspace
    config = "sc12_tk3.toml"        # this shot's `reshoot run` config, over the defaults

    [[shot]]
    name = "sc14_tk1"
    sources = ["footage/sc14/cam0.mov", "footage/sc14/cam1.mov", "footage/sc14/cam2.mov"]
    cpus = 4
    [shot.path]
    kind = "orbit"

Each shot's settings are, later winning: the defaults' config file, the defaults' inline settings, the shot's config
file, the shot's inline settings. Top-level keys: ``summary`` (the summary's JSON file, default
``<stem>_summary.json``), ``logs`` (the folder of the shots' logs, default ``<stem>_logs``) and ``max_parallel``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
import tomllib
import traceback
import typing
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from reshoot._deps import require
from reshoot.atomic import atomic_write_json
from reshoot.pipeline.job import JobConfig, job_config_from_dict, load_job_config, run_job
from reshoot.progress import StepProgress, progress_stage
from reshoot.workspace import STAGE_DESCRIPTIONS, config_to_json

RAY_INSTALL_HINT = "pip install 'reshoot[batch]' (or pip install 'ray[client]>=2.9')"
#: What a shot's name may be: it names the shot's log file and its default workspace folder.
SHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Keys of ``[defaults]`` and ``[[shot]]`` tables that are not ``reshoot run`` settings.
_RESOURCE_KEYS = ("cpus", "gpus")
_DEFAULTS_KEYS = (*_RESOURCE_KEYS, "config", "workspaces")
_SHOT_KEYS = ("name", *_RESOURCE_KEYS, "config")
_TOP_KEYS = ("defaults", "shot", "summary", "logs", "max_parallel")
_JOB_KEYS = tuple(f.name for f in dataclasses.fields(JobConfig))

ShotState = Literal["done", "skipped", "failed", "cancelled"]


@dataclass(frozen=True)
class BatchShot:
    """One shot of a batch: its job and what its task takes."""

    name: str
    job: JobConfig
    """The shot's whole ``reshoot run`` job; ``job.workspace`` is its own."""
    log: Path
    """The shot's log: everything its job prints (plain progress lines, warnings, the error), appended each run."""
    cpus: float = 1.0
    """CPUs its task takes on a Ray node (the job's torch uses that many threads, at least 1)."""
    gpus: float = 0.0
    """GPUs its task takes (0: none; a fraction such as 0.5 shares one GPU between tasks)."""


@dataclass(frozen=True)
class Batch:
    """A batch file read and checked: every shot, and where the summary and the logs go."""

    file: Path
    shots: tuple[BatchShot, ...]
    summary_file: Path
    logs_dir: Path
    max_parallel: int | None = None
    """At most this many shots at a time (None: as many as the cluster's CPUs and GPUs allow)."""


@dataclass(frozen=True)
class ShotOutcome:
    """How one shot of a batch ended."""

    name: str
    state: ShotState
    """``done`` (stages ran), ``skipped`` (every stage was up to date), ``failed``, or ``cancelled`` (the batch was
    stopped before the shot finished)."""
    workspace: Path
    log: Path
    seconds: float | None = None
    stages: tuple[dict[str, Any], ...] = ()
    """:meth:`reshoot.pipeline.job.JobResult.summary`'s rows: stage, ran, seconds, figures."""
    failed_stage: str | None = None
    """The stage a failed shot stopped in (None: before its first stage)."""
    error: str | None = None
    host: str | None = None
    """The machine the shot ran on."""

    def figures(self, stage: str) -> str:
        """The headline figures of ``stage`` (empty when it did not run)."""
        return next((row["figures"] for row in self.stages if row["stage"] == stage), "")

    def to_json(self) -> dict[str, Any]:
        return config_to_json(self)


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: one outcome per shot, in the file's order."""

    file: Path
    outcomes: tuple[ShotOutcome, ...]
    seconds: float
    summary_file: Path
    address: str
    """Where it ran: ``local`` (a Ray started for it) or the cluster's address."""

    @property
    def failed(self) -> list[ShotOutcome]:
        """The shots that did not finish (failed or cancelled)."""
        return [o for o in self.outcomes if o.state in ("failed", "cancelled")]

    def to_json(self) -> dict[str, Any]:
        counts = {state: sum(o.state == state for o in self.outcomes) for state in typing.get_args(ShotState)}
        return {"reshoot_batch": 1, "file": str(self.file), "address": self.address, "finished_at": _now(),
                "seconds": round(self.seconds, 3), "counts": counts, "shots": [o.to_json() for o in self.outcomes]}


def load_batch(file: str | os.PathLike[str]) -> Batch:
    """Read and check a batch file (see the module docstring) before anything runs.

    Raises ValueError naming the file, the shot and the key for: an unknown key, a wrong value, a missing or
    duplicate name, a missing config file, a wrong ``reshoot run`` setting, a shot without sources, and two shots
    sharing a workspace (or one inside another's);
    FileNotFoundError when the file itself is missing."""
    file = Path(file).resolve()
    data = _read_table(file)
    _check_keys(data, _TOP_KEYS, f"{file}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ValueError(f"{file}: defaults must be a table ([defaults]), got {defaults!r}")
    _check_keys(defaults, (*_DEFAULTS_KEYS, *_JOB_KEYS), f"{file}: [defaults]")
    tables = data.get("shot")
    if not tables or not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{file}: no shots; give each one a [[shot]] table with a name and its settings")
    base_layers = _setting_layers(defaults, file, f"{file}: [defaults]")
    base_resources = _resources(defaults, (1.0, 0.0), f"{file}: [defaults]")
    workspaces = file.parent / _string(defaults, "workspaces", f"{file}: [defaults]", "workspaces")
    logs_dir = file.parent / _string(data, "logs", str(file), f"{file.stem}_logs")
    max_parallel = data.get("max_parallel")
    _check_max_parallel(max_parallel, str(file))
    shots: list[BatchShot] = []
    for number, table in enumerate(tables, 1):
        name = _shot_name(table, number, file, [s.name for s in shots])
        where = f"{file}: shot {name!r}"
        _check_keys(table, (*_SHOT_KEYS, *_JOB_KEYS), where)
        settings = _merged([*base_layers, *_setting_layers(table, file, where)])
        settings.setdefault("workspace", str(workspaces / name))
        job = job_config_from_dict(settings, file.parent, where)
        cpus, gpus = _resources(table, base_resources, where)
        if not job.sources:
            raise ValueError(f"{where}: no sources; give sources = [...] (the set cameras' files) in the shot, in its "
                             "config file or in [defaults]")
        shots.append(BatchShot(name, job, logs_dir / f"{name}.log", cpus, gpus))
    _check_workspaces(shots, file)
    return Batch(file, tuple(shots), file.parent / _string(data, "summary", str(file), f"{file.stem}_summary.json"),
                 logs_dir, max_parallel)


def run_batch(batch: Batch, address: str | None = None, cpus_per_shot: float | None = None,
              gpus_per_shot: float | None = None, max_parallel: int | None = None, force: bool = False,
              on_event: Callable[[str, BatchShot, ShotOutcome | None], None] | None = None) -> BatchResult:
    """Run every shot of ``batch`` as a Ray task and write the summary (``batch.summary_file``, JSON).

    Steps: 1. start a local Ray (``address`` None) or connect to the cluster at ``address`` ("auto",
    "ray://host:10001", "host:6379"); 2. check that each shot's CPUs and GPUs fit a node; 3. queue the shots (at most
    ``max_parallel`` at a time) and collect each as it ends; 4. write the summary; 5. stop the local Ray (a cluster is
    only disconnected from), on an error or Ctrl-C too; the summary then marks unfinished shots ``cancelled``.

    Args:
        cpus_per_shot, gpus_per_shot: override every shot's ``cpus``/``gpus``.
        max_parallel: overrides the file's ``max_parallel``.
        force: run every stage of every shot again even if it is up to date.
        on_event: called as ``on_event("queued", shot, None)`` when a shot is handed to Ray and
            ``on_event("finished", shot, outcome)`` when it ends (for a display).

    A failing shot does not raise: see the outcomes' ``state`` (and :attr:`BatchResult.failed`).
    """
    ray = require("ray", RAY_INSTALL_HINT)
    shots = [replace(s, cpus=s.cpus if cpus_per_shot is None else cpus_per_shot,
                     gpus=s.gpus if gpus_per_shot is None else gpus_per_shot) for s in batch.shots]
    for shot in shots:
        _check_resources(shot.cpus, shot.gpus, f"shot {shot.name!r}")
    _check_max_parallel(max_parallel, "max_parallel")
    limit = max_parallel or batch.max_parallel or len(shots)
    start = time.perf_counter()
    connected = ray.is_initialized()  # a caller already connected (a notebook): use that, leave it connected
    if connected and address is not None:
        raise ValueError(f"address={address!r}, but this process is already connected to Ray; leave address out to "
                         "use that connection, or call ray.shutdown() first")
    try:
        own_ray = False if connected else _connect(ray, address)
        _check_fits(ray, shots, must_fit=own_ray)
        outcomes: dict[str, ShotOutcome] = {}
        try:
            _schedule(ray, shots, limit, force, outcomes, on_event or (lambda *args: None))
        finally:
            result = BatchResult(batch.file, tuple(outcomes.get(s.name) or _cancelled(s) for s in shots),
                                 time.perf_counter() - start, batch.summary_file,
                                 "local" if own_ray else address or "connected")
            atomic_write_json(batch.summary_file, result.to_json())
    finally:
        if not connected:
            ray.shutdown()  # stops the local Ray we started; from a cluster, only disconnects
    return result


def run_shot(shot: BatchShot, force: bool = False, env: dict[str, str] | None = None) -> ShotOutcome:
    """Run one shot's job here, everything it prints appended to ``shot.log`` (progress as plain lines), and return
    how it ended: the job's errors are caught and reported in the outcome, not raised (Ctrl-C is raised).

    This is what each Ray task runs; ``env`` is extra environment for the job (``RESHOOT_PROGRESS_INTERVAL``...)."""
    shot.log.parent.mkdir(parents=True, exist_ok=True)
    where = {"stage": None}
    start = time.perf_counter()

    def announce(index: int, total: int, name: str) -> None:
        where["stage"] = name
        print(f"[{index + 1}/{total}] {name}: {STAGE_DESCRIPTIONS[name]}", file=sys.stderr, flush=True)

    with _output_to(shot.log), _environment({"RESHOOT_PROGRESS": "plain", **(env or {})}), _threads(shot.cpus):
        print(f"=== reshoot batch: shot {shot.name} started {_now()} on {platform.node()} (pid {os.getpid()}), "
              f"workspace {shot.job.workspace}", file=sys.stderr, flush=True)
        try:
            result = run_job(shot.job, force=force, on_stage=announce)
        except Exception as exc:  # a shot's failure is its own: report it, keep the batch going
            traceback.print_exc()
            error = _error_text(exc)
            print(f"=== shot {shot.name} failed{_in(where['stage'])}: {error}", file=sys.stderr, flush=True)
            return ShotOutcome(shot.name, "failed", shot.job.workspace, shot.log, _seconds(start),
                               failed_stage=where["stage"], error=error, host=platform.node())
        rows = tuple(result.summary())
        state = "done" if any(row["ran"] for row in rows) else "skipped"
        print(f"=== shot {shot.name} {state} in {result.seconds:.1f} s", file=sys.stderr, flush=True)
    return ShotOutcome(shot.name, state, result.workspace.root, shot.log, _seconds(start), rows,
                       host=platform.node())


def last_stage_in_log(log: Path) -> str | None:
    """The stage a shot's log says its latest run last started (its ``[3/7] reconstruct: ...`` lines after the
    latest ``=== reshoot batch: shot ... started`` line), or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("=== reshoot batch: shot "):
            return None
        found = re.match(r"^\[\d+/\d+\] ([a-z]+): ", line)
        if found and found.group(1) in STAGE_DESCRIPTIONS:
            return found.group(1)
    return None


# --- reading the batch file ---------------------------------------------------------------------------------------

def _read_table(file: Path) -> dict[str, Any]:
    """A TOML or JSON file's top-level table."""
    if not file.is_file():
        raise FileNotFoundError(f"no batch file at {file}")
    text = file.read_text()
    try:
        return json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{file}: not valid {'JSON' if file.suffix.lower() == '.json' else 'TOML'}: {exc}") from exc


def _check_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")


def _shot_name(table: dict[str, Any], number: int, file: Path, taken: list[str]) -> str:
    name = table.get("name")
    if not isinstance(name, str) or not SHOT_NAME.fullmatch(name):
        got = "no name" if name is None else f"name = {name!r}"
        raise ValueError(f"{file}: [[shot]] number {number} has {got}; give it name = \"...\" (letters, digits, "
                         "'.', '_' and '-', starting with a letter or digit: it names its log and workspace)")
    if name in taken:
        raise ValueError(f"{file}: two shots are named {name!r} (numbers {taken.index(name) + 1} and {number}); "
                         "give each shot its own name")
    return name


def _string(table: dict[str, Any], key: str, where: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {key} = {value!r} is not a path (text in quotes, relative to the file)")
    return value


def _resources(table: dict[str, Any], default: tuple[float, float], where: str) -> tuple[float, float]:
    """``cpus`` and ``gpus`` from a table, or ``default``'s."""
    values = []
    for key, fallback in zip(_RESOURCE_KEYS, default):
        value = table.get(key, fallback)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}: {key} = {value!r} is not a number")
        values.append(float(value))
    _check_resources(*values, where)
    return values[0], values[1]


def _check_resources(cpus: float, gpus: float, where: str) -> None:
    if not cpus > 0 or not gpus >= 0:
        raise ValueError(f"{where}: cpus = {cpus:g} and gpus = {gpus:g}: a shot takes more than 0 CPUs and 0 GPUs "
                         "or more")
    for key, value in zip(_RESOURCE_KEYS, (cpus, gpus)):
        if value > 1 and value != int(value):
            raise ValueError(f"{where}: {key} = {value:g}: Ray takes a fraction of one only (0.5) or whole ones (2)")


def _check_max_parallel(value: Any, where: str) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"{where}: max_parallel = {value!r} is not a whole number of 1 or more")


def _setting_layers(table: dict[str, Any], file: Path, where: str) -> list[dict[str, Any]]:
    """The ``reshoot run`` settings a table gives, as layers with absolute paths: its ``config`` file's (checked by
    :func:`load_job_config`, whose errors name that file), then its inline ones (checked once merged)."""
    layers = []
    if "config" in table:
        config = _string(table, "config", where, "")
        path = file.parent / config
        if not path.is_file():
            raise ValueError(f"{where}: config = {config!r}: no `reshoot run` config file at {path}")
        load_job_config(path)  # its errors name it and the setting
        layers.append(_absolute_paths(JobConfig, _read_table(path), path.parent))
    inline = {key: value for key, value in table.items() if key in _JOB_KEYS}
    layers.append(_absolute_paths(JobConfig, inline, file.parent))
    return layers


def _absolute_paths(cls: type, data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` (settings of ``cls``, as read) with each path made absolute against ``base``, so settings from
    files in different folders can be merged; everything else as it was (checked later, by the job's reader)."""
    if not isinstance(data, dict):
        return data
    hints, absolute = typing.get_type_hints(cls), {}
    for key, value in data.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint):
            absolute[key] = _absolute_paths(hint, value, base)
        elif hint is not None and _holds_path(hint):
            absolute[key] = [_absolute(v, base) for v in value] if isinstance(value, list) else _absolute(value, base)
        else:
            absolute[key] = value
    return absolute


def _holds_path(hint: Any) -> bool:
    return hint is Path or any(_holds_path(arg) for arg in typing.get_args(hint))


def _absolute(value: Any, base: Path) -> Any:
    return str(base / value) if isinstance(value, str) and value else value


def _merged(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The layers merged table by table, later layers winning."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = _merged([merged[key], value])
            else:
                merged[key] = value
    return merged


def _check_workspaces(shots: list[BatchShot], file: Path) -> None:
    """No two shots may write one workspace, or one inside another's."""
    roots = [(s.name, Path(s.job.workspace).resolve()) for s in shots]
    for idx, (name, root) in enumerate(roots):
        for other, other_root in roots[idx + 1:]:
            if root == other_root or root.is_relative_to(other_root) or other_root.is_relative_to(root):
                how = "the same workspace" if root == other_root else "workspaces one inside the other"
                raise ValueError(f"{file}: shots {name!r} and {other!r} have {how} ({root} and {other_root}); give "
                                 "each shot its own workspace (or leave workspace out: workspaces/<name>)")


# --- running on Ray -----------------------------------------------------------------------------------------------

def _connect(ray: Any, address: str | None) -> bool:
    """Start a local Ray (``address`` None; returns True: ours to stop) or connect to the cluster at ``address``."""
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine unless asked
    if address is None:
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        return True
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ConnectionError(
            f"could not connect to the Ray cluster at {address!r} ({exc}). If it uses token authentication (recent "
            "Rays turn it on), set RAY_AUTH_MODE=token and give its token (~/.ray/auth_token, "
            "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN); see docs/batch.md#on-a-cluster") from exc
    return False


def _check_reachable(address: str) -> None:
    """Fail at once, not after Ray's minutes of retries, when nothing answers at ``HOST:PORT`` (``ray://`` too)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray cluster answers at {address!r} ({exc}); check the head node's address and port "
                              "(`ray start --head` prints them), or leave --address out for a local Ray") from exc


def _check_fits(ray: Any, shots: list[BatchShot], must_fit: bool) -> None:
    """Every shot's CPUs and GPUs must fit one node of the cluster: an error on a local Ray, a warning on a cluster
    (a node may join later)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = max(((r.get("CPU", 0.0), r.get("GPU", 0.0)) for r in nodes), default=(0.0, 0.0))
    for shot in shots:
        if any(r.get("CPU", 0.0) >= shot.cpus and r.get("GPU", 0.0) >= shot.gpus for r in nodes):
            continue
        text = (f"shot {shot.name!r} takes {shot.cpus:g} CPU(s) and {shot.gpus:g} GPU(s), but no node of the Ray "
                f"cluster has that many (the largest: {largest[0]:g} CPUs, {largest[1]:g} GPUs)")
        if must_fit:
            raise ValueError(f"{text}; lower its cpus/gpus in the batch file, or pass --cpus-per-shot/--gpus-per-shot")
        print(f"warning: {text}; it waits until such a node joins", file=sys.stderr, flush=True)


def _schedule(ray: Any, shots: list[BatchShot], limit: int, force: bool, outcomes: dict[str, ShotOutcome],
              on_event: Callable[[str, BatchShot, ShotOutcome | None], None]) -> None:
    """Queue the shots (``limit`` at a time) and collect each as it ends; on leaving early, cancel those left."""
    task = ray.remote(max_retries=0)(run_shot)  # a crashed shot is reported, not retried: re-run the batch
    env = {k: os.environ[k] for k in ("RESHOOT_PROGRESS_INTERVAL", "RESHOOT_DEBUG") if k in os.environ}
    queue, pending = list(shots), {}
    try:
        with progress_stage("batch"), StepProgress("shots", total=len(shots)) as bar:
            while queue or pending:
                while queue and len(pending) < limit:
                    shot = queue.pop(0)
                    options = {"num_cpus": shot.cpus, "num_gpus": shot.gpus, "name": f"reshoot-batch-{shot.name}"}
                    pending[task.options(**options).remote(shot, force, env)] = shot
                    on_event("queued", shot, None)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    shot = pending.pop(ref)
                    outcomes[shot.name] = _collect(ray, ref, shot)
                    on_event("finished", shot, outcomes[shot.name])
                    bar.update(1, failed=sum(o.state == "failed" for o in outcomes.values()))
    finally:
        for ref in pending:
            ray.cancel(ref)


def _collect(ray: Any, ref: Any, shot: BatchShot) -> ShotOutcome:
    """A finished task's outcome; a task that died (its worker killed, out of memory, a lost node) is a failure."""
    try:
        return ray.get(ref)
    except Exception as exc:  # ray.exceptions.RayError and its kin: the job itself never raises out of run_shot
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ShotOutcome(shot.name, "failed", shot.job.workspace, shot.log, failed_stage=last_stage_in_log(shot.log),
                           error=f"its Ray task died ({type(exc).__name__}): {first}")


def _cancelled(shot: BatchShot) -> ShotOutcome:
    return ShotOutcome(shot.name, "cancelled", shot.job.workspace, shot.log, failed_stage=last_stage_in_log(shot.log),
                       error="the batch was stopped before this shot finished; run the batch again to go on")


# --- inside a shot's task -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's output to the end of ``log`` inside the block: Python's ``sys.stdout``/``sys.stderr``
    (whatever a host put there: a notebook's, pytest's) and file descriptors 1 and 2 (libraries' own output)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "a", buffering=1, errors="replace") as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            handle.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _threads(cpus: float) -> Iterator[None]:
    """torch's threads = the shot's CPUs (at least 1), inside the block."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, math.floor(cpus)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _error_text(exc: BaseException) -> str:
    """An error in one line: reshoot's own errors say what to do; others get their type too."""
    from reshoot import ReshootError

    text = " ".join(str(exc).split())
    return text if isinstance(exc, (*ReshootError, OSError, ValueError)) and text else f"{type(exc).__name__}: {text}"


def _in(stage: str | None) -> str:
    return f" in {stage}" if stage else " before its first stage"


def _seconds(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
