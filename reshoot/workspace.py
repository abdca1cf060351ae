"""The workspace: one shoot's folder on disk, in which every stage writes its own folder and manifest.

Layout (documented for users in ``docs/workspace.md``)::

    WS/
      workspace.json          what this workspace is: reshoot version, the source footage it reads
      <stage>/                one folder per stage: ingest, register, reconstruct, path, guide, refine, export
        manifest.json         written last: config, input fingerprints, versions, timings, outputs
        ...                   the stage's own files
      .reshoot/lock           the writer lock: one reshoot process writes a workspace at a time
      .reshoot/tmp/<stage>-<pid>-<id>/  a stage's folder while it is being written (moved into place at the end)
      .reshoot/scratch/<stage>/  checkpoints a stage may resume from after a kill (same config and
                              inputs only; cleared by ``force``); removed on success
      .reshoot/set-aside/<stage>/  checkpoints a run could not use (unreadable, or another run's), kept
      .reshoot/trash/         an old stage folder on its way out
      .reshoot/hash-cache.json  file fingerprints, keyed by path, size and modification time

Rules every stage gets from :meth:`Workspace.run_stage`:

- one writer at a time: a stage runs holding the workspace's lock (an OS file lock, released when its process
  ends however it ends); a second writer is refused at once, naming the holder, or waits (``wait=True``);
- a stage whose config, input files and upstream stages are unchanged is skipped (``force`` re-runs);
- a stage is written in a temporary folder and moved into place whole, manifest included, so a
  killed run leaves the previous complete folder or none, never a half-written one that looks done;
- input files (the user's footage) are only ever read: they may not lie inside the workspace's
  stage folders, which reshoot replaces;
- a stage needs its upstream stages complete and current (not stale, no output missing).

:meth:`Workspace.status` reports each stage as complete, stale (a stage it depends on, directly or not, changed
since it ran, or its source footage did), broken (outputs missing or, with ``verify``, changed) or missing, with
interrupted runs and resumable checkpoints.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from reshoot.atomic import DISK_FULL_ERRNOS, DiskFullError, atomic_write_json, replace_dir
from reshoot.progress import progress_stage

#: The stages, in pipeline order, with what each does.
STAGE_DESCRIPTIONS = {
    "ingest": "read the camera files, sync them (audio, timecode or manual) and extract frames",
    "register": "register the cameras with COLMAP into one 3D frame, with a sparse point cloud",
    "reconstruct": "train a dynamic Gaussian-splat scene of the set and the actor (gsplat)",
    "path": "design the missing angle: a camera path over the shot's timeline",
    "guide": "render the path from the splat scene: RGB, alpha, depth and confidence",
    "refine": "refine the guide frames into a coherent shot (classical or video diffusion)",
    "export": "write deliverables: image sequences, video, camera files, contact sheets",
}
STAGES = tuple(STAGE_DESCRIPTIONS)
#: Libraries whose versions a manifest records when they are loaded.
_TRACKED_LIBRARIES = ("numpy", "torch", "gsplat", "pycolmap", "diffusers", "transformers", "open3d-cpu",
                      "open3d", "trimesh", "av", "pyrender", "opencv-python-headless", "scipy", "pillow")
_INTERNAL = ".reshoot"


class StageError(RuntimeError):
    """A stage cannot run as asked; the message says what to do."""


class WorkspaceBusy(StageError):
    """Another reshoot process is writing the workspace; ``holder`` says which (pid, host, command, start)."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


#: Locks this process holds: workspace root -> [open lock file, depth] (the lock is re-entrant in a process).
_HELD: dict[Path, list] = {}
#: What the last interrupted stage left (for the CLI's closing line): stage, workspace, scratch files kept.
last_interrupted: dict[str, Any] | None = None


@dataclass(frozen=True)
class StageContext:
    """What a stage function gets: where to write, what it was asked, and a timer for its steps."""

    name: str
    out_dir: Path  #: write the stage's files here; moved to ``WS/<name>`` when the stage returns
    scratch_dir: Path  #: kept across a killed run, for checkpoints to resume from
    workspace: Workspace
    config: Any
    timings_s: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timer(self, step: str) -> Iterator[None]:
        """Record how long ``step`` took, in the manifest's ``timings_s``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[step] = self.timings_s.get(step, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class StageResult:
    name: str
    path: Path  #: the stage's folder
    manifest: dict[str, Any]
    skipped: bool  #: True when the stage was up to date and did not run
    notes: tuple[str, ...] = ()  #: what a person should know: e.g. later stages this run made out of date


class Workspace:
    """One shoot's workspace folder. Creating it makes the folder and ``workspace.json``."""

    def __init__(self, root: str | os.PathLike[str], wait: bool = False) -> None:
        """Args:
            wait: when another reshoot process is writing the workspace, wait for it (else refuse at once)."""
        self.root = Path(root).resolve()
        self.wait = wait
        if self.root.exists() and not self.root.is_dir():
            raise StageError(f"workspace {self.root} is a file, not a folder; choose another --workspace path")
        self.root.mkdir(parents=True, exist_ok=True)
        info = self.root / "workspace.json"
        if not info.exists():
            atomic_write_json(info, {"reshoot_workspace": 1, "created_at": _now(), "reshoot": _version("reshoot")})

    @property
    def info(self) -> dict[str, Any]:
        """The contents of ``workspace.json``."""
        return json.loads((self.root / "workspace.json").read_text())

    def set_sources(self, paths: Sequence[Path], ground_truth: Path | None = None) -> None:
        """Record the source footage this shoot reads (absolute paths; the files are only ever read).

        Args:
            paths: one file (or image-sequence folder) per camera.
            ground_truth: optional ground truth for the shoot (the sample has one), for evaluation.
        """
        sources = []
        for path in paths:
            path = Path(path).resolve()
            if not path.exists():
                raise StageError(f"source footage {path} does not exist; check the path")
            self._check_outside_managed(path, "workspace")
            sources.append(str(path))
        with self.writing():
            info = self.info
            info["sources"] = sources
            info["ground_truth"] = str(Path(ground_truth).resolve()) if ground_truth else None
            atomic_write_json(self.root / "workspace.json", info)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the workspace's writer lock (re-entrant within this process).

        An OS file lock on ``.reshoot/lock``, so it dies with its process (a killed run never leaves a stale lock).
        Raises :class:`WorkspaceBusy` naming the holder (pid, command, start) if another process holds it, unless
        the workspace was opened with ``wait=True``, in which case it says so and waits.
        """
        held = _HELD.get(self.root)
        if held is not None:
            held[1] += 1
            try:
                yield
            finally:
                held[1] -= 1
            return
        path = self.root / _INTERNAL / "lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            if not _try_lock(handle):
                holder = _describe_holder(path)
                if not self.wait:
                    raise WorkspaceBusy(f"workspace {self.root} is being written by {holder}; wait for it to "
                                        "finish, or pass --wait to start when it does", holder)
                _say(f"workspace {self.root} is being written by {holder}; waiting for it to finish")
                _lock(handle)
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "command": _command_line(), "started_at": _now(),
                                     "host": platform.node()}))
            handle.flush()
            _HELD[self.root] = [handle, 1]
            try:
                yield
            finally:
                del _HELD[self.root]
                handle.seek(0)
                handle.truncate()
                handle.flush()
        finally:
            handle.close()  # closing the file releases the lock

    def stage_dir(self, name: str) -> Path:
        _check_stage_name(name)
        return self.root / name

    def manifest(self, name: str) -> dict[str, Any] | None:
        """The stage's manifest, or None when the stage has not completed."""
        path = self.stage_dir(name) / "manifest.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise StageError(f"{path} is not valid JSON ({exc}); re-run the stage with --force") from exc

    def relative(self, path: Path) -> str:
        """``path`` relative to the workspace when inside it (manifests and configs store these)."""
        path = Path(path).resolve()
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    def status(self, verify: bool = False) -> list[dict[str, Any]]:
        """One row per stage, in pipeline order.

        ``state`` is ``complete``; ``stale`` (a stage it read, directly or not, changed since it ran, or its source
        files did: ``stale_because`` says which); ``broken`` (outputs listed in its manifest are missing or, with
        ``verify``, no longer match their hashes: ``missing_files`` / ``changed_files``); or ``missing``. Each row
        also says whether a run of the stage is ``running`` now or was ``interrupted`` (its temporary folder is
        left), and lists the checkpoints a re-run would ``resume`` from.
        """
        rows, states = [], {}
        for name in STAGES:
            row: dict[str, Any] = {"stage": name, **self._activity(name)}
            manifest = self.manifest(name)
            if manifest is None:
                states[name] = "missing"
                rows.append({**row, "state": "missing"})
                continue
            folder = self.stage_dir(name)
            missing = [rel for rel in manifest.get("outputs", {}) if not (folder / rel).is_file()]
            changed = []
            if verify:
                changed = [rel for rel, digest in manifest.get("outputs", {}).items()
                           if rel not in missing and _hash_file(folder / rel) != digest]
            because = []
            for up, digest in manifest["upstream"].items():
                up_manifest = self.manifest(up)
                if up_manifest is None:
                    because.append(f"{up} is missing")
                elif up_manifest.get("outputs_digest") != digest:
                    because.append(f"{up} changed")
                elif states.get(up) in ("stale", "broken"):
                    because.append(f"{up} is {states[up]}")
            changed_inputs, gone = self._changed_inputs(manifest)
            because += changed_inputs
            if gone:
                row["notes"] = [f"source {g} is not reachable now (what {name} made from it is kept)" for g in gone]
            state = "broken" if missing or changed else "stale" if because else "complete"
            states[name] = state
            rows.append({**row, "state": state, "finished_at": manifest["finished_at"],
                         "total_s": manifest["timings_s"].get("total"), "stale_because": because,
                         "missing_files": missing, "changed_files": changed})
        return rows

    def _changed_inputs(self, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The stage's input files (footage) that differ from when it ran, and those not reachable now (a card or
        drive unplugged: not a change)."""
        changed, gone = [], []
        for path, digest in manifest.get("inputs", {}).items():
            if not Path(path).exists():
                gone.append(path)
            elif self._file_hash(Path(path)) != digest:
                changed.append(f"source {path} changed")
        return changed, gone

    def _activity(self, name: str) -> dict[str, Any]:
        """Whether a run of stage ``name`` is going on or was cut short, and its checkpoints a re-run resumes from."""
        found: dict[str, Any] = {}
        for folder in sorted((self.root / _INTERNAL / "tmp").glob(f"{name}-*")):
            pid = _owner_pid(folder)
            if pid is not None and _alive(pid) and self._locked_by_other():
                found["running"] = pid
            else:
                found["interrupted"] = True
        scratch = self.root / _INTERNAL / "scratch" / name
        if scratch.is_dir():
            kept = [p for p in sorted(scratch.rglob("*")) if p.is_file() and p.name != ".fingerprint"]
            if any(not _set_aside(p) for p in kept):
                found["resume"] = [self.relative(p) for p in kept if not _set_aside(p)]
        return found

    def _locked_by_other(self) -> bool:
        """True when another process holds the writer lock now."""
        if self.root in _HELD:
            return False
        path = self.root / _INTERNAL / "lock"
        if not path.is_file():
            return False
        with open(path, "a+") as handle:
            if _try_lock(handle):
                return False  # closing the handle releases it again
            return True

    def run_stage(
        self,
        name: str,
        config: Any,
        fn: Callable[[StageContext], dict[str, Any]],
        inputs: Sequence[Path] = (),
        upstream: Sequence[str] = (),
        force: bool = False,
        version: int = 1,
    ) -> StageResult:
        """Run stage ``name`` unless it is up to date; return its manifest.

        Args:
            config: the stage's config dataclass (saved in the manifest, paths workspace-relative).
            fn: does the work, writing into ``ctx.out_dir``; returns a JSON-able summary.
            inputs: files or folders (image sequences) outside the workspace that the stage reads, e.g.
                footage: fingerprinted by content, never written.
            upstream: earlier stages whose outputs this stage reads; they must be complete.
            version: bump when the stage's code changes what it writes, so old results re-run.
        """
        with self.writing(), progress_stage(name):
            return self._run_stage(name, config, fn, inputs, upstream, force, version)

    def _run_stage(self, name: str, config: Any, fn: Callable[[StageContext], dict[str, Any]],
                   inputs: Sequence[Path], upstream: Sequence[str], force: bool, version: int) -> StageResult:
        global last_interrupted
        for path in inputs:
            self._check_input(Path(path), name)
        upstream_digests = {}
        rows = {row["stage"]: row for row in self.status()} if upstream else {}
        for up in upstream:
            manifest = self.manifest(up)
            if manifest is None:
                raise StageError(f"stage {name!r} needs stage {up!r}, which has not run in {self.root}; run it first")
            row = rows[up]
            if row["state"] == "broken":
                raise StageError(f"stage {name!r} needs stage {up!r}, whose outputs are missing in {self.root} "
                                 f"({_first(row['missing_files'] or row['changed_files'])}); run it again first: "
                                 f"`reshoot {up} --workspace {self.root}`")
            if row["state"] == "stale":
                raise StageError(f"stage {name!r} needs stage {up!r}, which is out of date in {self.root} "
                                 f"({'; '.join(row['stale_because'])}); re-run it first (`reshoot {up} --workspace "
                                 f"{self.root}`), or the whole chain with `reshoot run`")
            upstream_digests[up] = manifest["outputs_digest"]
        config_json = config_to_json(config, self)
        input_hashes = {str(Path(p).resolve()): self._file_hash(Path(p)) for p in inputs}
        fingerprint = _digest({"stage": name, "version": version, "config": config_json,
                               "inputs": input_hashes, "upstream": upstream_digests})
        final = self.stage_dir(name)
        existing = self.manifest(name)
        if not force and existing and existing.get("fingerprint") == fingerprint and _outputs_present(final, existing):
            return StageResult(name, final, existing, skipped=True)

        tmp = self.root / _INTERNAL / "tmp" / f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for leftover in [*tmp.parent.glob(f"{name}-*"), *(self.root / _INTERNAL / "trash").glob(f"{name}-*")]:
            pid = _owner_pid(leftover)
            if pid is None or pid == os.getpid() or not _alive(pid):  # a killed run's (we hold the lock)
                shutil.rmtree(leftover, ignore_errors=True)
        scratch = self._scratch(name, fingerprint, force)
        later = STAGES[STAGES.index(name) + 1:]
        current_before = {r["stage"] for r in self.status() if r["stage"] in later and r["state"] == "complete"}
        tmp.mkdir(parents=True)
        ctx = StageContext(name, tmp, scratch, self, config)
        started_at, start = _now(), time.perf_counter()
        try:
            summary = fn(ctx)
            ctx.timings_s["total"] = time.perf_counter() - start
            outputs = {p.relative_to(tmp).as_posix(): _hash_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            manifest = {
                "stage": name, "status": "complete", "version": version, "fingerprint": fingerprint,
                "config": config_json, "inputs": input_hashes, "upstream": upstream_digests,
                "outputs": outputs, "outputs_digest": _digest(outputs), "summary": summary or {},
                "timings_s": {k: round(v, 4) for k, v in ctx.timings_s.items()},
                "versions": library_versions(), "started_at": started_at, "finished_at": _now(),
            }
            atomic_write_json(tmp / "manifest.json", manifest)
            replace_dir(tmp, final, self.root / _INTERNAL / "trash")
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, KeyboardInterrupt):
                kept = [p for p in sorted(scratch.rglob("*"))
                        if p.is_file() and p.name != ".fingerprint" and not _set_aside(p)]
                last_interrupted = {"stage": name, "workspace": str(self.root),
                                    "kept": [self.relative(p) for p in kept]}
            if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS and not isinstance(exc, DiskFullError):
                where = Path(exc.filename) if exc.filename else final
                if where.is_relative_to(tmp):  # name the stage folder, not the temporary one it never became
                    where = final / where.relative_to(tmp)
                full = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is used up"
                raise DiskFullError(exc.errno, exc.strerror or os.strerror(exc.errno), where,
                                    f"stage {name!r}: cannot write {where}: {full}; nothing of it was published. "
                                    "Free space on that disk, or use a --workspace on another disk, then run it "
                                    "again") from exc
            raise
        self._keep_set_aside(name, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        return StageResult(name, final, manifest, skipped=False, notes=self._after_run_notes(name, existing, manifest,
                                                                                              current_before))

    def _keep_set_aside(self, name: str, scratch: Path) -> None:
        """Checkpoints a run set aside (unreadable, or another run's) outlive the scratch folder: they move to
        ``.reshoot/set-aside/<stage>/`` (never deleted by reshoot)."""
        for path in [p for p in scratch.rglob("*") if p.is_file() and _set_aside(p)]:
            keep = self.root / _INTERNAL / "set-aside" / name / path.name
            keep.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, keep.with_name(f"{keep.name}-{uuid.uuid4().hex[:8]}") if keep.exists() else keep)

    def _after_run_notes(self, name: str, before: dict[str, Any] | None, after: dict[str, Any],
                         current_before: set[str]) -> tuple[str, ...]:
        """Say when a re-run replaced the shoot's sources and which later stages it made out of date."""
        notes = []
        if before and set(before.get("inputs", {})) != set(after.get("inputs", {})):
            old = sorted(Path(p).name for p in before.get("inputs", {}))
            notes.append(f"{name}: these sources replace the ones it read before ({_first(old)})")
        stale = [r["stage"] for r in self.status() if r["stage"] in current_before and r["state"] == "stale"]
        if stale:
            notes.append(f"{name} changed, so {', '.join(stale)} {'is' if len(stale) == 1 else 'are'} now out of "
                         f"date; re-run {'it' if len(stale) == 1 else 'them'} (`reshoot run` re-runs what is out "
                         "of date)")
        return tuple(notes)

    def _scratch(self, name: str, fingerprint: str, force: bool) -> Path:
        """The stage's resume folder, emptied unless it holds checkpoints of this very job."""
        scratch = self.root / _INTERNAL / "scratch" / name
        stamp = scratch / ".fingerprint"
        if force or not stamp.is_file() or stamp.read_text() != fingerprint:
            if scratch.is_dir():
                self._keep_set_aside(name, scratch)
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            stamp.write_text(fingerprint)
        return scratch

    def _check_input(self, path: Path, stage: str) -> None:
        if not path.resolve().exists():
            raise StageError(f"stage {stage!r}: input {path} does not exist; check the path")
        self._check_outside_managed(path, f"stage {stage!r}")

    def _check_outside_managed(self, path: Path, who: str) -> None:
        resolved = path.resolve()
        managed = [self.root / s for s in STAGES] + [self.root / _INTERNAL]
        if any(resolved.is_relative_to(m) for m in managed):
            raise StageError(
                f"{who}: source {path} lies inside the workspace's stage folders, which reshoot "
                "replaces on re-runs. Keep source footage outside them (e.g. in WS/footage or elsewhere)."
            )

    def _file_hash(self, path: Path) -> str:
        """sha256 of a file (or of a folder's files, names included), cached by path, size and mtime."""
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return _digest({p.relative_to(path).as_posix(): self._file_hash(p) for p in files})
        cache_path = self.root / _INTERNAL / "hash-cache.json"
        try:
            cache = json.loads(cache_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            cache = {}
        st = path.stat()
        key = str(path.resolve())
        entry = cache.get(key)
        if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
            return entry["sha256"]
        digest = _hash_file(path)
        cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        atomic_write_json(cache_path, cache)
        return digest


def config_to_json(config: Any, workspace: Workspace | None = None) -> Any:
    """A config dataclass as JSON-able data; paths inside the workspace become workspace-relative."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_json(getattr(config, f.name), workspace) for f in dataclasses.fields(config)}
    if isinstance(config, Path):
        return workspace.relative(config) if workspace else str(config)
    if isinstance(config, (list, tuple)):
        return [config_to_json(v, workspace) for v in config]
    if isinstance(config, dict):
        return {str(k): config_to_json(v, workspace) for k, v in config.items()}
    return config


def library_versions() -> dict[str, str]:
    """Python, reshoot and the versions of tracked libraries that are loaded in this process."""
    versions = {"python": platform.python_version(), "reshoot": _version("reshoot")}
    loaded = {m.split(".")[0] for m in sys.modules}
    import_names = {"open3d-cpu": "open3d", "opencv-python-headless": "cv2", "pillow": "PIL"}
    for dist in _TRACKED_LIBRARIES:
        if import_names.get(dist, dist) in loaded:
            v = _version(dist)
            if v != "unknown":
                versions[dist] = v
    return versions


def _check_stage_name(name: str) -> None:
    if name not in STAGES:
        raise StageError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")


def _try_lock(handle: Any) -> bool:
    """Take the exclusive lock on an open file without waiting; False if another process holds it."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock(handle: Any) -> None:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _describe_holder(path: Path) -> str:
    """Who holds the lock, from what it wrote in the lock file."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        holder = {}
    if not holder.get("pid"):
        return "another reshoot process"
    return (f"reshoot process {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else "")
            + f" (`{holder.get('command', '?')}`, started {holder.get('started_at', '?')})")


def _command_line() -> str:
    args = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    return " ".join(args)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _owner_pid(folder: Path) -> int | None:
    """The pid in a temporary folder's name (``<stage>-<pid>-<id>``); None for names without one."""
    parts = folder.name.split("-")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_aside(path: Path) -> bool:
    """A checkpoint a run set aside (``*.corrupt``, ``*.other-run``, numbered ``-2``...), not one to resume from."""
    return ".corrupt" in path.name or ".other-run" in path.name


def _first(items: list[str], count: int = 3) -> str:
    return ", ".join(items[:count]) + (f" and {len(items) - count} more" if len(items) > count else "")


def _outputs_present(folder: Path, manifest: dict[str, Any]) -> bool:
    return all((folder / rel).is_file() for rel in manifest.get("outputs", {}))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
