"""Deliverables a post house opens: image sequences (PNG, OpenEXR), movies (H.264, ProRes), a USD camera.

Writers over plain arrays; they know nothing of other reshoot types. Conventions shared by all:

- **frames** are RGB ``[H, W, 3]``, float in [0, 1] (clipped) or uint8: display-referred sRGB values,
  as reshoot renders them. Non-finite values are refused with the frame named;
- **alpha** is coverage ``[H, W]`` in [0, 1], with *straight* (unassociated) colour in ``frames``.
  PNG keeps it so (the PNG convention); EXR premultiplies, as OpenEXR defines its RGBA;
- **poses** are reshoot's (:mod:`reshoot.cameras`): world-to-camera 4x4 with OpenCV camera axes
  (x right, y down, z forward), ``K`` in pixels with the pixel-corner origin, a +Z-up world;
- **frame numbers** start at ``first_frame`` (1001, as shots are numbered in post) and are written
  with at least 4 digits: ``shot.1001.exr``;
- **timecode** is SMPTE ``HH:MM:SS:FF`` (``HH:MM:SS;FF`` drop-frame at 29.97/59.94) of the first
  frame (:func:`reshoot.sync.parse_timecode` reads it); frame ``k`` carries the start plus ``k``;
- **atomic**: every file goes through a temporary file and ``os.replace``. A sequence is staged as
  a whole: its frames are written under hidden temporary names and moved to their final names only
  once every frame has been checked and written, so a call that fails leaves the folder as it was.
  Files of an earlier, longer sequence are left alone: write a delivery to a fresh folder.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from reshoot import colour
from reshoot._deps import require
from reshoot.atomic import atomic_write_bytes, atomic_write_text, naming_full_disk
from reshoot.cameras import OPENCV_TO_OPENGL, ZUP_TO_YUP, focal_mm_from_px
from reshoot.media import write_video
from reshoot.sync import _exact_fps, parse_timecode

#: Left-multiplying OpenCV camera coordinates (x right, y down, z forward) by this gives OpenEXR's
#: camera coordinates, which are RenderMan's: x right, y up, z forward (left-handed). Its own inverse.
OPENCV_TO_RENDERMAN = np.diag([1.0, -1.0, 1.0, 1.0])

#: USD lens and filmback values are in tenths of a scene unit (UsdGeomCamera, "Units of Measure");
#: with metersPerUnit = 1 a tenth of a unit is 100 mm.
_USD_METERS_PER_UNIT = 1.0
_USD_TENTHS_PER_MM = 1.0 / (100.0 * _USD_METERS_PER_UNIT)

_END = object()  # an exhausted iterator
_ELSEWHERE = "write to a folder on another disk"  # what to do when the disk is full

_EXR_CONVENTIONS = (
    "worldToCamera and worldToNDC follow the OpenEXR standard attributes: row vectors (p' = p M), "
    "camera x right, y up, z forward (RenderMan); NDC (0, 0) top-left and (1, 1) bottom-right of the "
    "display window after dividing by w (z/w = 1/depth). reshoot/world_to_camera_opencv is reshoot's "
    "own pose: column vectors (p' = M p), OpenCV axes (x right, y down, z forward); reshoot/K is in "
    "pixels with the pixel-corner origin. Z is depth along the optical axis, +inf where nothing was hit."
)


# ---- image sequences ----------------------------------------------------------------------------


def write_png_sequence(
    folder: Path,
    frames: Iterable[np.ndarray],  # each [H, W, 3] float in [0, 1] or uint8
    *,
    bit_depth: int = 8,
    first_frame: int = 1001,
    name: str = "shot",
    alpha: Iterable[np.ndarray] | None = None,  # each [H, W] in [0, 1]
) -> list[Path]:
    """Write ``folder/name.1001.png, ...``: RGB, or RGBA with ``alpha``, at 8 or 16 bits per channel.

    Values are the display-referred sRGB values given, rounded to the nearest code value (OpenCV
    writes 16-bit PNGs; Pillow cannot write 16-bit RGB). Alpha is straight, as PNG defines it.
    Returns the paths written, in frame order.
    """
    what = "write_png_sequence"
    if bit_depth not in (8, 16):
        raise ValueError(f"{what}: bit_depth must be 8 or 16, got {bit_depth!r}")
    _check_sequence_naming(what, name, first_frame)
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    top, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    folder = Path(folder)
    with naming_full_disk(folder, f"the PNG sequence {name}.####.png", _ELSEWHERE), _StagedFiles() as staged:
        size = None
        for idx, frame, frame_alpha in _aligned(what, first_frame, frames, None, alpha=alpha):
            label = _frame_label(idx, first_frame)
            rgb = _rgb(what, frame, label)
            size = size or rgb.shape[:2]
            _check_size(what, label, rgb.shape[:2], size)
            channels = [rgb[..., 2], rgb[..., 1], rgb[..., 0]]  # OpenCV writes BGR(A)
            if frame_alpha is not None:
                channels.append(_plane(what, "alpha", frame_alpha, label, size))
            image = np.round(np.stack(channels, axis=-1) * top).astype(dtype)
            ok, data = cv2.imencode(".png", image)
            if not ok:
                raise RuntimeError(f"{what}: OpenCV could not encode frame {label} as PNG")
            staged.add(_frame_path(folder, name, first_frame + idx, "png"), data.tobytes())
    return staged.paths


def write_exr_sequence(
    folder: Path,
    frames: Iterable[np.ndarray],  # each [H, W, 3] float in [0, 1] or uint8
    *,
    world_to_camera: np.ndarray,  # [F, 4, 4]
    K: np.ndarray,  # [F, 3, 3]
    image_size: tuple[int, int],
    fps: Fraction | int,
    start_timecode: str | None = None,
    alpha: Iterable[np.ndarray] | None = None,  # each [H, W] in [0, 1]
    depth: Iterable[np.ndarray] | None = None,  # each [H, W]
    colourspace: str = "ACEScg",
    compression: str = "zip",
    aces_container: bool = False,
    premultiplied: bool = False,
    first_frame: int = 1001,
    name: str = "shot",
) -> list[Path]:
    """Write ``folder/name.1001.exr, ...``: half-float R, G, B (and A), float Z, and the camera in the header.

    Colour: OpenEXR holds scene-linear light, and compositors decode an EXR as linear and apply the display
    transform on view. reshoot's frames are display-referred sRGB, so they are converted by OpenColorIO
    (:mod:`reshoot.colour`) to ``colourspace``: ``"ACEScg"`` (the default), ``"ACES2065-1"`` or ``"lin_rec709"``
    (scene-linear Rec.709 primaries: the sRGB EOTF, IEC 61966-2-1, and nothing else); all look in a viewer
    as the PNGs and movies do. ``"sRGB"`` writes the values as given (too bright in a linear viewer). The space
    is named in ``chromaticities``, ``oiio:ColorSpace`` and ``reshoot/colorspace``. With ``alpha``, RGB is
    premultiplied after the conversion, as OpenEXR's RGBA is associated alpha. ``premultiplied=True`` says the
    frames already are (a splat render over black is): they are divided by alpha first.

    ``compression``: ``"zip"``, ``"piz"`` (both lossless), ``"dwab"`` (lossy on R, G, B) or ``"none"``.
    ``aces_container``: SMPTE ST 2065-4 ACES container files: ACES2065-1 in R, G, B (and A) half float, no
    compression, ``acesImageContainerFlag`` 1, ``adoptedNeutral`` the ACES white, and only attributes of the
    types the standard lists, so no ``depth`` and none of the matrices below.

    Header of each frame (OpenEXR standard attributes, https://openexr.com/en/latest/StandardAttributes.html):

    - ``worldToCamera`` (M44f): the pose in OpenEXR's camera space, which is RenderMan's (x right,
      y up, z forward: left-handed), as a row-vector matrix (Imath: ``p_camera = p_world * M``, the
      translation in the last row). From reshoot's pose: ``M = (OPENCV_TO_RENDERMAN @ world_to_camera).T``;
    - ``worldToNDC`` (M44f): world to NDC, (0, 0) top-left and (1, 1) bottom-right of the display
      window, x right and y down: ``(x, y, z, w) = p_world * M``, NDC ``(x / w, y / w)``; the z row
      is chosen so that ``z / w = 1 / depth`` (OpenEXR says to discard z);
    - ``timeCode`` (TimeCode; with ``start_timecode``): start plus the frame's index. Above 30 fps
      the frame field holds the frame pair (``FF // 2``) with ``fieldPhase`` marking the second
      frame, the SMPTE ST 12-1 high-frame-rate form; the exact string is in ``reshoot/timecode``;
    - ``framesPerSecond`` (Rational), ``imageCounter`` (the frame number), ``chromaticities``;
    - reshoot's own: ``reshoot/world_to_camera_opencv`` (M44d, column vectors, OpenCV axes),
      ``reshoot/K`` (M33d, pixels, pixel-corner origin), ``reshoot/frame``, ``reshoot/colorspace``,
      ``reshoot/colour`` (the conversion, in words), ``reshoot/conventions`` (these rules, in words) and
      ``reshoot/timecode``.

    ``depth`` is the distance along the optical axis in scene units (+inf where nothing was hit).
    Returns the paths written, in frame order.
    """
    what = "write_exr_sequence"
    _check_sequence_naming(what, name, first_frame)
    poses, Ks = _check_cameras(what, world_to_camera, K, first_frame)
    width, height = _check_image_size(what, image_size)
    rate = _exact_fps(fps, what)
    start = _timecode_start(start_timecode, rate) if start_timecode is not None else None
    OpenEXR = require("OpenEXR", "pip install 'openexr>=3.3'")
    space, compression_name = colour.exr_settings(colourspace, compression, aces_container, what)
    if aces_container and depth is not None:
        raise ValueError(f"{what}: an ACES container file (SMPTE ST 2065-4) holds only R, G, B and A; leave depth "
                         "out, or write a plain EXR (aces_container=False)")
    exr_world_to_camera = np.swapaxes(OPENCV_TO_RENDERMAN @ poses, 1, 2).astype(np.float32)
    exr_world_to_ndc = _exr_world_to_ndc(poses, Ks, width, height)
    base = {"compression": getattr(OpenEXR, compression_name), "type": OpenEXR.scanlineimage,
            "lineOrder": OpenEXR.INCREASING_Y, "framesPerSecond": rate,
            **colour.exr_colour_attributes(space, aces_container)}
    if not aces_container:  # ST 2065-4 lists no matrix attribute type
        base["reshoot/conventions"] = _EXR_CONVENTIONS
    folder = Path(folder)
    with naming_full_disk(folder, f"the EXR sequence {name}.####.exr", _ELSEWHERE), _StagedFiles() as staged:
        for idx, frame, frame_alpha, frame_depth in _aligned(what, first_frame, frames, len(poses),
                                                             alpha=alpha, depth=depth):
            label, number = _frame_label(idx, first_frame), first_frame + idx
            rgb = _rgb(what, frame, label)
            _check_size(what, label, rgb.shape[:2], (height, width))
            a = None if frame_alpha is None else _plane(what, "alpha", frame_alpha, label, (height, width))
            if a is not None and premultiplied:  # back to straight colour for the conversion
                rgb = np.where(a[..., None] > 1e-4, np.clip(rgb / np.maximum(a, 1e-4)[..., None], 0, 1), 0)
            rgb = colour.convert(rgb, colour.SRGB, space)
            channels = {"RGB": rgb}
            if a is not None:
                channels = {"RGBA": np.concatenate([rgb * a[..., None], a[..., None]], axis=-1)}
            channels = {key: value.astype(np.float16) for key, value in channels.items()}
            if frame_depth is not None:
                channels["Z"] = _plane(what, "depth", frame_depth, label, (height, width))  # float32
            header = {**base, "imageCounter": number, "reshoot/frame": number}
            if not aces_container:
                header.update({"worldToCamera": exr_world_to_camera[idx], "worldToNDC": exr_world_to_ndc[idx],
                               "reshoot/world_to_camera_opencv": poses[idx], "reshoot/K": Ks[idx]})  # M44d, M33d
            if start is not None:
                timecode, text = _exr_timecode(OpenEXR, start[0] + idx, rate, start[1])
                header.update({"timeCode": timecode, "reshoot/timecode": text})
            data = _exr_bytes(OpenEXR, header, channels)
            staged.add(_frame_path(folder, name, number, "exr"),
                       colour.without_type_attribute(data, height) if aces_container else data)
    return staged.paths


def _exr_bytes(OpenEXR: Any, header: dict[str, Any], channels: dict[str, np.ndarray]) -> bytes:
    """A single-part scanline EXR in memory. The binding reads an array's memory in C order whatever
    its strides (openexr 3.5.3: a transposed matrix is written untransposed), so all go in contiguous."""
    header = {key: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for key, v in header.items()}
    buffer = io.BytesIO()
    OpenEXR.File(header, {key: np.ascontiguousarray(v) for key, v in channels.items()}).write(buffer)
    return buffer.getvalue()


def _exr_world_to_ndc(poses: np.ndarray, Ks: np.ndarray, width: int, height: int) -> np.ndarray:  # [F, 4, 4]
    """OpenEXR ``worldToNDC`` (row vectors) from reshoot poses and K: ``u / W, v / H`` after dividing by w."""
    ndc = np.zeros((len(Ks), 4, 4))
    ndc[:, 0, 0], ndc[:, 0, 2] = Ks[:, 0, 0] / width, Ks[:, 0, 2] / width
    ndc[:, 1, 1], ndc[:, 1, 2] = Ks[:, 1, 1] / height, Ks[:, 1, 2] / height
    ndc[:, 2, 3] = 1.0  # z = 1, w = depth: z / w = 1 / depth, and the matrix stays invertible
    ndc[:, 3, 2] = 1.0
    return np.swapaxes(ndc @ poses, 1, 2).astype(np.float32)


def _exr_timecode(OpenEXR: Any, frame_number: int, rate: Fraction, drop: bool) -> tuple[Any, str]:
    """An OpenEXR TimeCode and its ``HH:MM:SS:FF`` string for a frame number since 00:00:00:00."""
    hours, minutes, seconds, frames = _timecode_fields(frame_number, rate, drop)
    timecode = OpenEXR.TimeCode()
    timecode.hours, timecode.minutes, timecode.seconds = hours, minutes, seconds
    if round(rate) > 30:  # the frame field holds 0-29: frame pairs, the second one marked
        timecode.frame, timecode.fieldPhase = frames // 2, bool(frames % 2)
    else:
        timecode.frame = frames
    timecode.dropFrame = drop
    return timecode, f"{hours:02d}:{minutes:02d}:{seconds:02d}{';' if drop else ':'}{frames:02d}"


# ---- movies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoCodec:
    encoder: str  # FFmpeg encoder
    pix_fmt: str
    options: dict[str, str]
    suffixes: tuple[str, ...]
    dtype: type  # RGB handed to the encoder: uint8 (rgb24) or uint16 (rgb48, for 10 bits)
    even_height: bool  # 4:2:0 halves the height as well as the width


_VIDEO_CODECS = {
    # H.264 High profile, 4:2:0, CRF 16: a review copy that is visually lossless at normal viewing.
    "h264": _VideoCodec("libx264", "yuv420p", {"crf": "16"}, (".mp4", ".mov"), np.uint8, True),
    # ProRes 422 ("standard", prores_ks profile 2), 10-bit 4:2:2: the usual editorial/VFX intermediate.
    "prores": _VideoCodec("prores_ks", "yuv422p10le", {"profile": "2"}, (".mov",), np.uint16, False),
}


def write_shot_video(
    path: Path,
    frames: Iterable[np.ndarray],  # each [H, W, 3] float in [0, 1] or uint8
    fps: Fraction | int,
    *,
    codec: str = "h264",
    start_timecode: str | None = None,
) -> int:
    """Encode the shot as H.264 MP4 (or MOV) or ProRes 422 MOV, atomically; return the frame count.

    - ``"h264"``: libx264, High profile, yuv420p, CRF 16; width and height must be even;
    - ``"prores"``: prores_ks profile 2 (ProRes 422 "standard"), yuv422p10le; width must be even.
      Float frames are quantised to 16 bits before the 10-bit conversion, so nothing is lost to 8 bits.

    Both are BT.709 in limited range and tagged so (primaries, transfer, matrix, range), as HD
    deliverables are; reshoot's sRGB values are written as the BT.709 signal, as is usual for
    graphics going to video. Odd sizes are refused rather than padded: pad or crop the frames, or
    choose the render size, so that what is delivered is what was chosen. ``start_timecode``
    becomes the movie's ``tmcd`` timecode track (see :func:`reshoot.media.write_video`).
    """
    what = "write_shot_video"
    spec = _VIDEO_CODECS.get(codec)
    if spec is None:
        raise ValueError(f"{what}: codec {codec!r} is not one of {sorted(_VIDEO_CODECS)}")
    path = Path(path)
    if path.suffix.lower() not in spec.suffixes:
        raise ValueError(f"{what}: {path.name}: {codec} goes in a {' or '.join(spec.suffixes)} file, "
                         f"not {path.suffix or 'a file without suffix'}")
    rate = _exact_fps(fps, what)
    if start_timecode is not None:
        _timecode_start(start_timecode, rate)  # a clear error now rather than FFmpeg's later
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_full_disk(path.parent, path.name, _ELSEWHERE):
        return write_video(path, _video_frames(what, frames, spec), rate, codec=spec.encoder,
                           timecode=start_timecode, pix_fmt=spec.pix_fmt, options=spec.options, rec709=True)


def _video_frames(what: str, frames: Iterable[np.ndarray], spec: _VideoCodec) -> Iterator[np.ndarray]:
    """Check each frame (shape, same size throughout, even sizes, finite) and convert it for the encoder."""
    size, count = None, 0
    for idx, frame in enumerate(frames):
        label = f"index {idx}"
        array = np.asarray(frame)
        if array.dtype == spec.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
            converted = array
        else:
            top = np.iinfo(spec.dtype).max
            converted = np.round(_rgb(what, array, label) * top).astype(spec.dtype)
        if size is None:
            size = converted.shape[:2]
            height, width = size
            if width % 2 or (spec.even_height and height % 2):
                need = "width and height" if spec.even_height else "width"
                raise ValueError(f"{what}: frames are {width}x{height}; {spec.encoder} ({spec.pix_fmt}) needs an "
                                 f"even {need}. Pad or crop the frames, or render at an even size.")
        _check_size(what, label, converted.shape[:2], size)
        count += 1
        yield converted
    if count == 0:
        raise ValueError(f"{what}: no frames given")


# ---- USD camera ---------------------------------------------------------------------------------


def write_usd_camera(
    path: Path,
    world_to_camera: np.ndarray,  # [F, 4, 4]
    K: np.ndarray,  # [F, 3, 3]
    image_size: tuple[int, int],
    fps: Fraction | int,
    *,
    first_frame: int = 1001,
    sensor_width_mm: float = 36.0,
    up_axis: str = "Z",
    name: str = "reshootCamera",
    clipping_range: tuple[float, float] = (0.01, 10000.0),
) -> Path:
    """Write a ``.usda`` stage holding one UsdGeom.Camera animated over frames ``first_frame, ...``.

    - Transform: one ``xformOp:transform`` time sample per frame, the camera-to-world matrix in USD's
      camera convention (looks down -Z, +Y up, +X right: OpenGL axes) and row vectors, i.e.
      ``(inv(world_to_camera) @ OPENCV_TO_OPENGL).T``. The stage is ``upAxis = "Z"`` as reshoot's
      world; ``up_axis="Y"`` rotates the world by :data:`reshoot.cameras.ZUP_TO_YUP` first.
    - Lens: the film back is ``sensor_width_mm`` wide; ``focalLength = fx * sensor_width_mm / W``,
      ``verticalAperture = H * focalLength / fy`` (so fx and fy both come back), and the principal
      point becomes ``horizontalApertureOffset = (W / 2 - cx) * sensor_width_mm / W`` and
      ``verticalApertureOffset = (cy - H / 2) * focalLength / fy`` (USD's offsets move the film
      window right and up). USD measures these in tenths of a scene unit (UsdGeomCamera, "Units of
      Measure"); the stage's ``metersPerUnit`` is 1 (reshoot's world unit is taken to be the metre,
      as in the sample shoot; a COLMAP world has whatever scale it was given), so millimetres are
      divided by 100: a 36 mm film back is authored as 0.36. Blender's USD importer and exporter read
      and write it this way (``lens_mm = focalLength * 100 * metersPerUnit``); the field of view,
      a ratio, is right in any reader.
    - Time: ``timeCodesPerSecond = framesPerSecond = fps``; start and end time codes are the first
      and last frame numbers, so time code ``first_frame + k`` is frame ``k``.
    - ``clipping_range`` is (near, far) in scene units. The camera prim is the stage's default prim.
    """
    what = "write_usd_camera"
    path = Path(path)
    if path.suffix != ".usda":
        raise ValueError(f"{what}: {path.name}: the camera is written as text; give a .usda path")
    poses, Ks = _check_cameras(what, world_to_camera, K, first_frame)
    width, height = _check_image_size(what, image_size)
    rate = _exact_fps(fps, what)
    if up_axis not in ("Z", "Y"):
        raise ValueError(f"{what}: up_axis must be 'Z' (reshoot's world) or 'Y', got {up_axis!r}")
    if not sensor_width_mm > 0:
        raise ValueError(f"{what}: sensor_width_mm must be > 0, got {sensor_width_mm!r}")
    near, far = (float(v) for v in clipping_range)
    if not 0 < near < far:
        raise ValueError(f"{what}: clipping_range must be 0 < near < far, got {clipping_range!r}")
    require("pxr", "pip install usd-core")
    from pxr import Gf, Sdf, Usd, UsdGeom

    if not Sdf.Path.IsValidIdentifier(name):
        raise ValueError(f"{what}: name {name!r} is not a USD prim name (letters, digits, '_'; no leading digit)")
    world = ZUP_TO_YUP if up_axis == "Y" else np.eye(4)
    camera_to_world = world @ np.linalg.inv(poses) @ OPENCV_TO_OPENGL
    lens_mm = _usd_lens_mm(Ks, width, height, sensor_width_mm)

    stage = Usd.Stage.CreateInMemory()
    stage.GetRootLayer().documentation = (
        f"reshoot camera: {len(poses)} frames from {first_frame} at {rate} fps, {width}x{height} px, "
        f"{sensor_width_mm} mm film back. Lens values in tenths of a scene unit (metersPerUnit 1: mm / 100).")
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if up_axis == "Z" else UsdGeom.Tokens.y)
    # metersPerUnit stays 1: reshoot's world unit is the metre (sample shoot); a COLMAP world keeps its scale.
    UsdGeom.SetStageMetersPerUnit(stage, _USD_METERS_PER_UNIT)
    stage.SetTimeCodesPerSecond(float(rate))
    stage.SetFramesPerSecond(float(rate))
    stage.SetStartTimeCode(first_frame)
    stage.SetEndTimeCode(first_frame + len(poses) - 1)
    camera = UsdGeom.Camera.Define(stage, Sdf.Path(f"/{name}"))
    stage.SetDefaultPrim(camera.GetPrim())
    camera.CreateProjectionAttr(UsdGeom.Tokens.perspective)
    camera.CreateClippingRangeAttr(Gf.Vec2f(near, far))
    transform = camera.AddTransformOp()
    lens_attrs = {key: getattr(camera, f"Create{key[0].upper()}{key[1:]}Attr")() for key in lens_mm}  # focalLength...
    for idx in range(len(poses)):
        time = Usd.TimeCode(first_frame + idx)
        transform.Set(Gf.Matrix4d(camera_to_world[idx].T.tolist()), time)
        for key, attr in lens_attrs.items():
            attr.Set(float(lens_mm[key][idx] * _USD_TENTHS_PER_MM), time)
    atomic_write_text(path, stage.GetRootLayer().ExportToString())
    return path


def _usd_lens_mm(Ks: np.ndarray, width: int, height: int, sensor_width_mm: float) -> dict[str, np.ndarray]:
    """UsdGeomCamera lens and film back per frame, in millimetres (see :func:`write_usd_camera`).  # each [F]"""
    fx, fy, cx, cy = Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2]
    focal_mm = focal_mm_from_px(fx, sensor_width_mm, width)
    mm_per_px_x, mm_per_px_y = sensor_width_mm / width, focal_mm / fy
    return {
        "focalLength": focal_mm,
        "horizontalAperture": np.full(len(Ks), float(sensor_width_mm)),
        "verticalAperture": height * mm_per_px_y,
        "horizontalApertureOffset": (width / 2 - cx) * mm_per_px_x,
        "verticalApertureOffset": (cy - height / 2) * mm_per_px_y,
    }


# ---- timecode -----------------------------------------------------------------------------------


def _timecode_start(timecode: str, rate: Fraction) -> tuple[int, bool]:
    """Frame number of ``timecode`` since 00:00:00:00, and whether it is drop-frame (``;`` before FF)."""
    seconds = parse_timecode(timecode, rate)  # validates, and raises a ValueError that says what is wrong
    drop = str(timecode).strip().rstrip("0123456789")[-1:] != ":"
    return round(seconds * rate), drop


def _timecode_fields(frame_number: int, rate: Fraction, drop: bool) -> tuple[int, int, int, int]:
    """(hours, minutes, seconds, frames) of a frame number since 00:00:00:00, wrapping at 24 h.

    Drop-frame skips frame labels 0-1 (0-3 at 59.94) at the start of each minute not divisible by
    10, the inverse of :func:`reshoot.sync.parse_timecode`.
    """
    nominal = round(rate)
    if drop:
        dropped = nominal // 15
        per_minute, per_ten = 60 * nominal - dropped, 600 * nominal - 9 * dropped
        tens, rest = divmod(frame_number % (144 * per_ten), per_ten)
        frame_number = tens * 600 * nominal + rest
        if rest >= dropped:
            frame_number += dropped * ((rest - dropped) // per_minute)
    else:
        frame_number %= 86400 * nominal
    seconds, frames = divmod(frame_number, nominal)
    return seconds // 3600, seconds // 60 % 60, seconds % 60, frames


# ---- checks and staging -------------------------------------------------------------------------


class _StagedFiles:
    """Files written under hidden temporary names, moved to their final names together on success."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def add(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        atomic_write_bytes(tmp, data)
        self._pending.append((tmp, path))

    @property
    def paths(self) -> list[Path]:
        return [path for _, path in self._pending]

    def __enter__(self) -> _StagedFiles:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            for tmp, path in self._pending:
                os.replace(tmp, path)
        else:
            for tmp, _ in self._pending:
                tmp.unlink(missing_ok=True)


def _aligned(
    what: str, first_frame: int, frames: Iterable[np.ndarray], count: int | None, **extras: Iterable | None
) -> Iterator[tuple]:
    """Yield ``(idx, frame, *extras)``; raise if the per-frame iterables or ``count`` poses disagree in length."""
    iterators = {key: iter(values) for key, values in extras.items() if values is not None}
    n = 0
    for idx, frame in enumerate(frames):
        if count is not None and idx >= count:
            raise ValueError(f"{what}: more frames than the {count} poses given: frame "
                             f"{_frame_label(idx, first_frame)} has no world_to_camera / K; give one pose per frame")
        row = [next(iterators[key], _END) if key in iterators else None for key in extras]
        for key, value in zip(extras, row):
            if value is _END:
                raise ValueError(f"{what}: {key} ran out at frame {_frame_label(idx, first_frame)}; "
                                 f"give one {key} image per frame")
        n = idx + 1
        yield (idx, frame, *row)
    if n == 0:
        raise ValueError(f"{what}: no frames given")
    if count is not None and n != count:
        raise ValueError(f"{what}: {n} frames for {count} poses (world_to_camera, K); give one pose per frame")
    for key, iterator in iterators.items():
        if next(iterator, _END) is not _END:
            raise ValueError(f"{what}: {key} has more images than the {n} frames")


def _frame_label(idx: int, first_frame: int) -> str:
    return f"{first_frame + idx} (index {idx})"


def _frame_path(folder: Path, name: str, frame: int, ext: str) -> Path:
    return folder / f"{name}.{frame:04d}.{ext}"


def check_file_stem(name: str, what: str) -> None:
    """Refuse a ``name`` that cannot begin a file name in the folder written (empty, hidden, or holding a folder);
    ``what`` names it in the error (``"--name"``)."""
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        raise ValueError(f"{what} {name!r} must be a plain file name stem such as 'shot' (no '/', not starting with "
                         "'.'): it begins the names of the files written")


def _check_sequence_naming(what: str, name: str, first_frame: int) -> None:
    check_file_stem(name, f"{what}: name")
    if not isinstance(first_frame, (int, np.integer)) or first_frame < 0:
        raise ValueError(f"{what}: first_frame must be a whole number >= 0, got {first_frame!r}")


def _rgb(what: str, frame: np.ndarray, label: str) -> np.ndarray:  # [H, W, 3] float32 in [0, 1]
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{what}: frame {label}: expected shape [H, W, 3], got {list(array.shape)}")
    return _unit_values(what, "pixels", array, label)


def _plane(what: str, kind: str, values: np.ndarray, label: str, size: tuple[int, int]) -> np.ndarray:  # [H, W]
    """An alpha plane (as :func:`_unit_values`) or a depth plane (float32, >= 0 or +inf), checked."""
    array = np.asarray(values)
    array = array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
    _check_size(what, f"{label} {kind}", array.shape, size)
    if kind != "depth":
        return _unit_values(what, kind, array, label)
    array = array.astype(np.float32)
    _check_finite(what, kind, np.where(array == np.inf, 0.0, array), label)  # +inf: nothing was hit
    if (array < 0).any():
        raise ValueError(f"{what}: depth of frame {label} has negative values (min {array.min()}); depth is the "
                         "distance along the optical axis, >= 0")
    return array


def _unit_values(what: str, kind: str, array: np.ndarray, label: str) -> np.ndarray:
    """uint8 (0-255) or float values as float32 in [0, 1] (floats clipped); non-finite values refused."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what}: {kind} of frame {label} is {array.dtype}; give float values in [0, 1] or uint8")
    _check_finite(what, kind, array, label)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _check_finite(what: str, kind: str, array: np.ndarray, label: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0][:2])
        raise ValueError(f"{what}: {kind} of frame {label} has {int(bad.sum())} non-finite values (NaN or inf), "
                         f"the first at pixel x={x}, y={y}; fix the render before delivering it")


def _check_size(what: str, label: str, shape: tuple[int, ...], size: tuple[int, int]) -> None:
    """``shape`` (an image's [H, W], or a plane's whole shape) must be ``size`` = (height, width)."""
    if tuple(shape) != tuple(size):
        raise ValueError(f"{what}: frame {label}: expected {size[1]}x{size[0]} (width x height), "
                         f"got shape {list(shape)}")


def _check_image_size(what: str, image_size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0 or (width, height) != tuple(image_size):
        raise ValueError(f"{what}: image_size must be (width, height) in whole pixels > 0, got {image_size!r}")
    return width, height


def _check_cameras(what: str, world_to_camera: np.ndarray, K: np.ndarray, first_frame: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Poses ``[F, 4, 4]`` (rigid, finite) and intrinsics ``[F, 3, 3]`` (finite, no skew, positive focal)."""
    poses = np.asarray(world_to_camera, dtype=np.float64)
    Ks = np.asarray(K, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise ValueError(f"{what}: world_to_camera: expected shape [F, 4, 4] with F >= 1, got {list(poses.shape)}")
    if Ks.shape != (len(poses), 3, 3):
        raise ValueError(f"{what}: K: expected shape [{len(poses)}, 3, 3] (one per pose), got {list(Ks.shape)}")
    for label, array in (("world_to_camera", poses), ("K", Ks)):
        bad = np.flatnonzero(~np.isfinite(array).reshape(len(array), -1).all(axis=1))
        if bad.size:
            raise ValueError(f"{what}: {label} of frame {_frame_label(int(bad[0]), first_frame)} is not finite")
    R = poses[:, :3, :3]
    rigid = (np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2)) < 1e-6) & (np.linalg.det(R) > 0)
    rigid &= np.abs(poses[:, 3] - [0, 0, 0, 1]).max(axis=1) < 1e-12
    bad = np.flatnonzero(~rigid)
    if bad.size:
        raise ValueError(f"{what}: world_to_camera of frame {_frame_label(int(bad[0]), first_frame)} is not a rigid "
                         f"pose [[R, t], [0, 0, 0, 1]] with R a rotation: {poses[bad[0]].tolist()}")
    pinhole = (Ks[:, 0, 0] > 0) & (Ks[:, 1, 1] > 0) & (Ks[:, [0, 1], [1, 0]] == 0).all(1)
    pinhole &= (Ks[:, 2] == [0, 0, 1]).all(1)
    bad = np.flatnonzero(~pinhole)
    if bad.size:
        raise ValueError(f"{what}: K of frame {_frame_label(int(bad[0]), first_frame)} is not [[fx, 0, cx], "
                         f"[0, fy, cy], [0, 0, 1]] with fx, fy > 0: {Ks[bad[0]].tolist()}")
    return poses, Ks
