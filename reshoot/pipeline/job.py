"""The whole job: footage in, shot out. ``reshoot run`` runs every stage in order over one workspace.

ingest -> register -> reconstruct -> path -> guide -> refine -> export, each with its own config (a section of
the job's config file, or flags such as ``--reconstruct.steps 600``). Stages whose inputs and settings are
unchanged are skipped (the workspace's manifests say so), so a job that stopped half way is run again with the
same command and goes on where it stopped. A stage that fails stops the job with its own error; the stages before
it are kept.

A config file is TOML (or JSON) with one table per stage and the sources at the top::

    sources = ["cam0.mov", "cam1.mov", "cam2.mov"]   # relative to the file
    workspace = "ws"

    [reconstruct]
    steps = 600

    [path]
    kind = "overhead"
    tilt_deg = 15.0
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reshoot.stages.export import ExportConfig, run_export
from reshoot.stages.guide import GuideConfig, run_guide
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.path import PathConfig, run_path
from reshoot.stages.reconstruct import ReconstructConfig, run_reconstruct
from reshoot.stages.refine import RefineConfig, run_refine
from reshoot.stages.register import RegisterConfig, run_register
from reshoot.workspace import STAGES, StageResult, Workspace


@dataclass(frozen=True)
class JobConfig:
    """Every stage's settings for one job."""

    sources: tuple[Path, ...] = ()
    """One video file or image-sequence folder per set camera."""
    workspace: Path = Path("reshoot-workspace")
    """The workspace folder (created if new)."""
    ingest: IngestConfig = field(default_factory=IngestConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    path: PathConfig = field(default_factory=PathConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass(frozen=True)
class JobResult:
    """What a job did: each stage's result, in order, and where the shot is."""

    workspace: Workspace
    stages: dict[str, StageResult]
    seconds: float

    @property
    def shot_dir(self) -> Path:
        return self.workspace.stage_dir("export")

    def summary(self) -> list[dict[str, Any]]:
        """One row per stage: whether it ran or was up to date, its time, and its headline figures."""
        rows = []
        for name, result in self.stages.items():
            s = result.manifest.get("summary", {})
            rows.append({"stage": name, "ran": not result.skipped,
                         "seconds": result.manifest.get("timings_s", {}).get("total"), "figures": headline(name, s)})
        return rows


def run_job(config: JobConfig, force: bool = False,
            on_stage: Callable[[int, int, str], None] | None = None, wait: bool = False) -> JobResult:
    """Run every stage of ``config`` in order over its workspace (see the module docstring), holding the workspace's
    writer lock from the first stage to the last (no other process writes between them).

    Args:
        force: run every stage again even if it is up to date.
        on_stage: called as ``on_stage(index, total, name)`` before each stage (for a progress display).
        wait: if another process is writing the workspace, wait for it (else refuse at once, naming it).
    """
    if not config.sources:
        raise ValueError("the job has no sources: give the set cameras' files (or a config file listing them)")
    missing = [str(p) for p in config.sources if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"source(s) not found: {', '.join(missing)}")
    workspace = Workspace(config.workspace, wait=wait)
    steps: list[tuple[str, Callable[[], StageResult]]] = [
        ("ingest", lambda: run_ingest(workspace, list(config.sources), config.ingest, force=force)),
        ("register", lambda: run_register(workspace, config.register, force=force)),
        ("reconstruct", lambda: run_reconstruct(workspace, config.reconstruct, force=force)),
        ("path", lambda: run_path(workspace, config.path, force=force)),
        ("guide", lambda: run_guide(workspace, config.guide, force=force)),
        ("refine", lambda: run_refine(workspace, config.refine, force=force)),
        ("export", lambda: run_export(workspace, config.export, force=force)),
    ]
    assert [name for name, _ in steps] == list(STAGES)
    start, results = time.perf_counter(), {}
    with workspace.writing():
        for index, (name, step) in enumerate(steps):
            if on_stage:
                on_stage(index, len(steps), name)
            results[name] = step()
    return JobResult(workspace, results, time.perf_counter() - start)


def headline(stage: str, s: dict[str, Any]) -> str:
    """A stage summary's most telling figures, in a few words."""
    def get(key: str, fmt: str) -> str:
        return format(s[key], fmt) if s.get(key) is not None else "?"

    if stage == "ingest":
        return f"{s.get('cameras', '?')} cameras, {s.get('frames', '?')} frames"
    if stage == "register":
        return (f"{len(s.get('registered_cameras', []))} cameras registered, reprojection "
                f"{get('mean_reprojection_error_px', '.2f')} px, {s.get('points', '?')} points")
    if stage == "reconstruct":
        return f"{s.get('gaussians', '?')} Gaussians, training PSNR {get('final_train_psnr_db', '.1f')} dB"
    if stage == "path":
        return f"'{s.get('name')}', {s.get('frames')} frames at {s.get('fps')} fps"
    if stage == "guide":
        return (f"{get('render_fps', '.2f')} frames/s, coverage {get('mean_coverage', '.0%')}, confidence "
                f"{get('mean_confidence', '.2f')}")
    if stage == "refine":
        return f"{s.get('refiner')}, {get('seconds_per_frame', '.3f')} s a frame"
    if stage == "export":
        return f"frames {s.get('first_frame')}-{s.get('last_frame')}, from {s.get('start_timecode')}"
    return ""


def load_job_config(file: Path) -> JobConfig:
    """A JobConfig from a TOML or JSON file (see the module docstring); paths in it are relative to the file.

    Every value is checked against its setting's type as the file is read, so a job with a wrong or unknown setting
    stops before any stage runs, with a ValueError naming the file, the setting, the value and what it takes."""
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"no job config at {file}")
    text = file.read_text()
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{file}: not valid {'JSON' if file.suffix.lower() == '.json' else 'TOML'}: {exc}") from exc
    return job_config_from_dict(data, file.parent, str(file))


def job_config_from_dict(data: dict[str, Any], base: Path, where: str) -> JobConfig:
    """A :class:`JobConfig` from a job file's tables as a dict (paths relative to ``base``; ``where`` names the
    source in errors), checked as :func:`load_job_config` checks a file."""
    return _build(JobConfig, data, base, where)


def _build(cls: type, data: dict[str, Any], base: Path, where: str, section: str = "") -> Any:
    """``cls`` from a dict, checking each value against the field's type and converting paths (relative to
    ``base``), tuples and nested configs (``section`` is the table being read: "" for the file's top level);
    unknown keys are errors that list the known ones."""
    place = f"{where}: {section}" if section else where
    if not isinstance(data, dict):
        raise ValueError(f"{place}: expected a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{place}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {}
    for key, value in data.items():
        if dataclasses.is_dataclass(hints[key]):
            values[key] = _build(hints[key], value, base, where, key)
            continue
        converted = _convert(hints[key], value, base)
        if converted is _WRONG:
            setting = f"{section}.{key}" if section else key  # TOML's dotted key, and run's flag --section.key
            shown = json.dumps(value) if value is None or isinstance(value, bool) else repr(value)  # true, null
            raise ValueError(f"{where}: {setting} = {shown} is not {_expected(hints[key])}")
        values[key] = converted
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{place}: {exc}") from exc


#: What :func:`_convert` returns for a value of the wrong type.
_WRONG = object()


def _convert(hint: Any, value: Any, base: Path) -> Any:
    """``value`` as a field typed ``hint`` holds it (paths made relative to ``base``), or ``_WRONG``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            converted = _convert(option, value, base)
            if converted is not _WRONG:
                return converted
        return _WRONG
    if origin is typing.Literal:
        return value if any(value == a and type(value) is type(a) for a in args) else _WRONG
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _WRONG
        fixed = not (len(args) == 2 and args[1] is Ellipsis)
        if fixed and len(value) != len(args):
            return _WRONG
        items = [_convert(args[k] if fixed else args[0], v, base) for k, v in enumerate(value)]
        return _WRONG if any(item is _WRONG for item in items) else tuple(items)
    if hint is Path:
        return base / Path(value) if isinstance(value, str) and value else _WRONG
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next((member for member in hint if value in (member.value, member.name)), _WRONG)
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _WRONG
    if hint is str:
        return value if isinstance(value, str) else _WRONG
    if hint is Any:
        return value
    raise TypeError(f"job config: no reader for settings of type {hint!r}; add one to reshoot.pipeline.job._convert")


def _expected(hint: Any) -> str:
    """What a field typed ``hint`` takes, in words: "a whole number", "one of 'fast', 'quality'"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list, each item {_expected(args[0])}"
        return f"a list of {len(args)} items, each {_expected(args[0])}" if len(set(args)) == 1 \
            else f"a list of {len(args)} items: {', '.join(_expected(a) for a in args)}"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return f"one of {', '.join(repr(m.value) for m in hint)}"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string (text in quotes)",
            Path: "a path (text in quotes, relative to the file)", Any: "a value"}[hint]
