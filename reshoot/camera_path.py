"""Camera paths: the camera nobody filmed, one pose and lens per output frame, tied to the performance.

A :class:`CameraPath` holds, for each output frame ``i`` of the new shot, a pose (reshoot's
convention: world-to-camera, OpenCV axes, see :mod:`reshoot.cameras`), a lens in mm on a sensor of
``sensor_width_mm`` (the horizontal film back; square pixels, principal point at the image centre)
and ``timeline_frames[i]``: which frame of the ingested footage's timeline the new camera shows
then (by default output frame ``i`` shows timeline frame ``i``; other values slow, speed or freeze
the performance). The splat scene is rendered at the normalised time ``Timeline.shot_time``.

Paths are made from keyframes with :meth:`CameraPath.from_keyframes`, or by the builders in
:mod:`reshoot.path_builders` (overhead, dolly, orbit, offset, between), which take their defaults
from the registered rig. File formats other than reshoot's own JSON live in :mod:`reshoot.path_io`
(nerfstudio ``camera_path.json``, Nuke ``.chan``). Both modules' public names can also be reached
from here (``reshoot.camera_path.overhead_path``, ``reshoot.camera_path.read_chan``, ...): they are
loaded when first asked for, since those modules import this one.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator
from scipy.spatial.transform import Rotation, RotationSpline

from reshoot.atomic import atomic_write_json
from reshoot.cameras import Cameras, focal_px_from_mm, fov_deg_from_focal_px
from reshoot.sync import _exact_fps, parse_timecode

#: Version of reshoot's camera path JSON; :meth:`CameraPath.from_json` refuses newer files.
PATH_FORMAT_VERSION = 1
#: Horizontal fields of view a path may have, and the ones that earn a warning.
_FOV_LIMITS_DEG = (1.0, 170.0)
_FOV_WARN_DEG = (5.0, 120.0)
_SIZE_LIMITS_PX = (16, 16384)
_DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))


#: Public names defined in the builder and file-format modules, re-exported lazily (see ``__getattr__``).
_ELSEWHERE = {
    **dict.fromkeys(("overhead_path", "overhead_pose", "overhead_parameters", "dolly_path", "orbit_path",
                     "offset_path", "between_path", "rig_centre", "rig_radius", "set_camera_focal_mm",
                     "smooth_track"), "reshoot.path_builders"),
    **dict.fromkeys(("nerfstudio_camera_path", "write_nerfstudio_camera_path", "read_nerfstudio_camera_path",
                     "write_chan", "read_chan"), "reshoot.path_io"),
}


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PathError(ValueError):
    """A camera path, or a file holding one, is not usable as given; the message says what to do."""


def read_json(file: Path, missing_hint: str = "") -> dict[str, Any]:
    """A JSON object from ``file``, or a PathError naming the file (``missing_hint`` is added when it is absent)."""
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise PathError(f"{file} not found{missing_hint}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PathError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PathError(f"{file}: expected a JSON object, found {type(data).__name__}")
    return data


# ---- the footage timeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """The ingested footage's timeline: frame i of the shot timeline is what every camera filmed at times_s[i].

    Attributes:
        fps: the timeline's exact frame rate.
        frame_count: number of timeline frames (>= 1).
        start_timecode: ``HH:MM:SS:FF`` (``;`` before FF for drop-frame) of timeline frame 0: the
            reference camera's start timecode plus the frames from its first frame to the
            timeline's first; None when the reference camera had no timecode.
    """

    fps: Fraction
    frame_count: int
    start_timecode: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fps", _exact_fps(self.fps, "Timeline"))
        if int(self.frame_count) != self.frame_count or self.frame_count < 1:
            raise PathError(f"Timeline: frame_count must be a whole number >= 1, got {self.frame_count!r}")
        object.__setattr__(self, "frame_count", int(self.frame_count))
        if self.start_timecode is not None:
            parse_timecode(self.start_timecode, self.fps)  # raises a ValueError naming it when unreadable

    @classmethod
    def from_workspace(cls, workspace_root: Path) -> Timeline:
        """Read ``WS/ingest/footage.json``: ``timeline.fps``, ``timeline.frame_count``, and frame 0's timecode."""
        path = Path(workspace_root) / "ingest" / "footage.json"
        if not path.is_file():
            raise PathError(f"{path} not found: the workspace has no ingested footage; run `reshoot ingest` first")
        try:
            footage = json.loads(path.read_text())
            timeline = footage["timeline"]
            fps, frame_count = Fraction(timeline["fps"]), int(timeline["frame_count"])
            first_s = float(timeline["times_s"][0]) if timeline.get("times_s") else 0.0
            reference = footage["reference"]
            cameras = {c["camera_id"]: c for c in footage["cameras"]}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PathError(f"{path} is not a footage.json reshoot can read ({type(exc).__name__}: {exc}); "
                            "run `reshoot ingest` again") from None
        if reference not in cameras:
            raise PathError(f"{path}: reference camera {reference!r} is not among the cameras {list(cameras)}; "
                            "run `reshoot ingest` again")
        ref = cameras[reference]
        start = None
        if ref.get("start_timecode"):
            try:
                start = _timeline_start_timecode(ref["start_timecode"], Fraction(ref.get("fps") or fps), fps, first_s)
            except ValueError as exc:
                raise PathError(f"{path}: reference camera {reference!r}: {exc}") from None
        try:
            return cls(fps, frame_count, start)
        except ValueError as exc:
            raise PathError(f"{path}: {exc}; run `reshoot ingest` again") from None

    def shot_time(self, frame: float | np.ndarray) -> float | np.ndarray:
        """Normalised scene time ``frame / (frame_count - 1)`` (0 when there is one frame): the splat scene's ``t``."""
        value = np.asarray(frame, dtype=np.float64)
        t = value / (self.frame_count - 1) if self.frame_count > 1 else np.zeros_like(value)
        return float(t) if t.ndim == 0 else t

    def timecode(self, frame: int) -> str | None:
        """Timecode of timeline frame ``frame`` (whole frames), or None when the footage had none."""
        if self.start_timecode is None:
            return None
        if int(frame) != frame:
            raise PathError(f"Timeline.timecode: frame must be a whole number, got {frame!r}")
        start = round(Fraction(parse_timecode(self.start_timecode, self.fps)) * self.fps)
        return format_timecode(start + int(frame), self.fps, drop_frame=_is_drop_frame(self.start_timecode))


def _is_drop_frame(timecode: str) -> bool:
    """Whether a timecode is written drop-frame (``;``, ``.`` or ``,`` before the frames, as ``sync`` reads it)."""
    return re.search(r"[;.,]\d{2,3}$", timecode.strip()) is not None


def _timeline_start_timecode(ref_timecode: str, ref_fps: Fraction, fps: Fraction, first_s: float) -> str:
    """The reference camera's start timecode plus ``first_s`` (timeline frame 0 on the shoot clock), at ``fps``."""
    start_s = Fraction(parse_timecode(ref_timecode, ref_fps))
    if ref_fps == fps:
        frame = round(start_s * fps) + round(first_s * fps)
    else:
        frame = round((start_s + Fraction(first_s)) * fps)
    return format_timecode(frame, fps, drop_frame=_is_drop_frame(ref_timecode) and fps in _DROP_FRAME_RATES)


def format_timecode(frame: int, fps: Fraction, drop_frame: bool = False) -> str:
    """SMPTE timecode of frame number ``frame`` counted from ``00:00:00:00``; inverse of ``sync.parse_timecode``.

    Non-drop counts ``round(fps)`` frames a second (``HH:MM:SS:FF``); drop-frame (only at 29.97 and
    59.94, ``HH:MM:SS;FF``) skips frame numbers 0-1 (0-3) at each minute not divisible by 10.
    Wraps at 24 hours.
    """
    fps = _exact_fps(fps, "format_timecode")
    nominal = round(fps)
    frame = int(frame)
    if drop_frame:
        if fps not in _DROP_FRAME_RATES:
            raise PathError(f"drop-frame timecode exists only at 29.97 and 59.94 fps, not {fps} fps")
        dropped = nominal // 15
        per_10_min, per_min = nominal * 600 - 9 * dropped, nominal * 60 - dropped
        frame %= per_10_min * 144
        tens, rest = divmod(frame, per_10_min)
        frame += 9 * dropped * tens + (dropped * ((rest - dropped) // per_min) if rest > dropped else 0)
    else:
        frame %= nominal * 86_400
    seconds, ff = divmod(frame, nominal)
    hh, rest_s = divmod(seconds, 3600)
    mm, ss = divmod(rest_s, 60)
    width = len(str(nominal - 1))
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop_frame else ':'}{ff:0{width}d}"


# ---- keyframes and paths ------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyframe:
    """One key of a camera move.

    Attributes:
        frame: output frame of the new shot this key sits on.
        world_to_camera: the pose there, OpenCV axes.  # [4, 4]
        focal_mm: lens in mm (on the path's sensor width).
        timeline_frame: footage timeline frame shown at this key (the performance time).
    """

    frame: float
    world_to_camera: np.ndarray  # [4, 4]
    focal_mm: float
    timeline_frame: float

    def __post_init__(self) -> None:
        pose = np.array(self.world_to_camera, dtype=np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise PathError(f"Keyframe at frame {self.frame}: world_to_camera: expected a finite [4, 4] pose, "
                            f"got shape {list(pose.shape)}")
        pose.setflags(write=False)
        object.__setattr__(self, "world_to_camera", pose)
        for name in ("frame", "focal_mm", "timeline_frame"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyframe):
            return NotImplemented
        return (self.frame, self.focal_mm, self.timeline_frame) == (other.frame, other.focal_mm, other.timeline_frame) \
            and np.array_equal(self.world_to_camera, other.world_to_camera)

    __hash__ = None  # holds an array


@dataclass(frozen=True, eq=False)
class CameraPath:
    """A new camera over the shot: one pose, lens and performance time per output frame.

    Attributes:
        name: what the path is called (camera ids are ``f"{name}.{i:04d}"``).
        world_to_camera: poses, OpenCV axes, reshoot's world.  # [F, 4, 4]
        focal_mm: lens per frame, in mm on ``sensor_width_mm``.  # [F]
        timeline_frames: footage timeline frame shown at each output frame (fractional frames lie
            between two footage frames).  # [F]
        image_size: ``(width, height)`` of the output frames in pixels.
        fps: the new shot's exact frame rate.
        sensor_width_mm: horizontal film back; with ``focal_mm`` it gives the field of view.
        start_timecode: timecode of output frame 0, if any.
        keyframes: the keys the path was made from (builders record theirs), kept for editing.
    """

    name: str
    world_to_camera: np.ndarray  # [F, 4, 4]
    focal_mm: np.ndarray  # [F]
    timeline_frames: np.ndarray  # [F]
    image_size: tuple[int, int]
    fps: Fraction
    sensor_width_mm: float = 36.0
    start_timecode: str | None = None
    keyframes: tuple[Keyframe, ...] = field(default=())

    def __post_init__(self) -> None:
        poses = np.array(self.world_to_camera, dtype=np.float64)
        frames = poses.shape[0] if poses.ndim == 3 else None
        for attr, shape in (("world_to_camera", (frames, 4, 4)), ("focal_mm", (frames,)), ("timeline_frames", (frames,))):
            array = poses if attr == "world_to_camera" else np.array(getattr(self, attr), dtype=np.float64)
            if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)) \
                    or frames is None:
                want = "[" + ", ".join(["F", *(str(s) for s in shape[1:])]) + "]"
                raise PathError(f"CameraPath {self.name!r}.{attr}: expected shape {want} with F = {frames} "
                                f"(the number of poses), got {list(array.shape)}")
            array.setflags(write=False)
            object.__setattr__(self, attr, array)
        size = tuple(int(v) for v in self.image_size)
        if len(size) != 2:
            raise PathError(f"CameraPath {self.name!r}.image_size: expected (width, height), got {self.image_size!r}")
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "fps", _exact_fps(self.fps, f"CameraPath {self.name!r}"))
        object.__setattr__(self, "sensor_width_mm", float(self.sensor_width_mm))
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        object.__setattr__(self, "name", str(self.name))

    def __len__(self) -> int:
        return len(self.world_to_camera)

    # ---- lens and cameras -----------------------------------------------------------------------

    @property
    def focal_px(self) -> np.ndarray:  # [F]
        """Focal length in pixels of the output frames (square pixels)."""
        return focal_px_from_mm(self.focal_mm, self.sensor_width_mm, self.image_size[0])

    @property
    def K(self) -> np.ndarray:  # [F, 3, 3]
        """Intrinsics, pixel-corner origin, principal point at the image centre."""
        K = np.zeros((len(self), 3, 3))
        K[:, 0, 0] = K[:, 1, 1] = self.focal_px
        K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = self.image_size[0] / 2, self.image_size[1] / 2, 1.0
        return K

    @property
    def vertical_fov_deg(self) -> np.ndarray:  # [F]
        return fov_deg_from_focal_px(self.focal_px, self.image_size[1])

    @property
    def horizontal_fov_deg(self) -> np.ndarray:  # [F]
        return fov_deg_from_focal_px(self.focal_px, self.image_size[0])

    def cameras(self) -> Cameras:
        """The F output cameras as pinhole :class:`Cameras` (ids ``f"{name}.{i:04d}"``, no distortion)."""
        n, (w, h) = len(self), self.image_size
        ids = [f"{self.name}.{i:04d}" for i in range(n)]
        f = self.focal_px
        return Cameras.create(ids, f, f, [w / 2] * n, [h / 2] * n, self.world_to_camera, np.tile([w, h], (n, 1)))

    def camera(self, idx: int) -> Cameras:
        """Output frame ``idx``'s camera (negative indices count from the end)."""
        i = range(len(self))[idx]
        w, h = self.image_size
        f = float(self.focal_px[i])
        return Cameras.create([f"{self.name}.{i:04d}"], [f], [f], [w / 2], [h / 2], self.world_to_camera[i:i + 1],
                              np.array([[w, h]]))

    @property
    def centers(self) -> np.ndarray:  # [F, 3]
        """Camera centres in world coordinates."""
        R, t = self.world_to_camera[:, :3, :3], self.world_to_camera[:, :3, 3]
        return -np.einsum("nji,nj->ni", R, t)

    def shot_times(self, timeline: Timeline) -> np.ndarray:  # [F]
        """Normalised scene time of each output frame, clamped to [0, 1] (:meth:`check` refuses more than a frame out)."""
        return np.clip(np.asarray(timeline.shot_time(self.timeline_frames)), 0.0, 1.0)

    # ---- validation ------------------------------------------------------------------------------

    def check(self, timeline: Timeline) -> list[str]:
        """Raise :class:`PathError` for a path that cannot be rendered; return warnings for odd ones.

        Errors: no frames; an image size outside 16..16384 px; a sensor width <= 0; a non-finite pose,
        or one whose 3x3 part is not a rotation; a lens <= 0 mm or with a horizontal field of view
        outside 1..170 degrees; a timeline frame that is not finite or lies a frame or more outside
        ``[0, frame_count - 1]``. Warnings: fields of view under 5 or over 120 degrees; timeline
        frames outside the range by less than a frame (they are clamped).
        """
        what = f"camera path {self.name!r}"
        if len(self) == 0:
            raise PathError(f"{what} has no frames; build it over a timeline with at least one frame")
        (w, h), (lo, hi) = self.image_size, _SIZE_LIMITS_PX
        if not (lo <= w <= hi and lo <= h <= hi):
            raise PathError(f"{what}: image_size {w}x{h} px; give a width and height between {lo} and {hi} px")
        if not (math.isfinite(self.sensor_width_mm) and self.sensor_width_mm > 0):
            raise PathError(f"{what}: sensor_width_mm = {self.sensor_width_mm}; give the film back width in mm, "
                            "e.g. 36")
        self._check_poses(what)
        warnings = self._check_lens(what)
        tl = self.timeline_frames
        bad = np.flatnonzero(~np.isfinite(tl))
        if bad.size:
            raise PathError(f"{what}, frame {bad[0]}: timeline frame is {tl[bad[0]]}; give a footage frame number")
        last = timeline.frame_count - 1
        outside = np.maximum(-tl, tl - last)  # > 0 outside [0, last], in frames
        far = np.flatnonzero(outside >= 1.0 - 1e-9)
        if far.size:
            i = far[0]
            raise PathError(f"{what}, frame {i}: shows timeline frame {tl[i]:g}, but the footage timeline has frames "
                            f"0..{last} ({timeline.frame_count} frames at {timeline.fps} fps); shorten the path or "
                            "retime it (timeline_frames) to stay inside the footage")
        near = np.flatnonzero(outside > 1e-9)
        if near.size:
            warnings.append(f"{what}: {near.size} frame(s) show timeline frames outside 0..{last} by less than a frame "
                            f"(the first: frame {near[0]} at {tl[near[0]]:g}); they are clamped to the ends")
        return warnings

    def _check_poses(self, what: str) -> None:
        poses = self.world_to_camera
        bad = np.flatnonzero(~np.isfinite(poses).reshape(len(self), -1).all(axis=1))
        if bad.size:
            raise PathError(f"{what}, frame {bad[0]}: the pose has non-finite values; rebuild the path "
                            "(a builder was given a NaN or infinite input)")
        R = poses[:, :3, :3]
        error = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).reshape(len(self), -1).max(axis=1)
        bad = np.flatnonzero((error > 1e-6) | (np.linalg.det(R) < 0) | (np.abs(poses[:, 3] - [0, 0, 0, 1]).max(axis=1) > 0))
        if bad.size:
            raise PathError(f"{what}, frame {bad[0]}: world_to_camera is not a rigid transform (rotation error "
                            f"{error[bad[0]]:.2g}, det {np.linalg.det(R[bad[0]]):.3f}, last row "
                            f"{poses[bad[0], 3].tolist()}); give [[R, t], [0, 0, 0, 1]] with R a rotation")

    def _check_lens(self, what: str) -> list[str]:
        focal = self.focal_mm
        bad = np.flatnonzero(~(np.isfinite(focal) & (focal > 0)))
        if bad.size:
            raise PathError(f"{what}, frame {bad[0]}: focal_mm = {focal[bad[0]]}; give a lens > 0 mm")
        fov = self.horizontal_fov_deg
        (lo, hi), sensor = _FOV_LIMITS_DEG, self.sensor_width_mm
        bad = np.flatnonzero((fov < lo) | (fov > hi))
        if bad.size:
            i = bad[0]
            raise PathError(f"{what}, frame {i}: a {focal[i]:g} mm lens on a {sensor:g} mm sensor sees "
                            f"{fov[i]:.3g} degrees across; use a lens between {_mm_for_fov(hi, sensor):.3g} and "
                            f"{_mm_for_fov(lo, sensor):.4g} mm (fields of view {lo:g}..{hi:g} degrees)")
        warnings = []
        wide, long_ = np.flatnonzero(fov > _FOV_WARN_DEG[1]), np.flatnonzero(fov < _FOV_WARN_DEG[0])
        if wide.size:
            warnings.append(f"{what}: {wide.size} frame(s) see more than {_FOV_WARN_DEG[1]:g} degrees across (frame "
                            f"{wide[0]}: {fov[wide[0]]:.1f} degrees, {focal[wide[0]]:g} mm); expect stretched edges")
        if long_.size:
            warnings.append(f"{what}: {long_.size} frame(s) see less than {_FOV_WARN_DEG[0]:g} degrees across (frame "
                            f"{long_[0]}: {fov[long_[0]]:.2f} degrees, {focal[long_[0]]:g} mm); the splat scene may "
                            "look soft this close")
        return warnings

    # ---- reshoot JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """reshoot's own camera path JSON (``{"reshoot_camera_path": 1, ...}``), keyframes included."""
        return {
            "reshoot_camera_path": PATH_FORMAT_VERSION,
            "convention": "world_to_camera, OpenCV axes (x right, y down, z forward), reshoot's world (+Z up); "
                          "focal_mm on sensor_width_mm (horizontal), principal point at the image centre",
            "name": self.name,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "image_size": list(self.image_size),
            "sensor_width_mm": self.sensor_width_mm,
            "start_timecode": self.start_timecode,
            "frames": [
                {"world_to_camera": self.world_to_camera[i].tolist(), "focal_mm": float(self.focal_mm[i]),
                 "timeline_frame": float(self.timeline_frames[i])}
                for i in range(len(self))
            ],
            "keyframes": [
                {"frame": k.frame, "world_to_camera": k.world_to_camera.tolist(), "focal_mm": k.focal_mm,
                 "timeline_frame": k.timeline_frame}
                for k in self.keyframes
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "camera path JSON") -> CameraPath:
        """Inverse of :meth:`to_json`; ``source`` names the file in errors."""
        if not isinstance(data, dict) or "reshoot_camera_path" not in data:
            raise PathError(f"{source} is not a reshoot camera path (no 'reshoot_camera_path' key); for nerfstudio or "
                            "Nuke files use reshoot.path_io")
        version = data["reshoot_camera_path"]
        if not isinstance(version, int) or version > PATH_FORMAT_VERSION:
            raise PathError(f"{source} is camera path format {version!r}; this reshoot reads up to "
                            f"{PATH_FORMAT_VERSION}. Update reshoot.")
        try:
            frames = data["frames"]
            keyframes = tuple(Keyframe(k["frame"], k["world_to_camera"], k["focal_mm"], k["timeline_frame"])
                              for k in data.get("keyframes", []))
            return cls(
                name=data["name"],
                world_to_camera=np.array([f["world_to_camera"] for f in frames], dtype=np.float64).reshape(-1, 4, 4),
                focal_mm=np.array([f["focal_mm"] for f in frames], dtype=np.float64),
                timeline_frames=np.array([f["timeline_frame"] for f in frames], dtype=np.float64),
                image_size=tuple(data["image_size"]),
                fps=Fraction(data["fps"]),
                sensor_width_mm=data.get("sensor_width_mm", 36.0),
                start_timecode=data.get("start_timecode"),
                keyframes=keyframes,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PathError(f"{source}: malformed camera path ({type(exc).__name__}: {exc})") from None

    def save(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        atomic_write_json(Path(path), self.to_json())

    @classmethod
    def load(cls, path: Path) -> CameraPath:
        path = Path(path)
        data = read_json(path, "; make a path first (reshoot path) or check the name")
        return cls.from_json(data, source=str(path))

    # ---- interpolation ----------------------------------------------------------------------------

    @classmethod
    def from_keyframes(
        cls,
        name: str,
        keyframes: Sequence[Keyframe],
        image_size: tuple[int, int],
        fps: Fraction,
        sensor_width_mm: float = 36.0,
        start_timecode: str | None = None,
        frame_count: int | None = None,
    ) -> CameraPath:
        """A path through ``keyframes`` over output frames ``0 .. frame_count - 1``.

        ``frame_count`` defaults to the last key's frame + 1. Camera centres follow a natural cubic
        spline through the keys (C2; two keys give a straight line, one key a fixed camera),
        orientations scipy's ``RotationSpline`` (C2; two keys give slerp), focal lengths a PCHIP
        curve (monotone between keys, no overshoot), and the timeline frame is linear between keys.
        Before the first and after the last key the camera holds still and the performance plays
        on at the rate of the nearest pair of keys (one timeline frame per output frame with one key).
        Every key is passed exactly on its frame.
        """
        keys = list(keyframes)
        if not keys:
            raise PathError(f"camera path {name!r}: no keyframes given; give at least one")
        frames = np.array([k.frame for k in keys])
        steps = np.diff(frames)
        if not np.isfinite(frames).all() or (steps <= 0).any():
            j = int(np.flatnonzero(steps <= 0)[0]) + 1 if (steps <= 0).any() else 0
            raise PathError(f"camera path {name!r}: keyframe frames must be finite and increasing, got "
                            f"{frames.tolist()} (key {j}); sort the keys and drop duplicates")
        count = int(math.floor(frames[-1] + 1e-9)) + 1 if frame_count is None else int(frame_count)
        if count < 1:
            raise PathError(f"camera path {name!r}: {count} output frames; the last key must be at frame >= 0")
        out = np.arange(count, dtype=np.float64)
        t = np.clip(out, frames[0], frames[-1])
        poses = np.stack([k.world_to_camera for k in keys])
        centres = -np.einsum("nji,nj->ni", poses[:, :3, :3], poses[:, :3, 3])
        rotations = Rotation.from_matrix(np.swapaxes(poses[:, :3, :3], 1, 2))  # camera-to-world
        focal = np.array([k.focal_mm for k in keys])
        timeline = np.array([k.timeline_frame for k in keys])
        if len(keys) == 1:
            path_centres, path_rot, path_focal = np.repeat(centres, count, 0), rotations[[0] * count], np.full(count, focal[0])
            rate_before = rate_after = 1.0
        else:
            path_centres = CubicSpline(frames, centres, bc_type="natural")(t)
            path_rot = RotationSpline(frames, rotations)(t)
            path_focal = PchipInterpolator(frames, focal)(t)
            rate_before = (timeline[1] - timeline[0]) / (frames[1] - frames[0])
            rate_after = (timeline[-1] - timeline[-2]) / (frames[-1] - frames[-2])
        path_timeline = np.interp(out, frames, timeline)
        path_timeline = np.where(out < frames[0], timeline[0] + (out - frames[0]) * rate_before, path_timeline)
        path_timeline = np.where(out > frames[-1], timeline[-1] + (out - frames[-1]) * rate_after, path_timeline)
        path_poses = _poses_from(path_rot.as_matrix(), path_centres)
        for k in keys:  # exact poses on the keys' own frames
            if k.frame.is_integer() and 0 <= k.frame < count:
                path_poses[int(k.frame)] = k.world_to_camera
        return cls(name, path_poses, path_focal, path_timeline, image_size, fps, sensor_width_mm, start_timecode,
                   tuple(keys))


def _poses_from(camera_to_world_R: np.ndarray, centres: np.ndarray) -> np.ndarray:  # [N, 4, 4]
    """World-to-camera poses from camera orientations (columns: camera axes in the world) and centres."""
    R = np.swapaxes(camera_to_world_R, 1, 2)
    poses = np.tile(np.eye(4), (len(R), 1, 1))
    poses[:, :3, :3] = R
    poses[:, :3, 3] = -np.einsum("nij,nj->ni", R, centres)
    return poses


def _mm_for_fov(fov_deg: float, sensor_width_mm: float) -> float:
    return sensor_width_mm / 2 / math.tan(math.radians(fov_deg) / 2)
