"""The viewer: a workspace in the browser, built on viser.

``reshoot view --workspace WS`` (or :func:`serve`) shows, in a web page:

- the reconstructed splat scene at the current instant: the set (static Gaussians, sent once) and the performance
  (the dynamic Gaussians visible then, sent again at every instant);
- a time slider over the footage timeline's frames, and a play checkbox that steps through them at the footage's
  frame rate;
- every set camera as a frustum, showing the frame it filmed at the current instant (``WS/ingest/frames``);
- the sparse points of ``WS/register/sparse_points.ply``;
- when ``WS/path`` exists, the new camera's path as a red line, and its frustum at the current instant.

It only reads the workspace (a stage may be writing it at the same time; the viewer shows what was there when it
started). It needs a finished ``reconstruct`` stage.

The module has three layers, as the rest of reshoot:

1. a pure core, from loaded workspace data to plain numpy arrays, with no I/O and no viser:
   :func:`splats_at`, :func:`frustum_pose`, :func:`path_segments`, :func:`path_frame_at`;
2. the loader, :func:`load_view`, which reads a workspace into a :class:`WorkspaceView`;
3. the wiring: :func:`start_viewer` (a running :class:`Viewer`, returned at once) and :func:`serve` (runs until
   Ctrl-C), which put the arrays into viser's scene and GUI.

Conventions: reshoot's poses are world-to-camera with OpenCV camera axes (x right, y down, z forward; see
:mod:`reshoot.cameras`). viser's frustums take a camera-to-world rotation (as a wxyz quaternion) and position, with
the same OpenCV camera axes ("frustums follow the OpenCV [+Z forward, +X right, +Y down] convention", viser 1.1's
``add_camera_frustum``), so no axis flip is needed: only the inverse pose, as a quaternion. The world is the
registered one (+Z up), which the viewer sets as viser's up direction.

What is left out: splat colours are SH band 0 only (no view-dependent shading) and no per-camera appearance
matrix, and frustums draw the principal point at the image centre and no lens distortion.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import io
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from reshoot._deps import require
from reshoot.camera_path import CameraPath, Timeline
from reshoot.cameras import Cameras
from reshoot.splat.scene import SH_C0, DynamicScene
from reshoot.workspace import StageError

VISER_HINT = "pip install 'reshoot[viewer]'  (or: pip install 'viser>=1.1,<2')"
MIN_OPACITY = 1.0 / 255.0  #: Gaussians fainter than this at an instant are not sent (they would not show)
_F16_ROOM = 3.0e4  #: the largest value a splat node's covariance may hold (float16's largest is 65504)
SET_COLOUR = (40, 110, 220)  #: the set cameras' frusta (as plan.glb draws them)
PATH_COLOUR = (220, 50, 40)  #: the new camera's path and frustum


class ViewerError(StageError):
    """The viewer cannot start as asked (no scene in the workspace, the port is taken); the message says what to do.

    A :class:`~reshoot.workspace.StageError`, so the CLI prints it without a traceback."""


# ---- 1. the pure core: workspace data -> plain arrays ------------------------------------------------------------


@dataclass(frozen=True)
class SplatArrays:
    """Gaussians at one instant, as a splat viewer draws them (activated values, world units).

    Attributes:
        centers: means.  # [N, 3] float32
        covariances: ``R diag(scale^2) R^T``, world units squared.  # [N, 3, 3] float32
        rgbs: colour from SH band 0, ``0.5 + SH_C0 * sh0`` clamped to [0, 1] (no view dependence).  # [N, 3] float32
        opacities: opacity at that instant, the temporal fade of dynamic Gaussians included.  # [N, 1] float32
    """

    centers: np.ndarray  # [N, 3]
    covariances: np.ndarray  # [N, 3, 3]
    rgbs: np.ndarray  # [N, 3]
    opacities: np.ndarray  # [N, 1]

    def __len__(self) -> int:
        return len(self.centers)


def splats_at(scene: DynamicScene, t: float, part: str = "all", min_opacity: float = MIN_OPACITY) -> SplatArrays:
    """The Gaussians of ``part`` ("all", "static": the set, or "dynamic": the performance) at normalised shot time
    ``t`` (0 at the first timeline frame, 1 at the last), leaving out those fainter than ``min_opacity`` then."""
    from reshoot.splat._gsplat_torch import quat_scale_to_covar

    with torch.no_grad():
        index = scene.visible_at(float(t), min_opacity, part)
        g = scene.at(float(t), 0, index)
        covariances = quat_scale_to_covar(g.quats, g.scales)
        rgbs = (0.5 + SH_C0 * g.colors[:, 0, :]).clamp(0.0, 1.0)
        return SplatArrays(g.means.float().numpy().copy(), covariances.float().numpy(), rgbs.float().numpy(),
                           g.opacities.float().numpy()[:, None].copy())


@dataclass(frozen=True)
class FrustumPose:
    """A camera as viser draws a frustum.

    Attributes:
        wxyz: the camera-to-world rotation as a unit quaternion, w first; OpenCV camera axes.  # [4]
        position: the camera centre in the world.  # [3]
        fov_y_rad: vertical field of view, radians (principal point taken at the image centre).
        aspect: image width over height.
    """

    wxyz: np.ndarray  # [4]
    position: np.ndarray  # [3]
    fov_y_rad: float
    aspect: float


def frustum_pose(K: np.ndarray, image_size: tuple[int, int] | np.ndarray, world_to_camera: np.ndarray) -> FrustumPose:
    """The frustum of a pinhole camera with intrinsics ``K`` [3, 3] (pixels), ``image_size`` (width, height) and
    pose ``world_to_camera`` [4, 4] (reshoot's convention: OpenCV axes)."""
    from scipy.spatial.transform import Rotation

    K, pose = np.asarray(K, np.float64), np.asarray(world_to_camera, np.float64)
    if K.shape != (3, 3) or pose.shape != (4, 4):
        raise ValueError(f"frustum_pose: expected K [3, 3] and world_to_camera [4, 4], got {list(K.shape)} and "
                         f"{list(pose.shape)}")
    width, height = (float(v) for v in image_size)
    camera_to_world = np.linalg.inv(pose)
    xyzw = Rotation.from_matrix(camera_to_world[:3, :3]).as_quat()
    return FrustumPose(np.array([xyzw[3], *xyzw[:3]]), camera_to_world[:3, 3].copy(),
                       float(2.0 * np.arctan(height / 2.0 / K[1, 1])), width / height)


def path_segments(path: CameraPath, min_length: float = 1e-9) -> np.ndarray:
    """The path's camera centres joined frame to frame, as line segments, leaving out those shorter than
    ``min_length`` (frames where the camera stands still: a still camera has none).  # [S <= F - 1, 2, 3]"""
    centres = path.centers
    segments = np.stack([centres[:-1], centres[1:]], axis=1)
    return segments[np.linalg.norm(segments[:, 1] - segments[:, 0], axis=-1) >= min_length]


def path_frame_at(path: CameraPath, timeline_frame: float) -> int:
    """The output frame of ``path`` that shows the footage timeline frame nearest ``timeline_frame`` (the first one
    when several do: a path that freezes the performance shows it from its first such frame)."""
    return int(np.argmin(np.abs(np.asarray(path.timeline_frames) - float(timeline_frame))))


def thumbnail(image: np.ndarray, max_width_px: int) -> np.ndarray:
    """``image`` [H, W, C] shrunk (area average) to at most ``max_width_px`` wide, for a frustum's picture."""
    height, width = image.shape[:2]
    if width <= max_width_px:
        return image
    from PIL import Image

    size = (max_width_px, max(1, round(height * max_width_px / width)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


# ---- 2. the loader: a workspace -> WorkspaceView ------------------------------------------------------------------


@dataclass(frozen=True)
class WorkspaceView:
    """What the viewer shows of one workspace, read once by :func:`load_view`.

    Attributes:
        root: the workspace folder.
        scene: the reconstructed splat scene (``WS/reconstruct/scene.pt``), on the CPU.
        static: the set's Gaussians (they do not change with time).
        timeline: the footage timeline (``WS/ingest/footage.json``): frame rate, frame count, timecode.
        cameras: the set cameras (``WS/register/cameras.json``).
        camera_poses: each set camera's world-to-camera pose at every timeline frame (its registered pose for that
            frame, else its set pose).  # {camera id: [T, 4, 4]}
        frame_images: the ingested frame each camera filmed at every timeline frame, or None where it has none.
            # {camera id: [T] paths}
        points: the sparse points (``WS/register/sparse_points.ply``).  # [P, 3]
        point_colours: their colours.  # [P, 3] uint8
        path: the new camera's path (``WS/path/path.json``), or None when the path stage has not run.
        load_s: seconds each loading step took (``scene``, ``static``, ``rest``).
    """

    root: Path
    scene: DynamicScene
    static: SplatArrays
    timeline: Timeline
    cameras: Cameras
    camera_poses: dict[str, np.ndarray]
    frame_images: dict[str, list[Path | None]]
    points: np.ndarray
    point_colours: np.ndarray
    path: CameraPath | None
    load_s: dict[str, float]

    def shot_time(self, frame: int) -> float:
        """The scene's normalised time at timeline frame ``frame``."""
        return float(self.timeline.shot_time(frame))


def load_view(workspace_root: Path | str) -> WorkspaceView:
    """Read what the viewer shows from a workspace with a finished ``reconstruct`` stage (a :class:`ViewerError`
    says what to run when it has none). Reads only; never creates or changes a file."""
    from reshoot.reconstruct import load_scene
    from reshoot.register import read_frame_poses
    from reshoot.splat.pointcloud import read_points_ply

    root = Path(workspace_root).resolve()
    if not (root / "workspace.json").is_file():
        raise ViewerError(f"{root} is not a reshoot workspace (no workspace.json); give the folder you passed to "
                          "`reshoot ingest --workspace` (the demo's is reshoot-demo/workspace)")
    missing = [s for s in ("ingest", "register", "reconstruct") if not (root / s / "manifest.json").is_file()]
    if missing:
        before = [f"`reshoot {s}`" for s in missing[:-1]]
        raise ViewerError(f"workspace {root} has no scene to show: its reconstruct stage has not finished (no "
                          f"reconstruct/manifest.json); run `reshoot reconstruct --workspace {root}` first"
                          + (f" (after {' and '.join(before)}, which have not run there either)" if before else ""))
    timings = {}
    started = time.perf_counter()
    try:
        scene, _ = load_scene(root / "reconstruct" / "scene.pt")
    except FileNotFoundError:
        raise ViewerError(f"workspace {root}: reconstruct/scene.pt is missing although the stage finished (broken); "
                          f"run `reshoot reconstruct --workspace {root} --force` to rebuild it") from None
    timings["scene"] = time.perf_counter() - started
    started = time.perf_counter()
    static = splats_at(scene, 0.0, "static")
    timings["static"] = time.perf_counter() - started
    started = time.perf_counter()
    timeline = Timeline.from_workspace(root)
    register = root / "register"
    cameras = Cameras.from_json(json.loads((register / "cameras.json").read_text()))
    poses = _camera_poses(cameras, read_frame_poses(register), timeline.frame_count)
    points, colours = read_points_ply(register / "sparse_points.ply")
    path = CameraPath.load(root / "path" / "path.json") if (root / "path" / "manifest.json").is_file() else None
    images = _frame_images(root / "ingest", cameras.camera_ids, timeline.frame_count)
    timings["rest"] = time.perf_counter() - started
    return WorkspaceView(root, scene, static, timeline, cameras, poses, images, points, colours, path, timings)


def _camera_poses(cameras: Cameras, frame_poses: Cameras, frame_count: int) -> dict[str, np.ndarray]:
    """Each set camera's pose at every timeline frame: its frame's registered pose (ids ``<camera>/<frame:06d>``,
    as :func:`reshoot.register.read_frame_poses` gives them), else its set pose."""
    poses = {c: np.repeat(cameras.world_to_camera[i][None], frame_count, axis=0)
             for i, c in enumerate(cameras.camera_ids)}
    for i, frame_id in enumerate(frame_poses.camera_ids):
        camera_id, _, frame = frame_id.rpartition("/")
        if camera_id in poses and 0 <= int(frame) < frame_count:
            poses[camera_id][int(frame)] = frame_poses.world_to_camera[i]
    return poses


def _frame_images(ingest: Path, camera_ids: tuple[str, ...], frame_count: int) -> dict[str, list[Path | None]]:
    """The ingested frame file of each camera at each timeline frame (``footage.json``'s ``frames.layout``), or None
    where ingest wrote none (the camera was not rolling then)."""
    layout = json.loads((ingest / "footage.json").read_text())["frames"]["layout"]
    images = {}
    for camera_id in camera_ids:
        paths = [ingest / layout.replace("<camera>", camera_id).replace("<frame:06d>", f"{f:06d}")
                 for f in range(frame_count)]
        present = set(paths[0].parent.iterdir()) if paths and paths[0].parent.is_dir() else set()
        images[camera_id] = [p if p in present else None for p in paths]
    return images


# ---- 3. the wiring: viser ----------------------------------------------------------------------------------------


class Viewer:
    """A running viewer: the viser server, its scene and GUI, a thread that draws the instant asked for last (slider
    moves that come faster than it draws are skipped, never queued) and one that plays.

    Attributes:
        view: the workspace's data.
        server: the ``viser.ViserServer``.
        url: the address it answers on, ``http://HOST:PORT``.
        draw_s: seconds each drawn instant took on this side (splats, pictures, path): the last 1000.
    """

    def __init__(self, view: WorkspaceView, server: Any, url: str, image_px: int = 320) -> None:
        self.view, self.server, self.url, self.image_px = view, server, url, image_px
        self.draw_s: deque[float] = deque(maxlen=1000)
        self._wanted, self._drawn = 0, -1
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._scale = _transport_scale(view.static)
        self._build_scene()
        self._build_gui()
        self._draw(0)
        self._threads = [threading.Thread(target=self._draw_loop, name="reshoot-viewer-draw", daemon=True),
                         threading.Thread(target=self._play_loop, name="reshoot-viewer-play", daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def frame(self) -> int:
        """The timeline frame drawn last."""
        return self._drawn

    def show_frame(self, frame: int, timeout_s: float = 30.0) -> None:
        """Move the time slider to timeline frame ``frame`` (as a viewer would) and wait until it is drawn."""
        last = self.view.timeline.frame_count - 1
        if not 0 <= int(frame) <= last:
            raise ValueError(f"frame {frame} is outside the footage timeline's frames 0..{last}")
        self.slider.value = int(frame)  # every browser's slider follows (and its callback asks for the frame)
        self._want(int(frame))  # the slider may show it already while another frame was asked for since
        if not self.wait_drawn(int(frame), timeout_s):
            raise TimeoutError(f"the viewer did not draw frame {frame} within {timeout_s:g} s")

    def wait_drawn(self, frame: int, timeout_s: float = 30.0) -> bool:
        """Wait until ``frame`` is the frame drawn; False when ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._drawn == frame and self._wanted == frame, timeout_s)

    def stop(self) -> None:
        """Stop playing and drawing and close the server (its connections close; the port is free again)."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        with _quiet_stdout():  # viser prints "(viser) Server stopped" as its thread ends
            self.server.stop()

    # -- scene and GUI

    def _build_scene(self) -> None:
        view, scene = self.view, self.server.scene
        scene.set_up_direction("+z")
        self.set_node = self._add_splats("/splats/set", view.static)
        self.actor_node = self._add_splats("/splats/actor", _empty_splats())
        rig = _rig_size(view.cameras)
        self.points_node = None
        if len(view.points):
            self.points_node = scene.add_point_cloud("/sparse_points", view.points.astype(np.float32),
                                                     view.point_colours, point_size=0.006 * rig, precision="float32")
        self.frusta = {}
        for i, camera_id in enumerate(view.cameras.camera_ids):
            pose = frustum_pose(view.cameras.K[i], view.cameras.image_size[i], view.camera_poses[camera_id][0])
            self.frusta[camera_id] = scene.add_camera_frustum(
                f"/cameras/{camera_id}", pose.fov_y_rad, pose.aspect, scale=0.12 * rig, thickness=0.004 * rig,
                color=SET_COLOUR, wxyz=pose.wxyz, position=pose.position)
            scene.add_label(f"/cameras/{camera_id}/label", camera_id)
        self.path_line = self.path_frustum = None
        path = view.path
        if path is not None:
            segments = path_segments(path)
            if len(segments):  # a still camera has no line (and zero-length segments draw as NaN in three.js)
                self.path_line = scene.add_line_segments("/path/line", segments.astype(np.float32), PATH_COLOUR,
                                                         thickness=0.006 * rig)
            pose = frustum_pose(path.K[0], path.image_size, path.world_to_camera[0])
            self.path_frustum = scene.add_camera_frustum("/path/camera", pose.fov_y_rad, pose.aspect, scale=0.1 * rig,
                                                         thickness=0.005 * rig, color=PATH_COLOUR, wxyz=pose.wxyz,
                                                         position=pose.position)
        target, position = _overview_camera(view.cameras, view.points)
        self.server.initial_camera.look_at = tuple(float(v) for v in target)
        self.server.initial_camera.position = tuple(float(v) for v in position)

    def _add_splats(self, name: str, splats: SplatArrays) -> Any:
        return self.server.scene.add_gaussian_splats(name, *_packed(splats, self._scale), scale=1.0 / self._scale)

    def _build_gui(self) -> None:
        gui, view = self.server.gui, self.view
        last = view.timeline.frame_count - 1
        self.info = gui.add_markdown(self._info_text(0))
        self.slider = gui.add_slider("frame", min=0, max=max(last, 1), step=1, initial_value=0, disabled=last == 0,
                                     hint="timeline frame of the footage shown (the scene at that instant)")
        self.play = gui.add_checkbox("play", False, hint=f"step through the frames at {float(view.timeline.fps):g} fps")
        self.slider.on_update(lambda event: self._want(int(event.target.value)))
        with gui.add_folder("show"):
            toggles = {"set (static splats)": [self.set_node], "actor (moving splats)": [self.actor_node],
                       "set cameras": list(self.frusta.values()),
                       "sparse points": [self.points_node],
                       "new camera's path": [self.path_line, self.path_frustum]}
            for label, nodes in toggles.items():
                nodes = [n for n in nodes if n is not None]
                if nodes:
                    box = gui.add_checkbox(label, True)
                    box.on_update(lambda event, nodes=nodes: [setattr(n, "visible", event.target.value) for n in nodes])

    def _info_text(self, frame: int) -> str:
        view = self.view
        timecode = view.timeline.timecode(frame)
        path = "" if view.path is None else f" · path '{view.path.name}' frame {path_frame_at(view.path, frame)}"
        return (f"**{view.root.name}** · {len(view.scene):,} Gaussians ({view.scene.num_dynamic:,} moving)  \n"
                f"frame {frame} of 0-{view.timeline.frame_count - 1} · t = {view.shot_time(frame):.3f}"
                + (f" · {timecode}" if timecode else "") + path)

    # -- drawing and playing

    def _want(self, frame: int) -> None:
        with self._changed:
            self._wanted = min(max(int(frame), 0), self.view.timeline.frame_count - 1)
            self._changed.notify_all()

    def _draw_loop(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._wanted != self._drawn or self._stopping.is_set(), 0.5)
                frame = self._wanted
            if frame == self._drawn or self._stopping.is_set():
                continue
            try:
                self._draw(frame)
            except Exception as exc:  # keep serving the other frames; say what failed
                print(f"viewer: could not draw frame {frame}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                with self._changed:
                    self._drawn = frame
                    self._changed.notify_all()

    def _draw(self, frame: int) -> None:
        started = time.perf_counter()
        view = self.view
        actor = splats_at(view.scene, view.shot_time(frame), "dynamic")
        self.actor_node.set_gaussians(*_packed(actor if len(actor) else _empty_splats(), self._scale))
        for i, camera_id in enumerate(view.cameras.camera_ids):
            pose = frustum_pose(view.cameras.K[i], view.cameras.image_size[i], view.camera_poses[camera_id][frame])
            node = self.frusta[camera_id]
            node.wxyz, node.position = pose.wxyz, pose.position
            image_path = view.frame_images[camera_id][frame]
            node.image = None if image_path is None else thumbnail(_read_rgb(image_path), self.image_px)
        if self.path_frustum is not None:
            i = path_frame_at(view.path, frame)
            pose = frustum_pose(view.path.K[i], view.path.image_size, view.path.world_to_camera[i])
            self.path_frustum.wxyz, self.path_frustum.position = pose.wxyz, pose.position
            self.path_frustum.fov = pose.fov_y_rad
        self.info.content = self._info_text(frame)
        self.draw_s.append(time.perf_counter() - started)
        with self._changed:
            self._drawn = frame
            self._changed.notify_all()

    def _play_loop(self) -> None:
        period = 1.0 / float(self.view.timeline.fps)
        count = self.view.timeline.frame_count
        while not self._stopping.is_set():
            if not self.play.value or count < 2:
                self._stopping.wait(0.1)
                continue
            started = time.perf_counter()
            frame = (int(self.slider.value) + 1) % count
            self.slider.value = frame  # moves every browser's slider too
            self.wait_drawn(frame, timeout_s=5.0)  # never run ahead of the drawing
            self._stopping.wait(max(0.0, period - (time.perf_counter() - started)))


def start_viewer(workspace_root: Path | str, host: str = "127.0.0.1", port: int = 8080, image_px: int = 320,
                 view: WorkspaceView | None = None) -> Viewer:
    """Load the workspace (unless ``view`` is given) and start the viewer on ``host:port``; returns at once, the
    server running in background threads (:meth:`Viewer.stop` ends it). ``port`` 0 takes any free port. A port in
    use is a :class:`ViewerError` (viser itself would quietly move to the next free port)."""
    viser = require("viser", VISER_HINT)
    view = load_view(workspace_root) if view is None else view
    _check_port_free(host, port)
    with _quiet_stdout():  # viser prints its own panel of addresses; serve() prints one line instead
        server = viser.ViserServer(host=host, port=port, label=f"reshoot · {view.root.name}", verbose=False)
    if port and server.get_port() != port:  # taken between our check and viser's bind: viser moved on
        with _quiet_stdout():
            server.stop()
        raise ViewerError(_port_taken(host, port))
    try:
        return Viewer(view, server, f"http://{_display_host(host)}:{server.get_port()}", image_px)
    except BaseException:
        with _quiet_stdout():
            server.stop()
        raise


def serve(workspace_root: Path | str, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = False,
          image_px: int = 320, say: Callable[[str], None] | None = None) -> None:
    """Show a workspace in the browser until Ctrl-C (or SIGTERM through the CLI): loads it, starts the server on
    ``host:port``, prints where to open it (and, logged in over SSH, the tunnel to open it from your own computer),
    optionally opens this machine's browser, and stops cleanly when interrupted."""
    say = say or _say
    started = time.perf_counter()
    view = load_view(workspace_root)
    viewer = start_viewer(view.root, host, port, image_px, view=view)
    try:
        say(f"viewer for {view.root} ({len(view.scene):,} Gaussians, {view.timeline.frame_count} frames, loaded in "
            f"{time.perf_counter() - started:.1f} s): open {viewer.url} in a web browser; Ctrl-C stops it")
        if _over_ssh() and host in ("127.0.0.1", "localhost"):
            say(f"this machine is remote: on your own computer run  ssh -L {port}:localhost:{port} "
                f"{getpass.getuser()}@{socket.getfqdn()}  and open http://localhost:{port}")
        if open_browser and _has_desktop():
            import webbrowser

            webbrowser.open(viewer.url)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("viewer stopped")
    finally:
        viewer.stop()


# ---- helpers ------------------------------------------------------------------------------------------------------


def _transport_scale(splats: SplatArrays) -> float:
    """A power of two ``k`` that brings the typical Gaussian's covariance near 1.

    viser sends covariances as float16, whose normal range starts at 6e-5: a scene in the registered world (about
    1 unit across) has covariances of 1e-9 to 1e-4, which float16 rounds to a few levels or to 0. The splat nodes
    therefore hold centres times ``k`` and covariances times ``k**2``, and the node's scale ``1 / k`` (a power of two:
    exact) puts them back where they belong. ``k`` stays small enough that the largest variance stays under
    float16's largest value, 65504, with room to spare."""
    if not len(splats):
        return 1.0
    variances = np.trace(splats.covariances, axis1=1, axis2=2)
    typical = np.round(-0.5 * np.log2(max(float(np.median(variances)), 1e-24)))
    largest = np.floor(0.5 * np.log2(_F16_ROOM / max(float(variances.max()), 1e-24)))
    return float(2.0 ** np.clip(min(typical, largest), -10, 20))


def _packed(splats: SplatArrays, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a splat node holds: centres times ``k``, covariances times ``k**2`` (see :func:`_transport_scale`; clipped
    to float16's range for a Gaussian far larger than the rest), colours, opacities."""
    return (splats.centers * k, np.clip(splats.covariances * (k * k), -_F16_ROOM, _F16_ROOM), splats.rgbs,
            splats.opacities)


def _empty_splats() -> SplatArrays:
    """One fully transparent Gaussian: what a splat node holds when nothing is visible (viser needs at least one)."""
    return SplatArrays(np.zeros((1, 3), np.float32), np.eye(3, dtype=np.float32)[None] * 1e-6,
                       np.zeros((1, 3), np.float32), np.zeros((1, 1), np.float32))


def _rig_size(cameras: Cameras) -> float:
    """How far the set cameras stand from their middle (frusta and lines are drawn in proportion); 1 for one camera."""
    centres = cameras.centers
    size = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) if len(centres) else 0.0
    return size if size > 0 else 1.0


def _overview_camera(cameras: Cameras, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the browser's camera starts: high above the first set camera's side of the set, looking down into it at
    the middle of the sparse points (from outside the set, its walls would hide the action).  # [3], [3]"""
    target = np.median(points, axis=0) if len(points) else np.zeros(3)
    rig = _rig_size(cameras)
    away = cameras.centers[0] - target if len(cameras) else np.array([1.0, 0.0, 0.0])
    away[2] = 0.0
    away = away / np.linalg.norm(away) if np.linalg.norm(away) > 1e-9 else np.array([1.0, 0.0, 0.0])
    return target, target + away * 1.0 * rig + np.array([0.0, 0.0, 1.4 * rig])


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, as viser's server would find it (SO_REUSEADDR, as asyncio sets
    on POSIX), before viser quietly takes the next free port instead."""
    if port == 0:
        return
    try:
        addresses = {info[4][:2]: info[0] for info in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                        flags=socket.AI_PASSIVE)}
    except socket.gaierror as exc:
        raise ViewerError(f"cannot listen on host {host!r} ({exc}); give an address of this machine with --host, "
                          "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    for address, family in addresses.items():
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            if os.name == "posix":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
                    raise ViewerError(_port_taken(host, port)) from None
                raise ViewerError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --host or "
                                  "--port") from None


def _port_taken(host: str, port: int) -> str:
    return (f"port {port} on {host} is already in use (another viewer, or another program); start the viewer on "
            f"another port with --port, e.g. --port {port + 1}")


def _display_host(host: str) -> str:
    """The host to put in the address people open: this machine's name when listening on every interface."""
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def _over_ssh() -> bool:
    return bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_CLIENT"))


def _has_desktop() -> bool:
    """Whether a graphical browser can open here (without one, Python's webbrowser starts a text browser in the
    terminal)."""
    if _over_ssh():
        return False
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _quiet_stdout():
    """Hide what viser prints (its address panel, "Server stopped"): the viewer says where to go in one line."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
