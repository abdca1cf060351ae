"""Camera footage: what a camera file or image sequence holds, and decoding the frames asked for.

Conventions:

- a camera's **frame times** are each frame's presentation time relative to its first frame, in
  seconds, read from the file (so a variable-frame-rate file maps by time, not by index);
- frames come out **as displayed**: RGB ``uint8``, rotated by the file's display rotation
  (``rotation_deg``, counter-clockwise, as FFmpeg's display matrix says);
- **image sequences** are folders of numbered images (``name_0001.png`` ...; png, jpg, tif or exr),
  played at a rate the user gives; EXR (linear light) is encoded to sRGB.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np

from reshoot._deps import require

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")
_VFR_TOLERANCE = 0.01  # frame intervals differing from the median by more than 1 % make a file VFR
_COMPLETE_FRACTION = 0.9  # a video holding less than this part of what its header promises is truncated
_TRUNCATED = "the file looks truncated. Copy it again from the card (or export it again)"


class FootageError(ValueError):
    """A camera file cannot be used as asked; the message names the file and says what to do."""


@dataclass(frozen=True, eq=False)
class CameraSource:
    """One camera's footage, probed."""

    camera_id: str
    path: Path
    kind: Literal["video", "sequence"]
    fps: Fraction  #: nominal rate (exact rational: 24000/1001 for 23.976)
    frame_times_s: np.ndarray = field(repr=False)  # [F] relative to the first frame
    width: int  #: as displayed (after rotation)
    height: int
    rotation_deg: int = 0  #: counter-clockwise display rotation applied to decoded frames
    codec: str = ""
    start_timecode: str | None = None
    audio_rate_hz: int | None = None
    audio_channels: int = 0
    audio_start_s: float = 0.0  #: the audio stream's start relative to the first video frame
    variable_frame_rate: bool = False
    first_frame_time_s: float = 0.0  #: container time of the first frame (to map decoded frames to indices)
    files: tuple[Path, ...] = field(default=(), repr=False)  #: an image sequence's frames, in order

    @property
    def frame_count(self) -> int:
        return len(self.frame_times_s)

    @property
    def duration_s(self) -> float:
        """Time covered: up to the end of the last frame."""
        return float(self.frame_times_s[-1] + 1 / self.fps)

    def describe(self) -> dict:
        """JSON-able metadata (for manifests and footage.json)."""
        return {
            "camera_id": self.camera_id, "path": str(self.path), "kind": self.kind,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}", "fps_float": float(self.fps),
            "frame_count": self.frame_count, "duration_s": self.duration_s, "width": self.width,
            "height": self.height, "rotation_deg": self.rotation_deg, "codec": self.codec,
            "start_timecode": self.start_timecode, "audio_rate_hz": self.audio_rate_hz,
            "audio_channels": self.audio_channels, "audio_start_s": self.audio_start_s,
            "variable_frame_rate": self.variable_frame_rate,
        }


def camera_id_from_path(path: Path) -> str:
    """A camera id from a file or folder name: its stem, with characters other than ``[A-Za-z0-9_-]`` as ``_``."""
    stem = Path(path).name if Path(path).is_dir() else Path(path).stem
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "camera"


def probe_source(path: Path, camera_id: str | None = None, sequence_fps: Fraction = Fraction(24)) -> CameraSource:
    """Probe a video file or an image-sequence folder; a FootageError says what is wrong with it."""
    path = Path(path)
    if camera_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", camera_id):
        raise FootageError(f"camera name {camera_id!r} (for {path}) may hold only letters, digits, '_' and '-'; "
                           "it names folders in the workspace")
    camera_id = camera_id or camera_id_from_path(path)
    if not path.exists():
        raise FootageError(f"camera {camera_id!r}: {path} does not exist; check the path")
    if path.is_dir():
        return _probe_sequence(path, camera_id, Fraction(sequence_fps))
    return _probe_video(path, camera_id)


def _probe_video(path: Path, camera_id: str) -> CameraSource:
    av = require("av", "pip install av")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise FootageError(f"camera {camera_id!r}: {path} cannot be read as video ({exc}). Is the file complete? "
                           "Copy it again from the card, or re-export it.") from exc
    with container:
        if not container.streams.video:
            raise FootageError(f"camera {camera_id!r}: {path} has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        try:
            first = next(container.decode(video))
        except (StopIteration, av.FFmpegError) as exc:
            raise FootageError(f"camera {camera_id!r}: {path}: no frame could be decoded ({exc or 'empty'}); "
                               "the file is damaged or its codec is not supported by FFmpeg") from exc
        container.seek(0)
        try:
            packets = [(p.pts, p.is_corrupt) for p in container.demux(video) if p.pts is not None and p.size]
        except av.FFmpegError as exc:
            raise FootageError(f"camera {camera_id!r}: {path} is damaged part-way ({exc}); copy it again") from exc
        if not packets:
            raise FootageError(f"camera {camera_id!r}: {path} holds no video frames")
        pts = sorted(p for p, _ in packets)
        tb = float(video.time_base)
        times = (np.array(pts, dtype=np.float64) - pts[0]) * tb
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = Fraction(rate).limit_denominator(1001) if rate else Fraction(round(1 / np.median(np.diff(times))))
        _check_complete(path, camera_id, packets, video, fps)
        timecode = video.metadata.get("timecode") or container.metadata.get("timecode")
        for stream in container.streams.data:
            timecode = timecode or stream.metadata.get("timecode")
        rotation = int(round(first.rotation)) % 360 if hasattr(first, "rotation") else 0
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        audio_start = 0.0
        if audio is not None and audio.start_time is not None:
            audio_start = float(audio.start_time * audio.time_base) - pts[0] * tb
        return CameraSource(
            camera_id, path, "video", fps, times, width, height, rotation, video.codec_context.name, timecode,
            audio.rate if audio else None, audio.channels if audio else 0, audio_start,
            _is_variable(times), pts[0] * tb)


def _check_complete(path: Path, camera_id: str, packets: list[tuple[int, bool]], video, fps: Fraction) -> None:
    """Refuse a file holding far less than its header promises: a copy cut short whose index (an MP4 written
    "faststart", a Matroska track's duration) still lists every frame. ``packets`` are the video packets' ``(pts,
    is_corrupt)``; a cut-off last packet is corrupt. Header figures can be approximate (edit lists, rounding, a
    variable rate), so only a file short by more than 10 % is refused."""
    whole = sorted(pts for pts, corrupt in packets if not corrupt)
    if video.frames:  # MP4, MOV: the index counts the frames
        promised = int(video.frames)
        if len(whole) < _COMPLETE_FRACTION * promised and promised - len(whole) > 1:
            raise FootageError(f"camera {camera_id!r}: {path} holds only {len(whole)} of the {promised} frames its "
                               f"header lists: {_TRUNCATED}")
        return
    promised_s = _header_duration_s(video)
    covered_s = (whole[-1] - min(pts for pts, _ in packets)) * float(video.time_base) + 1 / fps if whole else 0.0
    if promised_s and covered_s < _COMPLETE_FRACTION * promised_s and promised_s - covered_s > 1.5 / fps:
        raise FootageError(f"camera {camera_id!r}: {path} holds only {len(whole)} frames ({covered_s:.2f} s) of the "
                           f"{promised_s:.2f} s (about {round(promised_s * fps)} frames at {float(fps):g} fps) its "
                           f"header promises: {_TRUNCATED}")


def _header_duration_s(video) -> float | None:
    """The video stream's duration as its header gives it: the stream's own, or Matroska's per-track DURATION tag."""
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    tag = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", video.metadata.get("DURATION", "").strip())
    return int(tag[1]) * 3600 + int(tag[2]) * 60 + float(tag[3]) if tag else None


def _is_variable(times: np.ndarray) -> bool:
    if len(times) < 3:
        return False
    steps = np.diff(times)
    return bool(np.any(np.abs(steps - np.median(steps)) > _VFR_TOLERANCE * np.median(steps)))


def _probe_sequence(folder: Path, camera_id: str, fps: Fraction) -> CameraSource:
    numbered = {}
    for f in folder.iterdir():
        match = re.search(r"(\d+)$", f.stem)
        if f.suffix.lower() in IMAGE_SUFFIXES and match:
            numbered.setdefault(f.suffix.lower(), []).append((int(match.group(1)), f))
    if not numbered:
        raise FootageError(f"camera {camera_id!r}: {folder} holds no numbered images "
                           f"({', '.join(IMAGE_SUFFIXES)}); name frames like frame_0001.png")
    if len(numbered) > 1:
        raise FootageError(f"camera {camera_id!r}: {folder} mixes image types {sorted(numbered)}; keep one per folder")
    frames = sorted(next(iter(numbered.values())))
    numbers = [n for n, _ in frames]
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise FootageError(f"camera {camera_id!r}: {folder} is missing frame numbers {missing[:10]}"
                           f"{' ...' if len(missing) > 10 else ''}; the sequence must be complete")
    first = read_image(frames[0][1])
    times = np.arange(len(frames), dtype=np.float64) / float(fps)
    return CameraSource(camera_id, folder, "sequence", fps, times, first.shape[1], first.shape[0],
                        codec=frames[0][1].suffix.lstrip(".").lower(), files=tuple(f for _, f in frames))


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (16-bit scaled down, EXR linear light encoded to sRGB).  # [H, W, 3]"""
    if Path(path).suffix.lower() == ".exr":
        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise FootageError(f"{path} cannot be read as an image; is it complete?")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = image[..., 2::-1] if image.shape[-1] >= 3 else image  # BGR(A) -> RGB
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round()
    elif image.dtype in (np.float32, np.float16, np.float64):
        linear = np.clip(image.astype(np.float32), 0, 1)
        image = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))


def iter_source_frames(source: CameraSource, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` for each wanted frame index, ascending, each once, as displayed.  # rgb [H, W, 3]"""
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return
    if wanted[0] < 0 or wanted[-1] >= source.frame_count:
        raise FootageError(f"camera {source.camera_id!r}: frames {wanted[0]}..{wanted[-1]} asked for, but "
                           f"{source.path} has frames 0..{source.frame_count - 1}")
    if source.kind == "sequence":
        for idx in wanted:
            yield idx, read_image(source.files[idx])
        return
    yield from _decode_video_frames(source, wanted)


def _decode_video_frames(source: CameraSource, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    av = require("av", "pip install av")
    pending = iter(wanted)
    target = next(pending)
    half_frame = 0.5 / float(source.fps)
    with av.open(str(source.path)) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        start_time = source.first_frame_time_s + source.frame_times_s[target]
        if source.frame_times_s[target] > 2.0:  # seek to the keyframe before, instead of decoding from the start
            container.seek(int((start_time - 1.0) / float(video.time_base)), stream=video, backward=True)
        try:
            for frame in container.decode(video):
                if frame.pts is None:
                    continue
                t = frame.pts * float(video.time_base) - source.first_frame_time_s
                idx = int(np.searchsorted(source.frame_times_s, t - half_frame))
                if idx >= source.frame_count or abs(source.frame_times_s[idx] - t) > half_frame:
                    continue
                while idx >= target:
                    if idx == target:
                        yield idx, _displayed(frame.to_ndarray(format="rgb24"), source.rotation_deg)
                    target = next(pending, None)
                    if target is None:
                        return
        except av.FFmpegError as exc:
            raise FootageError(f"camera {source.camera_id!r}: {source.path} failed to decode near frame {target} "
                               f"({exc}); the file is damaged there") from exc
    raise FootageError(f"camera {source.camera_id!r}: {source.path} ended before frame {target} "
                       f"(probe said {source.frame_count} frames); the file may be truncated")


def _displayed(image: np.ndarray, rotation_deg: int) -> np.ndarray:
    if rotation_deg % 360 == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=(rotation_deg // 90) % 4))
