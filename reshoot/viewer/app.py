"""The viewer: a workspace in the browser, built on viser.

``reshoot view --workspace WS`` (or :func:`serve`) shows, in a web page:

- the reconstructed splat scene at the current instant: the set (static Gaussians, sent once) and the performance
  (the dynamic Gaussians visible then, sent again at every instant);
- a time slider over the footage timeline's frames, and a play checkbox that steps through them at the footage's
  frame rate;
- every set camera as a frustum, showing the frame it filmed at the current instant (``WS/ingest/frames``);
- the sparse points of ``WS/register/sparse_points.ply``;
- the new camera's path as a red line, and its frustum at the current instant: the saved one (``WS/path``) when the
  viewer starts, then the one being edited.

Placing the new camera (a gizmo, its lens, keyframes, a preview rendered as ``guide`` renders it, Save) is
:mod:`reshoot.viewer.path`, which :func:`start_viewer` adds to the page; this module draws. The viewer reads the
workspace once when it starts and writes to it only when Save is pressed (the ``path`` stage, as ``reshoot path``
writes it).

The viewer has three layers, as the rest of reshoot, in four modules (each name below can be imported from here):

1. a pure core, from loaded workspace data to plain numpy arrays, with no I/O and no viser
   (:mod:`reshoot.viewer.core`): :func:`splats_at`, :func:`frustum_pose`, :func:`path_segments`,
   :func:`path_frame_at`;
2. the loader, :func:`load_view` (here), which reads a workspace into a :class:`WorkspaceView`;
3. the wiring: :func:`add_workspace_scene`, :func:`draw_instant` and :func:`draw_path` (:mod:`reshoot.viewer.scene`)
   put the arrays into a viser scene: the live viewer's, or the one ``reshoot eval`` saves into its report
   (:mod:`reshoot.viewer.report`); :func:`start_viewer` (a running :class:`Viewer`, returned at once) and
   :func:`serve` (runs until Ctrl-C) add the server and the GUI (here; where it listens: :mod:`reshoot.viewer.net`).

Conventions: reshoot's poses are world-to-camera with OpenCV camera axes (x right, y down, z forward; see
:mod:`reshoot.cameras`). viser's frustums take a camera-to-world rotation (as a wxyz quaternion) and position, with
the same OpenCV camera axes ("frustums follow the OpenCV [+Z forward, +X right, +Y down] convention", viser 1.1's
``add_camera_frustum``), so no axis flip is needed: only the inverse pose, as a quaternion. The world is the
registered one (+Z up), which the viewer sets as viser's up direction.

What is left out: splat colours are SH band 0 only (no view-dependent shading) and no per-camera appearance
matrix, and frustums draw the principal point at the image centre and no lens distortion.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from reshoot._deps import require
from reshoot.camera_path import CameraPath, Timeline
from reshoot.cameras import Cameras
from reshoot.splat.scene import DynamicScene
from reshoot.viewer.core import (MIN_OPACITY, PATH_COLOUR, SET_COLOUR, FrustumPose, SplatArrays,
                                 frustum_pose, path_frame_at, path_segments, splats_at, thumbnail)
from reshoot.viewer.scene import (SceneNodes, add_workspace_scene, draw_instant, draw_path,
                                  overview_camera, place_path_frustum)
from reshoot.viewer.net import ViewerError, display_host, has_desktop, over_ssh, port_taken, quiet_stdout
from reshoot.viewer.net import check_port_free as _check_port_free  # a module name here: tests replace it

__all__ = ["MIN_OPACITY", "PATH_COLOUR", "SET_COLOUR", "FrustumPose", "SceneNodes", "SplatArrays", "Viewer",
           "ViewerError", "WorkspaceView", "add_workspace_scene", "draw_instant", "draw_path", "frustum_pose",
           "load_view", "path_frame_at", "path_segments", "serve", "splats_at", "start_viewer", "thumbnail"]
VISER_HINT = "pip install 'reshoot[viewer]'  (or: pip install 'viser>=1.1,<2')"


# ---- the loader: a workspace -> WorkspaceView ---------------------------------------------------------------------


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
        trained_camera_ids: the set cameras the scene learnt from (a held-out one is not among them): those whose
            views ``guide``'s confidence map counts.
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
    trained_camera_ids: tuple[str, ...] = ()

    def shot_time(self, frame: int) -> float:
        """The scene's normalised time at timeline frame ``frame``."""
        return float(self.timeline.shot_time(frame))


def load_view(workspace_root: Path | str) -> WorkspaceView:
    """Read what the viewer shows from a workspace with a finished ``reconstruct`` stage (a :class:`ViewerError`
    says what to run when it has none). Reads only; never creates or changes a file."""
    from reshoot.splat.pointcloud import read_points_ply
    from reshoot.stages.reconstruct import load_scene
    from reshoot.stages.register import read_frame_poses

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
        scene, appearance = load_scene(root / "reconstruct" / "scene.pt")
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
    return WorkspaceView(root, scene, static, timeline, cameras, poses, images, points, colours, path, timings,
                         tuple(appearance))


def _camera_poses(cameras: Cameras, frame_poses: Cameras, frame_count: int) -> dict[str, np.ndarray]:
    """Each set camera's pose at every timeline frame: its frame's registered pose (ids ``<camera>/<frame:06d>``,
    as :func:`reshoot.stages.register.read_frame_poses` gives them), else its set pose."""
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


# ---- the live viewer: viser's server and GUI -----------------------------------------------------------------------


class Viewer:
    """A running viewer: the viser server, its scene and GUI, a thread that draws the instant asked for last (slider
    moves that come faster than it draws are skipped, never queued) and one that plays.

    Attributes:
        view: the workspace's data.
        server: the ``viser.ViserServer``.
        url: the address it answers on, ``http://HOST:PORT``.
        nodes: the scene's nodes (``set_node``, ``actor_node``, ``points_node``, ``frusta`` are also attributes).
        path: the new camera's path drawn: the saved one at first, then the one being edited (:meth:`show_path`).
        editor: the path editor (:class:`reshoot.viewer.path.PathEditor`), or None when started without one.
        draw_s: seconds each drawn instant took on this side (splats, pictures, path): the last 1000.
    """

    def __init__(self, view: WorkspaceView, server: Any, url: str, image_px: int = 320) -> None:
        self.view, self.server, self.url, self.image_px = view, server, url, image_px
        self.path, self.editor = view.path, None
        self.draw_s: deque[float] = deque(maxlen=1000)
        self._wanted, self._drawn = 0, -1
        self._changed = threading.Condition()
        self._path_lock = threading.RLock()  # the path is replaced from GUI callbacks while the draw thread reads it
        self._stopping = threading.Event()
        self.nodes = add_workspace_scene(server.scene, view)
        self.set_node, self.actor_node, self.points_node = self.nodes.set_node, self.nodes.actor_node, \
            self.nodes.points_node
        self.frusta = self.nodes.frusta
        draw_path(server.scene, self.nodes, self.path, 0)
        overview_camera(server, view)
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

    @property
    def path_frustum(self) -> Any | None:
        return self.nodes.path_frustum

    @property
    def path_line(self) -> Any | None:
        return self.nodes.path_line

    def show_frame(self, frame: int, timeout_s: float = 30.0) -> None:
        """Move the time slider to timeline frame ``frame`` (as a viewer would) and wait until it is drawn."""
        last = self.view.timeline.frame_count - 1
        if not 0 <= int(frame) <= last:
            raise ValueError(f"frame {frame} is outside the footage timeline's frames 0..{last}")
        self.slider.value = int(frame)  # every browser's slider follows (and its callback asks for the frame)
        self._want(int(frame))  # the slider may show it already while another frame was asked for since
        if not self.wait_drawn(int(frame), timeout_s):
            raise TimeoutError(f"the viewer did not draw frame {frame} within {timeout_s:g} s")

    def show_path(self, path: CameraPath | None) -> None:
        """Draw ``path`` as the new camera's path (replacing the one drawn), at the current instant."""
        with self._path_lock:
            self.path = path
            draw_path(self.server.scene, self.nodes, path, int(self.slider.value))
        self.info.content = self._info_text(int(self.slider.value))

    def wait_drawn(self, frame: int, timeout_s: float = 30.0) -> bool:
        """Wait until ``frame`` is the frame drawn; False when ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._drawn == frame and self._wanted == frame, timeout_s)

    def stop(self) -> None:
        """Stop playing, drawing and previewing and close the server (its connections close; the port is free
        again)."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self.editor is not None:
            self.editor.stop()
        for thread in self._threads:
            thread.join(timeout=5.0)
        with quiet_stdout():  # viser prints "(viser) Server stopped" as its thread ends
            self.server.stop()

    # -- GUI

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
                       "new camera's path": [self.nodes.path_group]}
            for label, nodes in toggles.items():
                nodes = [n for n in nodes if n is not None]
                if nodes:
                    box = gui.add_checkbox(label, True)
                    box.on_update(lambda event, nodes=nodes: [setattr(n, "visible", event.target.value) for n in nodes])

    def _info_text(self, frame: int) -> str:
        view, path = self.view, self.path
        timecode = view.timeline.timecode(frame)
        shown = "" if path is None else f" · path '{path.name}' frame {path_frame_at(path, frame)}"
        return (f"**{view.root.name}** · {len(view.scene):,} Gaussians ({view.scene.num_dynamic:,} moving)  \n"
                f"frame {frame} of 0-{view.timeline.frame_count - 1} · t = {view.shot_time(frame):.3f}"
                + (f" · {timecode}" if timecode else "") + shown)

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
        draw_instant(self.nodes, self.view, frame, self.image_px)
        with self._path_lock:
            place_path_frustum(self.nodes, self.path, frame)
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
                 view: WorkspaceView | None = None, edit: bool = True, preview_px: int = 320) -> Viewer:
    """Load the workspace (unless ``view`` is given) and start the viewer on ``host:port``; returns at once, the
    server running in background threads (:meth:`Viewer.stop` ends it). ``port`` 0 takes any free port. A port in
    use is a :class:`ViewerError` (viser itself would quietly move to the next free port). With ``edit``, the page
    has the path editor (:mod:`reshoot.viewer.path`; its preview ``preview_px`` across)."""
    viser = require("viser", VISER_HINT)
    view = load_view(workspace_root) if view is None else view
    _check_port_free(host, port)
    with quiet_stdout():  # viser prints its own panel of addresses; serve() prints one line instead
        server = viser.ViserServer(host=host, port=port, label=f"reshoot · {view.root.name}", verbose=False)
    if port and server.get_port() != port:  # taken between our check and viser's bind: viser moved on
        with quiet_stdout():
            server.stop()
        raise ViewerError(port_taken(host, port))
    try:
        viewer = Viewer(view, server, f"http://{display_host(host)}:{server.get_port()}", image_px)
        if edit:
            from reshoot.viewer.path import PathEditor

            viewer.editor = PathEditor(viewer, preview_px=preview_px)
        return viewer
    except BaseException:
        with quiet_stdout():
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
        if over_ssh() and host in ("127.0.0.1", "localhost"):
            say(f"this machine is remote: on your own computer run  ssh -L {port}:localhost:{port} "
                f"{getpass.getuser()}@{socket.getfqdn()}  and open http://localhost:{port}")
        if open_browser and has_desktop():
            import webbrowser

            webbrowser.open(viewer.url)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("viewer stopped")
    finally:
        viewer.stop()


# ---- helpers ------------------------------------------------------------------------------------------------------


def _say(text: str) -> None:
    print(text, flush=True)
