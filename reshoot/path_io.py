"""Camera paths to and from other tools' files: nerfstudio ``camera_path.json`` and Nuke ``.chan``.

reshoot's own JSON is :meth:`CameraPath.save` / :meth:`CameraPath.load`. Every writer here is
atomic; every reader names the file and the line or entry it could not read.

**nerfstudio camera_path.json** (as nerfstudio's viewer writes it, ``nerfstudio/viewer/render_panel.py``,
and ``ns-render camera-path`` reads it, ``nerfstudio/cameras/camera_paths.py:get_path_from_json``):
``camera_type`` ("perspective"), ``render_width``, ``render_height``, ``fps``, ``seconds``,
``smoothness_value``, ``is_cycle``, ``crop`` (null), ``keyframes`` (the viewer's, for editing: ``matrix``,
``fov``, ``aspect``, transition times) and ``camera_path``: one entry per output frame with
``camera_to_world`` (the 4x4 camera-to-world matrix flattened row by row, OpenGL camera axes: +y
up, +z backward), ``fov`` (the *vertical* field of view in degrees; the focal length in pixels is
``render_height / 2 / tan(fov / 2)``, the principal point the image centre), ``aspect``
(width / height) and, when a timeline is given, ``render_time`` (the scene time in [0, 1] that
nerfstudio's dynamic models render at: reshoot's ``Timeline.shot_time``). The world is the one of
reshoot's ``register/transforms.json`` (reshoot's world, no ``applied_transform``). A model trained by
nerfstudio itself lives in nerfstudio's re-oriented, re-scaled world (its ``dataparser_transforms.json``),
which is not undone here. A ``reshoot`` block keeps what nerfstudio has no place for (exact fps,
sensor width, timeline frames, keyframes), so that reshoot reads back exactly what it wrote.

**Nuke .chan** (Camera node, File > Export/Import chan file): plain text, one line per frame, columns
separated by white space: ``frame tx ty tz rx ry rz vfov``: the frame number, the camera's
``translate`` and ``rotate`` (degrees) knobs, and the vertical field of view in degrees (cameras
only; Nuke sets ``focal`` from it with the camera's vertical aperture). The conventions are Nuke's
defaults: a +Y-up world (reshoot's +Z-up world turned with :data:`reshoot.cameras.ZUP_TO_YUP`,
distances in reshoot's units), camera looking down -Z with +Y up, ``rot_order ZXY`` (the matrix
``Ry @ Rx @ Rz``), ``xform_order SRT``, no scale or pivot. To get the same picture in Nuke, set the
Camera's ``haperture`` to the path's sensor width and ``vaperture`` to ``sensor width * height / width``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.atomic import atomic_write_json, atomic_write_text
from reshoot.camera_path import CameraPath, Keyframe, PathError, Timeline, read_json
from reshoot.cameras import (OPENCV_TO_OPENGL, focal_mm_from_px, focal_px_from_fov_deg, focal_px_from_mm,
                             fov_deg_from_focal_px, nuke_camera_transform, world_to_camera_from_nuke)

#: Rates that float fps values in other tools' files stand for.
_NTSC_RATES = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(48000, 1001), Fraction(60000, 1001))


# ---- nerfstudio -----------------------------------------------------------------------------------


def nerfstudio_camera_path(camera_path: CameraPath, timeline: Timeline | None = None) -> dict[str, Any]:
    """The ``camera_path.json`` dictionary of a path (see the module docstring); ``render_time`` needs ``timeline``."""
    width, height = camera_path.image_size
    c2w = np.linalg.inv(camera_path.world_to_camera) @ OPENCV_TO_OPENGL
    fov = camera_path.vertical_fov_deg
    times = None if timeline is None else camera_path.shot_times(timeline)
    entries = []
    for i in range(len(camera_path)):
        entry = {"camera_to_world": c2w[i].flatten().tolist(), "fov": float(fov[i]), "aspect": width / height}
        if times is not None:
            entry["render_time"] = float(times[i])
        entries.append(entry)
    keyframes, previous = [], None
    for key in camera_path.keyframes:
        key_c2w = np.linalg.inv(key.world_to_camera) @ OPENCV_TO_OPENGL
        key_fov = float(fov_deg_from_focal_px(focal_px_from_mm(key.focal_mm, camera_path.sensor_width_mm, width), height))
        item = {"matrix": key_c2w.flatten().tolist(), "fov": key_fov, "aspect": width / height,
                "override_transition_enabled": previous is not None,
                "override_transition_sec": None if previous is None else (key.frame - previous) / float(camera_path.fps)}
        if timeline is not None:
            item["render_time"] = float(np.clip(timeline.shot_time(key.timeline_frame), 0.0, 1.0))
            item["override_time_enabled"] = True
        keyframes.append(item)
        previous = key.frame
    own = camera_path.to_json()
    reshoot_block = {k: own[k] for k in ("reshoot_camera_path", "name", "fps", "sensor_width_mm", "start_timecode",
                                         "keyframes")}
    reshoot_block["timeline_frames"] = camera_path.timeline_frames.tolist()
    return {
        "camera_type": "perspective",
        "render_height": height,
        "render_width": width,
        "camera_path": entries,
        "fps": float(camera_path.fps),
        "seconds": len(camera_path) / float(camera_path.fps),
        "smoothness_value": 0.0,
        "is_cycle": False,
        "crop": None,
        "default_fov": float(fov[0]) if len(fov) else 50.0,
        "default_transition_sec": 1.0,
        "keyframes": keyframes,
        "reshoot": reshoot_block,
    }


def write_nerfstudio_camera_path(path: Path, camera_path: CameraPath, timeline: Timeline | None = None) -> None:
    """Write :func:`nerfstudio_camera_path` to ``path`` atomically (for ``ns-render camera-path``)."""
    atomic_write_json(Path(path), nerfstudio_camera_path(camera_path, timeline))


def read_nerfstudio_camera_path(
    file: Path,
    timeline: Timeline,
    name: str | None = None,
    sensor_width_mm: float | None = None,
) -> CameraPath:
    """A :class:`CameraPath` from a nerfstudio ``camera_path.json``: one output frame per ``camera_path`` entry.

    Lenses become mm on ``sensor_width_mm`` (default the file's reshoot block, else 36). Timeline
    frames come from the reshoot block, else from every entry's ``render_time``
    (``t * (frame_count - 1)``), else from the frame rates (entry ``i`` at ``i * timeline.fps / fps``).
    """
    file = Path(file)
    data = read_json(file)
    block = data.get("reshoot") if isinstance(data.get("reshoot"), dict) else {}
    if data.get("camera_type", "perspective") != "perspective":
        raise PathError(f"{file}: camera_type {data['camera_type']!r}; reshoot reads perspective camera paths only")
    try:
        width, height = int(data["render_width"]), int(data["render_height"])
        entries = data["camera_path"]
    except (KeyError, TypeError, ValueError) as exc:
        raise PathError(f"{file}: not a nerfstudio camera_path.json: missing or bad {exc}; it needs "
                        "'render_width', 'render_height' and a 'camera_path' list") from None
    if not isinstance(entries, list) or not entries:
        raise PathError(f"{file}: 'camera_path' must be a non-empty list of cameras")
    poses, fovs = [], []
    for idx, entry in enumerate(entries):
        pose, fov = _nerfstudio_entry(entry, f"{file}: camera_path entry {idx}")
        poses.append(pose)
        fovs.append(fov)
    sensor = float(sensor_width_mm if sensor_width_mm is not None else block.get("sensor_width_mm", 36.0))
    focal_mm = focal_mm_from_px(focal_px_from_fov_deg(np.array(fovs), height), sensor, width)
    fps = Fraction(block["fps"]) if "fps" in block else _fps_from_float(data.get("fps"), timeline.fps, file)
    tl = block.get("timeline_frames")
    if not (isinstance(tl, list) and len(tl) == len(entries)):
        if all(isinstance(e, dict) and "render_time" in e for e in entries):
            tl = [float(e["render_time"]) * (timeline.frame_count - 1) for e in entries]
        else:
            tl = [float(i * timeline.fps / fps) for i in range(len(entries))]
    keys = tuple(Keyframe(k["frame"], k["world_to_camera"], k["focal_mm"], k["timeline_frame"])
                 for k in block.get("keyframes", []))
    return CameraPath(name or block.get("name") or file.stem, np.array(poses), focal_mm, np.array(tl, dtype=np.float64),
                      (width, height), fps, sensor, block.get("start_timecode", timeline.start_timecode), keys)


def _nerfstudio_entry(entry: Any, where: str) -> tuple[np.ndarray, float]:
    """World-to-camera pose (OpenCV axes) and vertical fov of one ``camera_path`` entry."""
    try:
        c2w_gl = np.array(entry["camera_to_world"], dtype=np.float64).reshape(4, 4)
        fov = float(entry["fov"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PathError(f"{where}: needs 'camera_to_world' (16 numbers) and 'fov' (degrees); "
                        f"{type(exc).__name__}: {exc}") from None
    if not np.isfinite(c2w_gl).all() or not 0 < fov < 180:
        raise PathError(f"{where}: camera_to_world must be finite and fov in (0, 180) degrees, got fov = {fov}")
    R = c2w_gl[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-5 or np.linalg.det(R) < 0:
        raise PathError(f"{where}: camera_to_world's 3x3 part is not a rotation (scaled or mirrored); "
                        "reshoot reads rigid camera poses only")
    return np.linalg.inv(c2w_gl @ OPENCV_TO_OPENGL), fov


def _fps_from_float(value: Any, default: Fraction, file: Path) -> Fraction:
    """A file's float frame rate as an exact one (23.976 -> 24000/1001); ``default`` when absent."""
    if value is None:
        return default
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise PathError(f"{file}: fps {value!r} is not a number") from None
    if not (math.isfinite(rate) and rate > 0):
        raise PathError(f"{file}: fps = {value!r}; it must be > 0")
    for exact in _NTSC_RATES:
        if abs(rate - float(exact)) < 1e-3:
            return exact
    return Fraction(rate).limit_denominator(1001)


# ---- Nuke .chan ---------------------------------------------------------------------------------


def write_chan(path: Path, camera_path: CameraPath, first_frame: int = 1) -> None:
    """Write a Nuke ``.chan`` file: ``frame tx ty tz rx ry rz vfov`` per output frame, tab-separated.

    Output frame ``i`` is chan frame ``first_frame + i``; numbers have 12 significant digits;
    conventions as in the module docstring (+Y-up world, ``rot_order ZXY``, degrees, vertical fov).
    """
    translate, rotate = nuke_camera_transform(camera_path.world_to_camera)
    fov = camera_path.vertical_fov_deg
    lines = []
    for i in range(len(camera_path)):
        values = (*translate[i], *rotate[i], fov[i])
        lines.append("\t".join([str(first_frame + i), *(_number(v) for v in values)]))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def _number(value: float) -> str:
    text = f"{float(value):.12g}"
    return "0" if text == "-0" else text


def read_chan(
    file: Path,
    timeline: Timeline,
    image_size: tuple[int, int],
    fps: Fraction,
    sensor_width_mm: float = 36.0,
    name: str | None = None,
    focal_mm: float | None = None,
    first_frame: int | None = None,
) -> CameraPath:
    """A :class:`CameraPath` from a Nuke ``.chan`` file, one output frame per line.

    Lines hold ``frame tx ty tz rx ry rz [vfov]`` (blank lines and ``#`` comments are skipped);
    frames must be consecutive whole numbers. The vertical field of view gives the lens on
    ``sensor_width_mm`` for ``image_size``; a file without it (an Axis's) needs ``focal_mm``.
    ``first_frame`` is the chan frame that shows timeline frame 0 (default the file's first frame);
    chan frame ``f`` shows timeline frame ``(f - first_frame) * timeline.fps / fps``.
    """
    file = Path(file)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise PathError(f"{file} not found") from None
    rows, frames, columns = [], [], None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{file}, line {lineno}"
        tokens = stripped.split()
        if len(tokens) not in (7, 8):
            raise PathError(f"{where}: expected 8 numbers (frame tx ty tz rx ry rz vertical_fov_deg), or 7 without "
                            f"the field of view; found {len(tokens)}: {stripped!r}")
        if columns is not None and len(tokens) != columns:
            raise PathError(f"{where}: {len(tokens)} columns after lines with {columns}; every line needs the same")
        columns = len(tokens)
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise PathError(f"{where}: not all numbers: {stripped!r}") from None
        if not all(math.isfinite(v) for v in values) or not values[0].is_integer():
            raise PathError(f"{where}: the frame must be a whole number and every value finite: {stripped!r}")
        if frames and values[0] != frames[-1] + 1:
            raise PathError(f"{where}: frame {values[0]:g} follows frame {frames[-1]:g}; frames must be consecutive")
        if columns == 8 and not 0 < values[7] < 180:
            raise PathError(f"{where}: vertical field of view {values[7]:g} degrees; it must lie in (0, 180)")
        frames.append(values[0])
        rows.append(values[1:])
    if not rows:
        raise PathError(f"{file}: no frames in the file")
    data = np.array(rows)
    width, height = (int(v) for v in image_size)
    if columns == 8:
        lens = focal_mm_from_px(focal_px_from_fov_deg(data[:, 6], height), sensor_width_mm, width)
    elif focal_mm is None:
        raise PathError(f"{file}: no field-of-view column (7 columns: an Axis, not a Camera); give the lens with --focal-mm")
    else:
        lens = np.full(len(rows), float(focal_mm))
    first = frames[0] if first_frame is None else first_frame
    timeline_frames = (np.array(frames) - first) * float(timeline.fps / Fraction(fps))
    poses = world_to_camera_from_nuke(data[:, 0:3], data[:, 3:6])
    return CameraPath(name or file.stem, poses, lens, timeline_frames, (width, height), fps, sensor_width_mm,
                      timeline.start_timecode)
