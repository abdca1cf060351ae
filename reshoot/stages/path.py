"""The path stage: the missing angle designed as a camera path, and pictures of the plan.

Reads ``WS/ingest`` (the timeline) and ``WS/register`` (the set cameras and sparse points), and for
``--follow`` the reconstructed scene; writes ``WS/path/``::

    path.json         the CameraPath (reshoot's JSON): a pose, lens and footage frame for every output frame
    plan.png          the set from above: sparse points, the real cameras, the new path and its cameras
    plan.glb          the same in 3D (points, camera frusta, the path) for any glTF viewer

Builders (``PathConfig.kind``): ``overhead`` (above the action looking down, optionally following the actor),
``dolly`` (from one set camera to another), ``orbit`` (around a point), ``offset`` (a set camera moved),
``between`` (given first and last poses, or two set cameras), ``import`` (a nerfstudio ``camera_path.json``,
a Nuke ``.chan`` or reshoot's own path JSON). The path is checked (time range, lens) before it is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reshoot import camera_path as paths
from reshoot.atomic import atomic_write_bytes
from reshoot.camera_path import CameraPath, PathError, Timeline
from reshoot.cameras import Cameras, look_at
from reshoot.deliver import check_file_stem
from reshoot.path_io import read_json
from reshoot.splat.pointcloud import read_points_ply
from reshoot.viz import save_png, top_view
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 1


@dataclass(frozen=True)
class PathConfig:
    """The new camera's path. Distances are in the registered world's units (the farthest registered image is 1 unit
    from the sparse points' median); angles in degrees; lenses in mm on a ``sensor_width_mm`` sensor."""

    kind: Literal["overhead", "dolly", "orbit", "offset", "between", "import"] = "overhead"
    """overhead: above the action looking down; dolly: from set camera A to B; orbit: around a point; offset: a set
    camera moved; between: from a first to a last pose (eyes and targets, or set cameras); import: a nerfstudio
    camera_path.json, Nuke .chan or reshoot path .json."""
    name: str | None = None
    """The path's name, used in file names (if not given: the kind)."""
    width: int | None = None
    """Output width in pixels, even (if not given: the first set camera's; for dolly, offset and between the camera the
    move starts from)."""
    height: int | None = None
    """Output height in pixels, even (if not given: as the width)."""
    focal_mm: float | None = None
    """Lens focal length (if not given: overhead 24 mm; other kinds: the set cameras' own lenses)."""
    sensor_width_mm: float = 36.0
    """Sensor width the focal length refers to (36: full frame)."""
    target: tuple[float, float, float] | None = None
    """overhead/orbit: the point looked at (if not given: where the set cameras' optical axes meet)."""
    elevation: float | None = None
    """overhead: height above the target (if not given: the rig's radius); orbit: height above the centre."""
    tilt_deg: float = 0.0
    """overhead: tilt away from straight down."""
    heading_deg: float | None = None
    """overhead: the world direction (degrees from +X towards +Y) that is up in the picture (if not given: from the set
    cameras' mean position towards the target, so the picture is turned like theirs: what is on their right is on
    its right)."""
    roll_deg: float = 0.0
    """overhead: turn the camera about its lens axis (positive: the picture's content turns counter-clockwise)."""
    follow: bool = False
    """overhead: follow the actor (the dynamic Gaussians' centre at each instant; needs `reshoot reconstruct`)."""
    camera_a: str | None = None
    """dolly and between: the set camera where the move starts; offset: the camera to move."""
    camera_b: str | None = None
    """dolly and between: the set camera where the move ends."""
    start_eye: tuple[float, float, float] | None = None
    """between: the first pose's camera position (instead of camera_a), looking at start_target."""
    start_target: tuple[float, float, float] | None = None
    """between: the point the first pose looks at."""
    end_eye: tuple[float, float, float] | None = None
    """between: the last pose's camera position (instead of camera_b), looking at end_target."""
    end_target: tuple[float, float, float] | None = None
    """between: the point the last pose looks at."""
    radius: float | None = None
    """orbit: distance from the centre (if not given: the rig's radius)."""
    degrees: float = 90.0
    """orbit: how far round the camera goes over the shot."""
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """offset: the move in the camera's own axes (right, down, forward)."""
    rotate_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """offset: pan, tilt, roll."""
    file: Path | None = None
    """import: a nerfstudio camera_path.json, a Nuke .chan or a reshoot path .json."""

    def __post_init__(self) -> None:
        if self.kind == "import" and self.file is None:
            raise ValueError("path kind 'import' needs --file (a camera_path.json, .chan or reshoot .json)")
        if self.kind in ("dolly",) and not (self.camera_a and self.camera_b):
            raise ValueError("path kind 'dolly' needs --camera-a and --camera-b (set camera ids)")
        if self.kind == "offset" and not self.camera_a:
            raise ValueError("path kind 'offset' needs --camera-a (the set camera to move)")
        if (self.width is None) != (self.height is None):
            raise ValueError(f"give both --width and --height or neither; got --width {self.width}, --height "
                             f"{self.height}")
        if self.width is not None and (self.width % 2 or self.height % 2 or self.width <= 0 or self.height <= 0):
            raise ValueError(f"--width and --height must be even and > 0 (H.264 and ProRes need even sizes); got "
                             f"{self.width}x{self.height}")
        if self.focal_mm is not None and not (math.isfinite(self.focal_mm) and self.focal_mm > 0):
            raise ValueError(f"--focal-mm {self.focal_mm:g}: a lens needs a focal length > 0 mm (e.g. 24); leave "
                             "--focal-mm out for the default (overhead: 24 mm; other kinds: the set cameras' own "
                             "lenses)")
        if not (math.isfinite(self.sensor_width_mm) and self.sensor_width_mm > 0):
            raise ValueError(f"--sensor-width-mm {self.sensor_width_mm:g}: a sensor needs a width > 0 mm "
                             "(36: full frame)")
        if self.name is not None:
            check_file_stem(self.name, "--name")


def run_path(workspace: Workspace, config: PathConfig = PathConfig(), force: bool = False) -> StageResult:
    """Build the camera path into ``WS/path`` (see the module docstring)."""
    upstream = ["ingest", "register"] + (["reconstruct"] if config.follow else [])
    return workspace.run_stage("path", config, lambda ctx: _path(ctx, config), upstream=upstream,
                               inputs=[config.file] if config.file else [], force=force, version=_VERSION)


def _path(ctx: StageContext, config: PathConfig) -> dict[str, Any]:
    root = ctx.workspace.root
    timeline = Timeline.from_workspace(root)
    registered = json.loads((ctx.workspace.stage_dir("register") / "cameras.json").read_text())
    cameras = Cameras.from_json(registered)
    with ctx.timer("build"):
        path = build_path(config, cameras, timeline, root)
    warnings = list(path.check(timeline))
    width, height = path.image_size
    if width % 2 or height % 2:
        raise PathError(f"path '{path.name}' is {width}x{height}: H.264 and ProRes need even sizes; pass --width and "
                        f"--height (e.g. {width - width % 2}x{height - height % 2})")
    path.save(ctx.out_dir / "path.json")
    points, colours = read_points_ply(ctx.workspace.stage_dir("register") / "sparse_points.ply")
    with ctx.timer("plan"):
        save_png(plan_picture(cameras, path, points), ctx.out_dir / "plan.png")
        atomic_write_bytes(ctx.out_dir / "plan.glb", plan_scene(cameras, path, points, colours).export(file_type="glb"))
    focal = np.asarray(path.focal_mm)
    return {"name": path.name, "kind": config.kind, "frames": len(path), "image_size": list(path.image_size),
            "fps": str(path.fps), "timeline_frames": [float(path.timeline_frames[0]), float(path.timeline_frames[-1])],
            "focal_mm": [float(focal.min()), float(focal.max())],
            "vertical_fov_deg": float(np.mean(path.vertical_fov_deg)), "start_timecode": path.start_timecode,
            "warnings": warnings}


def build_path(config: PathConfig, cameras: Cameras, timeline: Timeline, workspace_root: Path) -> CameraPath:
    """The CameraPath that ``config`` describes, over the set ``cameras`` and the footage's ``timeline``."""
    size = None if config.width is None else (int(config.width), int(config.height))
    common = {"image_size": size, "sensor_width_mm": config.sensor_width_mm,
              **({"name": config.name} if config.name else {})}  # else each builder's own name
    if config.kind == "overhead":
        follow = actor_track(workspace_root, timeline) if config.follow else None
        lens = {} if config.focal_mm is None else {"focal_mm": config.focal_mm}  # else the builder's, 24 mm
        return paths.overhead_path(cameras, timeline, target=config.target, height=config.elevation,
                                   tilt_deg=config.tilt_deg, heading_deg=config.heading_deg, roll_deg=config.roll_deg,
                                   follow=follow,
                                   **lens, **common)
    _check_ids(cameras, [c for c in (config.camera_a, config.camera_b) if c])
    if config.kind == "dolly":
        return paths.dolly_path(cameras, config.camera_a, config.camera_b, timeline, focal_mm=config.focal_mm,
                                **common)
    if config.kind == "orbit":
        return paths.orbit_path(cameras, timeline, centre=config.target, radius=config.radius,
                                height=config.elevation, degrees=config.degrees, focal_mm=config.focal_mm, **common)
    if config.kind == "offset":
        return paths.offset_path(cameras, config.camera_a, timeline, translate=config.translate,
                                 rotate_deg=config.rotate_deg, focal_mm=config.focal_mm, **common)
    if config.kind == "between":
        start = _pose(config.camera_a, config.start_eye, config.start_target, "start")
        end = _pose(config.camera_b, config.end_eye, config.end_target, "end")
        return paths.between_path(start, end, timeline, set_cameras=cameras, focal_mm=config.focal_mm, **common)
    return import_path(Path(config.file), timeline, cameras, config)


def import_path(file: Path, timeline: Timeline, cameras: Cameras, config: PathConfig) -> CameraPath:
    """A path from a nerfstudio camera_path.json, a Nuke .chan or a reshoot path .json (by content and suffix)."""
    if not file.is_file():
        raise PathError(f"no camera path file at {file}")
    name = config.name or file.stem
    if file.suffix.lower() == ".chan":
        size = (config.width, config.height) if config.width else tuple(int(v) for v in cameras.image_size[0])
        return paths.read_chan(file, timeline, size, timeline.fps, sensor_width_mm=config.sensor_width_mm, name=name,
                               focal_mm=config.focal_mm)
    if config.width is not None:
        raise PathError(f"--width/--height apply to .chan imports only; {file.name} carries its own picture size")
    data = read_json(file)
    if "camera_path" in data:
        return paths.read_nerfstudio_camera_path(file, timeline, name=name)
    path = CameraPath.from_json(data, source=str(file))
    return replace(path, name=config.name) if config.name else path


def actor_track(workspace_root: Path, timeline: Timeline) -> np.ndarray:
    """The actor's centre at every timeline frame, from the reconstructed scene's dynamic Gaussians.  # [T, 3]"""
    from reshoot.stages.reconstruct import load_scene

    scene, _ = load_scene(Path(workspace_root) / "reconstruct" / "scene.pt")
    if scene.num_dynamic == 0:
        raise PathError("--follow needs a scene with moving (dynamic) Gaussians; this one has none. Reconstruct "
                        "with --dynamic-per-instant > 0, or leave --follow off")
    return np.stack([scene.dynamic_centre(float(timeline.shot_time(i))) for i in range(timeline.frame_count)])


def plan_picture(cameras: Cameras, path: CameraPath, points: np.ndarray | None = None, size_px: int = 720):
    """The set from above: points, the set cameras, the path's line and every few of its cameras (PIL image)."""
    step = max(1, len(path) // 8)
    shown = path.cameras().select([path.cameras().camera_ids[i] for i in range(0, len(path), step)])
    return top_view(cameras, points, paths={path.name: path.centers}, size_px=size_px, secondary=shown,
                    title=f"plan: '{path.name}', {len(path)} frames at {float(path.fps):g} fps, "
                          f"{float(np.mean(path.focal_mm)):.0f} mm")


#: The registered world (+Z up) to glTF's axes (+Y up, right-handed): x stays, y = z, z = -y.
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


def plan_scene(cameras: Cameras, path: CameraPath, points: np.ndarray | None = None, colours: np.ndarray | None = None):
    """A trimesh Scene of the plan: the sparse points, a frustum per set camera, the path's line and a frustum
    every few of its frames (export with ``.export(file_type="glb")``), turned to glTF's +Y up (``Z_UP_TO_Y_UP``)."""
    import trimesh

    scene = trimesh.Scene()
    scale = float(np.linalg.norm(cameras.centers - cameras.centers.mean(0), axis=1).max() or 1.0)
    if points is not None and len(points):
        rgba = np.full((len(points), 4), 160, np.uint8) if colours is None else np.c_[colours, np.full(len(points), 255)]
        scene.add_geometry(trimesh.PointCloud(points, colors=rgba.astype(np.uint8)), geom_name="sparse_points")
    for i, camera_id in enumerate(cameras.camera_ids):
        scene.add_geometry(_frustum(cameras.select([camera_id]), 0.12 * scale, (40, 110, 220)), geom_name=camera_id)
    if len(path) > 1:
        line = trimesh.load_path(np.stack([path.centers[:-1], path.centers[1:]], 1))
        line.colors = np.tile([220, 50, 40, 255], (len(line.entities), 1))
        scene.add_geometry(line, geom_name=f"{path.name}_path")
    step = max(1, len(path) // 8)
    for i in range(0, len(path), step):
        scene.add_geometry(_frustum(path.camera(i), 0.08 * scale, (220, 50, 40)), geom_name=f"{path.name}_{i:04d}")
    scene.apply_transform(Z_UP_TO_Y_UP)  # glTF's up is +Y; the registered world's is +Z
    return scene


def _frustum(camera: Cameras, depth: float, colour: tuple[int, int, int]):
    """A camera (one) as lines: its centre to the four corners of its picture at ``depth`` along its axis."""
    import trimesh

    w, h = (float(v) for v in camera.image_size[0])
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]]) @ np.linalg.inv(camera.K[0]).T * depth
    camera_to_world = np.linalg.inv(camera.world_to_camera[0])
    world = np.vstack([np.zeros(3), corners]) @ camera_to_world[:3, :3].T
    world += camera_to_world[:3, 3]
    segments = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]
    lines = trimesh.load_path(np.stack([[world[a], world[b]] for a, b in segments]))
    lines.colors = np.tile([*colour, 255], (len(lines.entities), 1))
    return lines


def _pose(camera_id: str | None, eye, target, which: str) -> str | np.ndarray:
    if eye is not None and target is not None:
        view = np.asarray(target, float) - np.asarray(eye, float)
        vertical = abs(view[2]) > 0.999 * np.linalg.norm(view)  # straight down or up: +Z cannot be the picture's up
        return look_at(eye, target, up=(0.0, 1.0, 0.0) if vertical else (0.0, 0.0, 1.0))
    if camera_id:
        return camera_id
    raise PathError(f"kind 'between' needs the {which} pose: --{which}-eye and --{which}-target, or a set camera "
                    f"(--camera-{'a' if which == 'start' else 'b'})")


def _check_ids(cameras: Cameras, ids: list[str]) -> None:
    unknown = [c for c in ids if c not in cameras.camera_ids]
    if unknown:
        raise PathError(f"no set camera {', '.join(map(repr, unknown))}; the registered cameras are "
                        f"{', '.join(cameras.camera_ids)}")
