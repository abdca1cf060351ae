"""The ingest stage: camera files in, one synced, frame-accurate shoot in the workspace out.

Writes ``WS/ingest/``::

    footage.json            per camera: metadata, colourspace, sync offset and confidence; the timeline: for
                            every output frame, its time and the source frame of each camera
    frames/<camera>/<frame>.png   COLMAP's rig layout: the same file name is the same instant; sRGB, whatever
                            the camera's colourspace (converted by OpenColorIO: :mod:`reshoot.colour`)
    contact_sheet.png       every camera at a few synced instants, to check the sync by eye
    calibration/cameras.json   imported calibration, for the extracted frames (when given)
    manifest.json

The **shoot clock**: seconds since the reference camera's first frame. A camera's offset is when its
first frame was taken on that clock (positive: it started later than the reference).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from reshoot import colour
from reshoot._deps import require
from reshoot.atomic import atomic_write_json
from reshoot.footage import CameraSource, FootageError, iter_source_frames, probe_source
from reshoot.media import read_source_audio
from reshoot.progress import track
from reshoot.sync import (AudioOffset, CameraClock, SyncError, Timeline, build_timeline, parse_manual_offset,
                          sync_audio, timecode_offsets)
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 1
_SHORT_TAKE_S = 2.0  # a camera shorter than half the longest, by more than this, may be another take


@dataclass(frozen=True)
class IngestConfig:
    """How camera files become a synced shoot."""

    sync: Literal["audio", "timecode", "manual", "none"] = "audio"
    """How to find each camera's start: cross-correlate the audio, read start timecodes, take --offsets values,
    or none (the files already start together, e.g. a synced recording)."""
    names: tuple[str, ...] = ()
    """Camera names, one per source in order; default: the file or folder names."""
    reference: str = ""
    """Camera whose clock the shoot uses (its first frame is time 0); default: the first camera."""
    offsets: tuple[str, ...] = ()
    """For --sync manual: CAMERA=OFFSET, the camera's start on the reference's clock, in seconds (1.5s) or frames
    at that camera's rate (36f), e.g. from a slate. Cameras not named start with the reference."""
    fps: str = ""
    """Output frame rate as a number or ratio (24, 30000/1001); default: the reference camera's."""
    start_s: float | None = None
    """Start of the range to extract, on the shoot clock; default: where all cameras have footage."""
    end_s: float | None = None
    """End of the range (exclusive), on the shoot clock; default: where the first camera stops."""
    step: int = 1
    """Take every step-th output frame."""
    max_frames: int = 0
    """Stop after this many output frames (0: no limit)."""
    scale: float = 1.0
    """Downscale factor for the extracted frames (0.5 halves width and height)."""
    image_format: Literal["png", "jpg"] = "png"
    """Extracted frame format: png (lossless) or jpg (quality 95, smaller and faster)."""
    resample: Literal["nearest", "blend"] = "nearest"
    """Cameras at other frame rates: the nearest frame, or a blend of the two frames around each instant."""
    require_overlap: bool = True
    """Only extract where every camera has footage (else frames outside a camera's footage are skipped)."""
    min_peak_ratio: float = 2.0
    """Audio sync: how far the correlation peak must stand above the next best to be trusted."""
    max_offset_s: float = 0.0
    """Audio sync: the largest start offset to search, in seconds (0: any)."""
    sequence_fps: str = "24"
    """Frame rate of image-sequence sources."""
    calibration: Path | None = None
    """Known calibration to import: caliscope camera_array.toml, a COLMAP model folder, transforms.json or
    reshoot cameras.json."""
    colourspace: str = ""
    """Colourspace every camera recorded in: a name or alias from OpenColorIO's ACES studio config, such as
    S-Log3 S-Gamut3.Cine, ARRI LogC3 (EI800), V-Log V-Gamut, Camera Rec.709 or ACEScg. Frames in another space
    than sRGB are converted to sRGB as they are extracted (no tone mapping: what is brighter than diffuse white
    clips). Default: sRGB for video and PNG/JPEG/TIFF sequences, linear Rec.709 for EXR sequences."""
    camera_colourspace: tuple[str, ...] = ()
    """CAMERA=COLOURSPACE for a camera recorded in another space than --colourspace, such as
    B="S-Log3 S-Gamut3.Cine" (quote a name with spaces)."""

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError(f"--step {self.step}: give a whole number >= 1 (every step-th output frame is taken)")
        if self.max_frames < 0:
            raise ValueError(f"--max-frames {self.max_frames}: give 0 (no limit) or more")
        if not 0 < self.scale <= 1:
            raise ValueError(f"--scale {self.scale:g}: give a factor in (0, 1] (0.5 halves width and height)")
        if self.colourspace:
            colour.footage_colourspace(self.colourspace, "--colourspace")
        for item in self.camera_colourspace:
            camera_id, _, space = item.partition("=")
            if not camera_id or not space:
                raise ValueError(f"--camera-colourspace {item!r}: expected CAMERA=COLOURSPACE, e.g. "
                                 "'B=S-Log3 S-Gamut3.Cine'")
            colour.footage_colourspace(space, f"--camera-colourspace: camera {camera_id!r}")


def run_ingest(workspace: Workspace, sources: Sequence[Path], config: IngestConfig = IngestConfig(),
               force: bool = False) -> StageResult:
    """Probe, sync and extract ``sources`` (one file or image-sequence folder per camera) into ``WS/ingest``."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise FootageError("ingest needs at least one camera file or image-sequence folder")
    if config.names and len(config.names) != len(sources):
        raise FootageError(f"--names gives {len(config.names)} names for {len(sources)} sources; give one per source")
    inputs = list(sources) + ([config.calibration] if config.calibration else [])
    result = workspace.run_stage("ingest", config, lambda ctx: _ingest(ctx, sources, config), inputs=inputs,
                                 force=force, version=_VERSION)
    if [str(Path(s).resolve()) for s in sources] != workspace.info.get("sources"):  # for `reshoot status` and eval
        workspace.set_sources(sources, ground_truth=workspace.info.get("ground_truth"))
    return result


def _ingest(ctx: StageContext, paths: list[Path], config: IngestConfig) -> dict[str, Any]:
    with ctx.timer("probe"):
        cameras = _probe_all(paths, config)
    reference = config.reference or cameras[0].camera_id
    by_id = {c.camera_id: c for c in cameras}
    if reference not in by_id:
        raise FootageError(f"--reference {reference!r} is not a camera; the cameras are "
                           f"{[c.camera_id for c in cameras]}")
    problems = _warnings(cameras)
    spaces = _colourspaces(cameras, config)
    with ctx.timer("sync"):
        offsets, confidence = _sync(cameras, reference, config)
    fps = _fraction(config.fps, "--fps") if config.fps else next(c.fps for c in cameras if c.camera_id == reference)
    clocks = [CameraClock(c.camera_id, offsets[c.camera_id], c.frame_times_s, c.fps) for c in cameras]
    timeline = build_timeline(clocks, fps, config.start_s, config.end_s, config.step, config.require_overlap)
    if config.max_frames:
        timeline = _truncate(timeline, config.max_frames)
    if len(timeline.times_s) == 0:
        raise SyncError(f"the range --start-s {config.start_s} to --end-s {config.end_s} holds no output frame at "
                        f"{fps} fps; the cameras overlap over {timeline.overlap_s[0]:.3f}..{timeline.overlap_s[1]:.3f} s")
    with ctx.timer("extract"):
        sizes = _extract(ctx.out_dir / "frames", cameras, timeline, config, spaces)
    with ctx.timer("contact_sheet"):
        save_png(_sheet(ctx.out_dir / "frames", cameras, timeline, config), ctx.out_dir / "contact_sheet.png")
    calibration = _import_calibration(ctx.out_dir, cameras, sizes, config) if config.calibration else None
    footage = {
        "shoot_clock": "seconds since the reference camera's first frame",
        "reference": reference,
        "sync": {"method": config.sync,
                 "cameras": {c.camera_id: {"offset_s": offsets[c.camera_id], **confidence[c.camera_id]}
                             for c in cameras}},
        "cameras": [{**c.describe(), "extracted_size": sizes[c.camera_id], "colourspace": spaces[c.camera_id]}
                    for c in cameras],
        "colour": {"frames": colour.SRGB, "config": colour.CONFIG_NAME,
                   "converted": [c for c, space in spaces.items() if not _is_srgb_already(space, by_id[c])]},
        "timeline": {"fps": f"{fps.numerator}/{fps.denominator}", "frame_count": len(timeline.times_s),
                     "overlap_s": list(timeline.overlap_s), "times_s": timeline.times_s.tolist(),
                     "source_frames": {k: v.tolist() for k, v in timeline.source_frames.items()},
                     "resample": config.resample},
        "frames": {"layout": "frames/<camera>/<frame:06d>." + config.image_format, "scale": config.scale},
        "calibration": calibration,
        "warnings": problems,
    }
    atomic_write_json(ctx.out_dir / "footage.json", footage)
    return {"cameras": len(cameras), "frames": len(timeline.times_s), "overlap_s": list(timeline.overlap_s),
            "offsets_s": offsets, "sync": footage["sync"], "colourspaces": spaces,
            "converted_to_srgb": footage["colour"]["converted"], "warnings": problems}


def _probe_all(paths: list[Path], config: IngestConfig) -> list[CameraSource]:
    sequence_fps = _fraction(config.sequence_fps, "--sequence-fps")
    names = list(config.names) or [None] * len(paths)
    cameras = [probe_source(p, n, sequence_fps) for p, n in track(list(zip(paths, names)), "probing footage")]
    ids = [c.camera_id for c in cameras]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise FootageError(f"two sources would both be camera {duplicates[0]!r}; name them with --names")
    return cameras


def _warnings(cameras: list[CameraSource]) -> list[str]:
    """Things worth a person's attention that do not stop the ingest (also shown as Python warnings)."""
    problems = []
    longest = max(c.duration_s for c in cameras)
    for c in cameras:
        if c.variable_frame_rate:
            problems.append(f"camera {c.camera_id!r}: {c.path} has a variable frame rate; its frames are mapped by "
                            "their timestamps. Convert it to a constant rate first for frame-exact work.")
        if c.duration_s < 0.5 * longest and longest - c.duration_s > _SHORT_TAKE_S:
            problems.append(f"camera {c.camera_id!r}: {c.path} runs {c.duration_s:.2f} s, less than half the longest "
                            f"camera ({longest:.2f} s): the synced range is limited by it. Check it is the same take.")
    for problem in problems:
        warnings.warn(problem, stacklevel=3)
    return problems


def _colourspaces(cameras: list[CameraSource], config: IngestConfig) -> dict[str, str]:
    """Each camera's colourspace (the config's name): its --camera-colourspace, else --colourspace, else sRGB
    (linear Rec.709 for an EXR sequence)."""
    given = {}
    for item in config.camera_colourspace:
        camera_id, _, space = item.partition("=")
        if camera_id not in {c.camera_id for c in cameras}:
            raise FootageError(f"--camera-colourspace {item!r}: there is no camera {camera_id!r}; the cameras are "
                               f"{[c.camera_id for c in cameras]}")
        given[camera_id] = colour.footage_colourspace(space, f"--camera-colourspace: camera {camera_id!r}")
    default = colour.footage_colourspace(config.colourspace, "--colourspace") if config.colourspace else None
    return {c.camera_id: given.get(c.camera_id) or default or (colour.LINEAR_REC709 if _is_exr(c) else colour.SRGB)
            for c in cameras}


def _is_exr(camera: CameraSource) -> bool:
    """An EXR sequence: reshoot reads its values clipped to [0, 1] and sRGB-encoded (:func:`read_image`)."""
    return camera.kind == "sequence" and camera.codec == "exr"


def _is_srgb_already(space: str, camera: CameraSource) -> bool:
    return space == (colour.LINEAR_REC709 if _is_exr(camera) else colour.SRGB)


def _sync(cameras: list[CameraSource], reference: str, config: IngestConfig) -> tuple[dict, dict]:
    by_id = {c.camera_id: c for c in cameras}
    if config.sync == "none":
        return {c: 0.0 for c in by_id}, {c: {"confidence": "assumed"} for c in by_id}
    if config.sync == "manual":
        given = {}
        for item in config.offsets:
            name, _, value = item.partition("=")
            if name not in by_id or not value:
                raise FootageError(f"--offsets {item!r}: expected CAMERA=OFFSET with a camera from {sorted(by_id)}")
            given[name] = parse_manual_offset(value, by_id[name].fps)
        base = given.get(reference, 0.0)  # offsets are re-based on the reference; unnamed cameras start with it
        return ({c: given.get(c, base) - base for c in by_id},
                {c: {"confidence": "given" if c in given else "assumed 0"} for c in by_id})
    if config.sync == "timecode":
        offsets = timecode_offsets({c: (s.start_timecode, s.fps) for c, s in by_id.items()}, reference)
        return offsets, {c: {"confidence": "timecode", "start_timecode": by_id[c].start_timecode} for c in by_id}
    signals = {c.camera_id: read_source_audio(c) for c in track(cameras, "reading audio")}
    found: dict[str, AudioOffset] = sync_audio(signals, reference, max_offset_s=config.max_offset_s or None,
                                               min_peak_ratio=config.min_peak_ratio)
    ref_audio = by_id[reference].audio_start_s
    offsets = {c: found[c].offset_s - by_id[c].audio_start_s + ref_audio for c in by_id}
    return offsets, {c: {"confidence": "audio", "peak_ratio": _finite(found[c].peak_ratio),
                         "peak_value": found[c].peak_value} for c in by_id}


def _extract(folder: Path, cameras: list[CameraSource], timeline: Timeline, config: IngestConfig,
             spaces: dict[str, str]) -> dict:
    """Write every camera's frame for every output frame, in sRGB (converted from the camera's colourspace in
    ``spaces``); returns each camera's extracted (width, height)."""
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if config.image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    sizes = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        writes = []
        for cam in cameras:
            out = folder / cam.camera_id
            out.mkdir(parents=True)
            size = (max(1, round(cam.width * config.scale)), max(1, round(cam.height * config.scale)))
            sizes[cam.camera_id] = list(size)
            if config.resample == "blend":
                idx, _, weight = timeline.blend_frames(cam.camera_id)
            else:
                idx = timeline.source_frames[cam.camera_id]
                weight = np.zeros(len(idx))
            # one job per output frame: (last source frame it needs, output index, first source frame, weight of next)
            jobs = sorted((int(s) + (w > 0), out_idx, int(s), float(w))
                          for out_idx, (s, w) in enumerate(zip(idx, weight)) if s >= 0)
            needed = sorted({j[2] for j in jobs} | {j[0] for j in jobs})
            cache: dict[int, np.ndarray] = {}
            pointer = 0
            for src, image in track(iter_source_frames(cam, needed), f"extracting {cam.camera_id}", total=len(needed)):
                cache[src] = colour.footage_to_srgb(image, spaces[cam.camera_id], srgb_encoded=_is_exr(cam))
                while pointer < len(jobs) and jobs[pointer][0] <= src:
                    _, out_idx, first, w = jobs[pointer]
                    pointer += 1
                    frame = cache[first] if w == 0 else _blend(cache[first], cache[first + 1], w)
                    if size != (cam.width, cam.height):
                        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                    path = out / f"{out_idx:06d}.{config.image_format}"
                    writes.append(pool.submit(_write, cv2, path, frame, params))
                keep_from = jobs[pointer][2] if pointer < len(jobs) else src + 1
                for old in [k for k in cache if k < keep_from]:
                    del cache[old]
        for write in writes:
            write.result()
    return sizes


def _blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    mixed = (1 - weight) * a.astype(np.float32) + weight * b.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _write(cv2, path: Path, rgb: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f"could not write {path}; is the disk full?")


def _sheet(folder: Path, cameras: list[CameraSource], timeline: Timeline, config: IngestConfig):
    from PIL import Image

    count = len(timeline.times_s)
    picks = sorted(set(np.linspace(0, count - 1, min(4, count)).round().astype(int).tolist()))
    rows = {}
    for cam in cameras:
        cells = []
        for i in picks:
            path = folder / cam.camera_id / f"{i:06d}.{config.image_format}"
            if path.is_file():
                cells.append((f"frame {i}  t={timeline.times_s[i]:.3f}s", np.asarray(Image.open(path).convert("RGB"))))
        if cells:
            rows[cam.camera_id] = cells
    return contact_sheet(rows, title=f"ingest: {len(cameras)} cameras synced by {config.sync}, "
                                     f"{count} frames at {float(timeline.fps):.3f} fps")


def _import_calibration(out: Path, cameras: list[CameraSource], sizes: dict, config: IngestConfig) -> dict:
    from reshoot.calibration import match_cameras, read_calibration

    calibration = read_calibration(config.calibration)
    matched = match_cameras(calibration, [c.camera_id for c in cameras])
    for cam in cameras:
        i = matched.index(cam.camera_id)
        if tuple(matched.image_size[i]) != (cam.width, cam.height):
            raise FootageError(
                f"camera {cam.camera_id!r}: the calibration {calibration.source} is for "
                f"{int(matched.image_size[i, 0])}x{int(matched.image_size[i, 1])} "
                f"images but {cam.path} is {cam.width}x{cam.height}; calibrate at the footage's resolution")
    scaled = matched.resized(np.array([sizes[c] for c in matched.camera_ids]))
    atomic_write_json(out / "calibration" / "cameras.json", {**scaled.to_json(), "source": calibration.source,
                                                             "kind": calibration.kind, "notes": list(calibration.notes)})
    return {"source": calibration.source, "kind": calibration.kind, "notes": list(calibration.notes),
            "file": "calibration/cameras.json"}


def _truncate(timeline: Timeline, count: int) -> Timeline:
    return Timeline(timeline.fps, timeline.times_s[:count], {k: v[:count] for k, v in timeline.source_frames.items()},
                    {k: v[:count] for k, v in timeline.next_weight.items()}, timeline.overlap_s)


def _fraction(text: str, flag: str) -> Fraction:
    try:
        value = Fraction(text).limit_denominator(1001) if "/" in text else Fraction(str(float(text))).limit_denominator(
            1001)
    except (ValueError, ZeroDivisionError):
        raise FootageError(f"{flag} {text!r} is not a frame rate; give e.g. 24, 25, 29.97 or 30000/1001") from None
    if value <= 0:
        raise FootageError(f"{flag} {text!r} must be positive")
    if any(abs(float(value) - ntsc) < 0.005 for ntsc in (23.976, 29.97, 47.952, 59.94)):
        value = Fraction(round(float(value) * 1.001) * 1000, 1001)  # the NTSC rates, exactly
    return value


def _finite(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)
