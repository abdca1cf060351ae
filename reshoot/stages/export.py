"""The export stage: the new shot as files a post house opens.

Reads the path (``WS/path``) and its frames: the refined shot (``WS/refine``) when there is one, else the guide
frames (``WS/guide``). Writes ``WS/export/``::

    png/NAME.1001.png ...          8-bit PNG sequence (png16/: 16-bit) numbered from --first-frame
    exr/NAME.1001.exr ...          OpenEXR half float, ACEScg by default (--exr-colourspace): RGBA (+ Z depth
                                   from the guide), the colourspace, camera matrices and timecode in each header
    NAME.mp4 / NAME.mov            H.264 MP4 and ProRes 422 MOV, with the shot's start timecode
    NAME.chan                      the camera for Nuke (Y-up world, ZXY rotations, vertical FOV)
    NAME_camera_path.json          the camera for nerfstudio (its viewer's camera_path.json)
    NAME.path.json                 reshoot's own camera path
    NAME.usda                      a USD camera, where usd-core is installed
    NAME.abc                       an Alembic camera (Y-up world), where the alembic extra is installed
    NAME.otio                      the shot as an OpenTimelineIO timeline (the movie and the EXR sequence as its
                                   media, the footage's timecode), where opentimelineio is installed
    NAME.edl                       the shot as a CMX 3600 EDL (one cut, the movie as source)
    contact_sheet.png              frames of the shot with their frame numbers, footage frames and timecodes
    side_by_side.png               the new angle beside the nearest real camera at the same instants

Colour: the frames are display-referred sRGB, as reshoot renders them. PNGs keep those values, movies carry them
as Rec.709 video, and the EXRs hold them converted by OpenColorIO to scene-linear ACEScg, ACES2065-1 (optionally as
SMPTE ST 2065-4 ACES container files) or linear Rec.709 (:mod:`reshoot.colour`).

The shot's start timecode is the footage timeline's at the path's first footage frame, so the new angle lines
up with the set cameras' footage in an edit.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Literal, get_args

import numpy as np

from reshoot import colour, deliver, editorial
from reshoot.alembic_camera import alembic_available, alembic_name, write_alembic_camera
from reshoot.atomic import ANOTHER_WORKSPACE, naming_full_disk
from reshoot.camera_path import CameraPath, Timeline, format_timecode, write_chan, write_nerfstudio_camera_path
from reshoot.cameras import Cameras
from reshoot.footage import read_image
from reshoot.stages.guide import load_shot_frames
from reshoot.sync import parse_timecode
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 3  # 3: Alembic, OTIO, EDL; 2: EXRs colour-managed, ACEScg by default (1: linear Rec.709)
Format = Literal["png", "png16", "exr", "mp4", "mov", "chan", "nerfstudio", "json", "usd", "abc", "otio", "edl"]
ALL_FORMATS: tuple[str, ...] = ("png", "exr", "mp4", "mov", "chan", "nerfstudio", "json", "usd", "abc", "otio", "edl")
_OPTIONAL = {  # formats that need an optional package: (is it installed, how to get it)
    "usd": (lambda: importlib.util.find_spec("pxr") is not None, "usd-core: pip install usd-core"),
    "abc": (alembic_available, "the Alembic extra: pip install 'reshoot[alembic]'"),
    "otio": (lambda: importlib.util.find_spec("opentimelineio") is not None,
             "OpenTimelineIO: pip install 'reshoot[editorial]'"),
}
ExrColourspace = Literal["ACEScg", "ACES2065-1", "lin_rec709"]
ExrCompression = Literal["zip", "piz", "dwab", "none"]
_EXR_COLOURSPACES, _EXR_COMPRESSIONS = get_args(ExrColourspace), get_args(ExrCompression)


class ExportError(RuntimeError):
    """The shot cannot be exported as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ExportConfig:
    """What the export stage writes."""

    formats: tuple[Format, ...] = ()
    """Which files to write (if not given: all of png, exr, mp4, mov, chan, nerfstudio, json, edl, and usd, abc and otio
    where usd-core, the alembic extra and opentimelineio are installed; png16 on request)."""
    source: Literal["auto", "guide", "refine"] = "auto"
    """Frames to export: auto takes the refined shot when `reshoot refine` has run, else the guide frames."""
    first_frame: int = 1001
    """Frame number of the shot's first frame in sequences and camera files (1001: the post-house habit)."""
    name: str | None = None
    """Base name of the files (if not given: the path's name)."""
    exr_colourspace: Literal["auto", ExrColourspace] = "auto"
    """Colourspace of the EXRs, named in their headers: ACEScg (scene-linear, ACES AP1 primaries: the VFX working
    space), ACES2065-1 (scene-linear, AP0: ACES interchange and archive) or lin_rec709 (scene-linear Rec.709
    primaries, as reshoot wrote before colour management); auto is ACEScg, or ACES2065-1 with the ACES container."""
    exr_compression: Literal["auto", ExrCompression] = "auto"
    """EXR compression: zip or piz (lossless; piz is often smaller on grainy pictures), dwab (lossy, small: for
    review) or none; auto is zip, or none with the ACES container."""
    aces_container: bool = False
    """Write the EXRs as SMPTE ST 2065-4 ACES container files: ACES2065-1, R G B (A) half float, uncompressed,
    acesImageContainerFlag 1. The standard allows no Z channel and no camera matrices: the camera is in the chan,
    USD and path files."""

    def __post_init__(self) -> None:
        if isinstance(self.first_frame, bool) or not isinstance(self.first_frame, (int, np.integer)) \
                or self.first_frame < 0:
            raise ValueError(f"--first-frame must be a whole number >= 0 (1001 is the post-house habit), got "
                             f"{self.first_frame!r}")
        if self.name is not None:
            deliver.check_file_stem(self.name, "--name")
        for flag, value, choices in (("--exr-colourspace", self.exr_colourspace, _EXR_COLOURSPACES),
                                     ("--exr-compression", self.exr_compression, _EXR_COMPRESSIONS)):
            if value != "auto" and value not in choices:
                raise ValueError(f"{flag} {value!r} is not one of {['auto', *choices]}")
        if self.aces_container and self.exr_colourspace not in ("auto", "ACES2065-1"):
            raise ValueError(f"--aces-container writes ACES2065-1 (SMPTE ST 2065-4), not --exr-colourspace "
                             f"{self.exr_colourspace}; leave --exr-colourspace out, or drop --aces-container")
        if self.aces_container and self.exr_compression not in ("auto", "none"):
            raise ValueError(f"--aces-container files are uncompressed (SMPTE ST 2065-4), not --exr-compression "
                             f"{self.exr_compression}; leave --exr-compression out, or drop --aces-container")

    def exr_settings(self) -> tuple[str, str]:
        """(colourspace, compression) of the EXRs, auto resolved: ACEScg and zip, or an ACES container's."""
        if self.aces_container:
            return "ACES2065-1", "none"
        return ("ACEScg" if self.exr_colourspace == "auto" else self.exr_colourspace,
                "zip" if self.exr_compression == "auto" else self.exr_compression)

    def chosen_formats(self) -> tuple[str, ...]:
        if self.formats:
            return tuple(dict.fromkeys(self.formats))
        return tuple(f for f in ALL_FORMATS if f not in _OPTIONAL or _OPTIONAL[f][0]())


def run_export(workspace: Workspace, config: ExportConfig = ExportConfig(), force: bool = False) -> StageResult:
    """Write the deliverables into ``WS/export`` (see the module docstring)."""
    source = _source(workspace, config.source)
    formats = config.chosen_formats()
    for fmt in formats:
        if fmt in _OPTIONAL and not _OPTIONAL[fmt][0]():
            raise ExportError(f"format '{fmt}' needs {_OPTIONAL[fmt][1]} (or leave {fmt} out of --formats)")
    if {"otio", "edl"} & set(formats) and not {"exr", "mov", "mp4"} & set(formats):
        raise ExportError("--formats otio and edl point at the EXR sequence or the movie: add exr, mov or mp4")
    return workspace.run_stage("export", config, lambda ctx: _export(ctx, config, source),
                               upstream=sorted({"guide", source}), force=force, version=_VERSION)


def _source(workspace: Workspace, choice: str) -> str:
    if choice == "auto":
        stale = {row["stage"] for row in workspace.status() if row["state"] != "complete"}
        if workspace.manifest("refine") and "refine" in stale:
            raise ExportError(f"the refined shot in {workspace.root / 'refine'} is older than what it was made from "
                              f"(see `reshoot status`): re-run `reshoot refine --workspace {workspace.root}`, or "
                              "export the guide frames with --source guide")
        return "refine" if workspace.manifest("refine") else "guide"
    if not workspace.manifest(choice):
        raise ExportError(f"--source {choice}: the {choice} stage has not run in {workspace.root}; run "
                          f"`reshoot {choice} --workspace {workspace.root}` first")
    return choice


def _export(ctx: StageContext, config: ExportConfig, source: str) -> dict[str, Any]:
    root = ctx.workspace.root
    path, files = load_shot_frames(root, source)  # the path the frames were rendered from
    timeline = Timeline.from_workspace(root)
    name = config.name or path.name
    guide = ctx.workspace.stage_dir("guide")
    start_timecode = shot_start_timecode(timeline, path)
    out, formats, written = ctx.out_dir, config.chosen_formats(), {}
    first = config.first_frame

    def rgb() -> Iterator[np.ndarray]:
        for f in files:
            yield read_image(f).astype(np.float32) / 255.0

    def channel(folder: str, suffix: str) -> Iterator[np.ndarray] | None:
        paths = [guide / folder / f"{i:06d}{suffix}" for i in range(len(path))]
        if not all(p.is_file() for p in paths):
            return None
        if suffix == ".npy":  # the guide's depth is 0 where nothing is drawn; EXR's Z is +inf there
            return (np.where(d > 0, d, np.inf).astype(np.float32) for d in map(np.load, paths))
        return (read_image(p).astype(np.float32)[..., 0] / 255.0 for p in paths)

    def full_disk():  # a full disk names the export folder, not the stage's temporary one
        return naming_full_disk(ctx.workspace.stage_dir("export"), f"the shot '{name}'", ANOTHER_WORKSPACE)

    K, poses, size, fps = path.K, path.world_to_camera, path.image_size, Fraction(path.fps)
    exr_colourspace, exr_compression = config.exr_settings()
    with ctx.timer("sequences"), full_disk():
        if "png" in formats:
            written["png"] = len(deliver.write_png_sequence(out / "png", rgb(), bit_depth=8, first_frame=first,
                                                            name=name))
        if "png16" in formats:
            written["png16"] = len(deliver.write_png_sequence(out / "png16", rgb(), bit_depth=16, first_frame=first,
                                                              name=name))
        if "exr" in formats:
            written["exr"] = len(deliver.write_exr_sequence(
                out / "exr", rgb(), alpha=channel("alpha", ".png") if source == "guide" else None,
                depth=None if config.aces_container else channel("depth", ".npy"),
                world_to_camera=poses, K=K, image_size=size, fps=fps, start_timecode=start_timecode,
                colourspace=exr_colourspace, compression=exr_compression, aces_container=config.aces_container,
                premultiplied=source == "guide", first_frame=first, name=name))
    with ctx.timer("movies"), full_disk():
        for fmt, codec, suffix in (("mp4", "h264", ".mp4"), ("mov", "prores", ".mov")):
            if fmt in formats:
                written[fmt] = deliver.write_shot_video(out / f"{name}{suffix}", rgb(), fps, codec=codec,
                                                        start_timecode=start_timecode)
    with ctx.timer("cameras"):
        if "chan" in formats:
            write_chan(out / f"{name}.chan", path, first_frame=first)
            written["chan"] = 1
        if "nerfstudio" in formats:
            write_nerfstudio_camera_path(out / f"{name}_camera_path.json", path, timeline)
            written["nerfstudio"] = 1
        if "json" in formats:
            path.save(out / f"{name}.path.json")
            written["json"] = 1
        if "usd" in formats:
            deliver.write_usd_camera(out / f"{name}.usda", poses, K, size, fps, first_frame=first,
                                     sensor_width_mm=path.sensor_width_mm, name=_usd_name(name))
            written["usd"] = 1
        if "abc" in formats:
            write_alembic_camera(out / f"{name}.abc", poses, K, size, fps, first_frame=first,
                                 sensor_width_mm=path.sensor_width_mm, name=alembic_name(name))
            written["abc"] = 1
    with ctx.timer("editorial"):  # the movie an editor cuts with (ProRes first), and the EXRs for the conform
        movie = next((out / f"{name}{suffix}" for fmt, suffix in (("mov", ".mov"), ("mp4", ".mp4")) if fmt in formats),
                     None)
        exr_folder = out / "exr" if "exr" in formats else None
        if "otio" in formats:
            editorial.write_otio_timeline(out / f"{name}.otio", name, len(files), fps, start_timecode=start_timecode,
                                          exr_folder=exr_folder, first_frame=first, movie=movie)
            written["otio"] = 1
        if "edl" in formats:
            editorial.write_edl(out / f"{name}.edl", name, len(files), fps, start_timecode=start_timecode,
                                movie=movie, exr_folder=None if movie else exr_folder, first_frame=first)
            written["edl"] = 1
    with ctx.timer("pictures"):
        save_png(shot_sheet(files, path, timeline, first), out / "contact_sheet.png")
        real = nearest_real_camera(ctx.workspace.root, path)
        save_png(side_by_side(files, path, root, real), out / "side_by_side.png")
    return {"name": name, "source": source, "frames": len(files), "first_frame": first,
            "last_frame": first + len(files) - 1, "fps": str(fps), "start_timecode": start_timecode,
            "formats": list(formats), "written": written, "side_by_side_with": real,
            "colour": {"png": colour.SRGB, "movies": "Rec.709 video (BT.709 primaries, transfer and matrix)",
                       **({"exr": colour.EXR_COLOURSPACES[exr_colourspace], "exr_compression": exr_compression,
                           "aces_container": config.aces_container, **colour.describe()}
                          if "exr" in formats else {})}}


def shot_start_timecode(timeline: Timeline, path: CameraPath) -> str | None:
    """The timecode of the shot's first frame at the shot's own frame rate: the footage timeline's timecode at the
    path's first footage frame, converted through seconds (a path may run at another rate than the footage)."""
    code = timeline.timecode(int(round(float(path.timeline_frames[0]))))
    if code is None:
        return path.start_timecode
    seconds = parse_timecode(code, timeline.fps)
    return format_timecode(int(round(seconds * Fraction(path.fps))), Fraction(path.fps), drop_frame=";" in code)


def shot_sheet(files: list[Path], path: CameraPath, timeline: Timeline, first_frame: int, count: int = 8):
    """Up to ``count`` frames of the shot, in two rows, captioned with frame number, footage frame and timecode."""
    picks = np.unique(np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int))
    cells = []
    for i in picks:
        footage_frame = float(path.timeline_frames[i])
        code = timeline.timecode(int(round(footage_frame)))
        cells.append((f"{first_frame + i} f{footage_frame:g}" + (f" {code}" if code else ""), read_image(files[i])))
    half = (len(cells) + 1) // 2
    rows = {"": cells[:half]} if len(cells) <= 4 else {"": cells[:half], " ": cells[half:]}
    return contact_sheet(rows, title=f"'{path.name}': {len(files)} frames at {float(path.fps):g} fps")


def nearest_real_camera(workspace_root: Path, path: CameraPath) -> str:
    """The set camera whose view is closest to the path's (see :func:`real_cameras_by_view`)."""
    return real_cameras_by_view(workspace_root, path)[0]


def real_cameras_by_view(workspace_root: Path, path: CameraPath) -> list[str]:
    """The set cameras, the one whose view is closest to the path's first: smallest angle between the mean viewing
    directions (in 5-degree steps), then nearest position."""
    import json

    cameras = Cameras.from_json(json.loads((Path(workspace_root) / "register" / "cameras.json").read_text()))
    look = path.cameras().camera_to_world[:, :3, 2].mean(0)
    look /= np.linalg.norm(look) + 1e-12
    theirs = cameras.camera_to_world[:, :3, 2]
    angle = np.degrees(np.arccos(np.clip(theirs @ look, -1, 1)))
    distance = np.linalg.norm(cameras.centers - path.centers.mean(0), axis=1)
    return [cameras.camera_ids[i] for i in np.lexsort((distance, np.round(angle / 5)))]


def real_frame(workspace_root: Path, camera_id: str, frame: int) -> Path:
    """The ingested frame file of a set camera at a timeline frame."""
    import json

    layout = json.loads((Path(workspace_root) / "ingest" / "footage.json").read_text())["frames"]["layout"]
    return Path(workspace_root) / "ingest" / layout.replace("<camera>", camera_id).replace("<frame:06d>",
                                                                                           f"{frame:06d}")


def side_by_side(files: list[Path], path: CameraPath, workspace_root: Path, camera_id: str, count: int = 4):
    """The new angle beside what ``camera_id`` filmed at the same footage frames (``count`` instants)."""
    picks = np.unique(np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int))
    new, filmed = [], []
    for i in picks:
        frame = int(round(float(path.timeline_frames[i])))
        image = read_image(files[i])
        new.append((f"f{frame}", image))
        real = real_frame(workspace_root, camera_id, frame)
        filmed.append((f"f{frame}", read_image(real) if real.is_file() else np.zeros_like(image)))
    return contact_sheet({path.name: new, f"{camera_id} (filmed)": filmed},
                         title=f"the new angle beside the nearest real camera, {camera_id}, at the same instants")


def _usd_name(name: str) -> str:
    """A valid USD prim name from a file name."""
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return clean if clean and not clean[0].isdigit() else f"camera_{clean}"
