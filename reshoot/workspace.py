"""The workspace: one shoot's folder on disk, in which every stage writes its own folder and manifest.

Layout (documented for users in ``docs/workspace.md``)::

    WS/
      workspace.json          what this workspace is: reshoot version, the source footage it reads
      <stage>/                one folder per stage: ingest, register, reconstruct, path, guide, refine, export
        manifest.json         written last: config, input fingerprints, versions, timings, outputs
        ...                   the stage's own files
      .reshoot/tmp/           a stage's folder while it is being written (moved into place at the end)
      .reshoot/scratch/<stage>/  checkpoints a stage may resume from after a kill (same config and
                              inputs only; cleared by ``force``); removed on success
      .reshoot/trash/         an old stage folder on its way out
      .reshoot/hash-cache.json  file fingerprints, keyed by path, size and modification time

Rules every stage gets from :meth:`Workspace.run_stage`:

- a stage whose config, input files and upstream stages are unchanged is skipped (``force`` re-runs);
- a stage is written in a temporary folder and moved into place whole, manifest included, so a
  killed run leaves the previous complete folder or none, never a half-written one that looks done;
- input files (the user's footage) are only ever read: they may not lie inside the workspace's
  stage folders, which reshoot replaces.
"""

from __future__ import annotations

import dataclasses
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

from reshoot.atomic import atomic_write_json, replace_dir

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


class Workspace:
    """One shoot's workspace folder. Creating it makes the folder and ``workspace.json``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
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
        info = self.info
        info["sources"] = sources
        info["ground_truth"] = str(Path(ground_truth).resolve()) if ground_truth else None
        atomic_write_json(self.root / "workspace.json", info)

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

    def status(self) -> list[dict[str, Any]]:
        """One row per stage: ``state`` is complete, stale (an upstream stage changed since) or missing."""
        rows = []
        for name in STAGES:
            manifest = self.manifest(name)
            if manifest is None:
                rows.append({"stage": name, "state": "missing"})
                continue
            stale = [up for up, digest in manifest["upstream"].items()
                     if (self.manifest(up) or {}).get("outputs_digest") != digest]
            rows.append({"stage": name, "state": "stale" if stale else "complete",
                         "finished_at": manifest["finished_at"], "total_s": manifest["timings_s"].get("total"),
                         "stale_because": stale})
        return rows

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
        for path in inputs:
            self._check_input(Path(path), name)
        upstream_digests = {}
        for up in upstream:
            manifest = self.manifest(up)
            if manifest is None:
                raise StageError(f"stage {name!r} needs stage {up!r}, which has not run in {self.root}; run it first")
            upstream_digests[up] = manifest["outputs_digest"]
        config_json = config_to_json(config, self)
        input_hashes = {str(Path(p).resolve()): self._file_hash(Path(p)) for p in inputs}
        fingerprint = _digest({"stage": name, "version": version, "config": config_json,
                               "inputs": input_hashes, "upstream": upstream_digests})
        final = self.stage_dir(name)
        existing = self.manifest(name)
        if not force and existing and existing.get("fingerprint") == fingerprint and _outputs_present(final, existing):
            return StageResult(name, final, existing, skipped=True)

        tmp = self.root / _INTERNAL / "tmp" / f"{name}-{uuid.uuid4().hex[:8]}"
        for leftover in [*tmp.parent.glob(f"{name}-*"), *(self.root / _INTERNAL / "trash").glob(f"{name}-*")]:
            shutil.rmtree(leftover, ignore_errors=True)  # from a run that was killed
        scratch = self._scratch(name, fingerprint, force)
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
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(scratch, ignore_errors=True)
        return StageResult(name, final, manifest, skipped=False)

    def _scratch(self, name: str, fingerprint: str, force: bool) -> Path:
        """The stage's resume folder, emptied unless it holds checkpoints of this very job."""
        scratch = self.root / _INTERNAL / "scratch" / name
        stamp = scratch / ".fingerprint"
        if force or not stamp.is_file() or stamp.read_text() != fingerprint:
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
