"""Placing the new camera in the viewer: a gizmo to move and aim it, its lens, keyframes on the timeline, a preview
of what it sees (with the guide stage's confidence map), and Save, which writes the ``path`` stage.

:func:`reshoot.viewer.app.start_viewer` adds a :class:`PathEditor` to the page. How it works:

- the gizmo (viser's transform controls) is the new camera: its axes are the camera's (OpenCV: x right, y down,
  z forward, the orange frustum looks down z). "camera from my view" puts it where the browser's view is;
- a key holds the gizmo's pose and the lens at the time slider's frame (``Keyframe(frame=f, timeline_frame=f)``:
  output frame ``f`` shows footage frame ``f``). The path through the keys is :meth:`CameraPath.from_keyframes`
  over the whole timeline, the path stage's own interpolation; moving the time slider puts the gizmo and the lens
  where that path has them;
- the preview is :func:`reshoot.stages.guide.render_guide` of the gizmo's camera at the slider's frame (the same render and
  confidence map as ``reshoot guide``, at most ``preview_px`` across), rendered in a background thread: when
  requests come faster than it renders, only the last one is rendered;
- Save writes the keys' path as reshoot path JSON to ``WS/viewer/camera_path.json`` and runs the path stage on it
  (``reshoot path --kind import --file WS/viewer/camera_path.json``, the same code), holding the workspace's writer
  lock. A workspace another reshoot process is writing is refused with a message in the page. When the viewer
  opens again it reads the saved path and, where the path holds them (a path saved from the viewer, or a builder's
  with keys on the footage's own frames), its keys.

Everyone who opens the page edits the same camera and keys (they live in the viewer's process): closing the browser
loses nothing, stopping the viewer loses what was not saved.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from reshoot.camera_path import CameraPath, Keyframe, PathError, Timeline
from reshoot.cameras import focal_px_from_mm
from reshoot.viewer.core import frustum_pose, path_frame_at
from reshoot.workspace import StageError, StageResult, Workspace

if TYPE_CHECKING:
    from reshoot.stages.guide import GuideFrame, RealCameras
    from reshoot.viewer.app import Viewer, WorkspaceView

EDITED_PATH_FILE = Path("viewer") / "camera_path.json"  #: where Save writes the keys' path, in the workspace
NEW_CAMERA_COLOUR = (245, 150, 20)  #: the camera being placed, and the keys
LENS_RANGE_MM = (8.0, 300.0)  #: the lens slider's range (a saved lens outside it widens it)
LOW_CONFIDENCE_RGB = np.array([1.0, 0.1, 0.6])  #: what the overlay tints pixels no real camera saw well with
#: The overlay leaves pixels of this confidence or more as they are: a point two real cameras saw, the nearest 45
#: degrees from the new camera's view, scores 0.5 (guide's ``seen x angle``): seen well enough to trust.
WELL_SEEN = 0.5


# ---- the pure core: poses, keys, paths, pictures -----------------------------------------------------------------


def pose_from_frame(wxyz: Sequence[float], position: Sequence[float]) -> np.ndarray:
    """The world-to-camera pose [4, 4] of a camera whose frame (a gizmo's, the browser view's) has rotation ``wxyz``
    (camera-to-world, w first) and origin ``position``, with OpenCV camera axes (viser's gizmos and cameras)."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(wxyz, np.float64)
    if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-12:
        raise ValueError(f"pose_from_frame: expected a non-zero wxyz quaternion [4], got {q.tolist()}")
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()
    camera_to_world[:3, 3] = np.asarray(position, np.float64)
    return np.linalg.inv(camera_to_world)


def frame_from_pose(world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`pose_from_frame`: the gizmo's ``wxyz`` [4] and ``position`` [3] for a pose."""
    pose = frustum_pose(np.eye(3), (1, 1), world_to_camera)
    return pose.wxyz, pose.position


def new_key(frame: int, world_to_camera: np.ndarray, focal_mm: float) -> Keyframe:
    """A key at timeline frame ``frame`` (the output frame that shows it, too)."""
    return Keyframe(int(frame), world_to_camera, float(focal_mm), int(frame))


def with_key(keys: Sequence[Keyframe], key: Keyframe) -> tuple[Keyframe, ...]:
    """``keys`` with ``key`` added, or replacing the key at its frame; in frame order."""
    return tuple(sorted([k for k in keys if k.frame != key.frame] + [key], key=lambda k: k.frame))


def without_key(keys: Sequence[Keyframe], frame: int) -> tuple[Keyframe, ...]:
    """``keys`` less the one at timeline frame ``frame`` (unchanged when there is none)."""
    return tuple(k for k in keys if k.frame != frame)


def key_at(keys: Sequence[Keyframe], frame: int) -> Keyframe | None:
    return next((k for k in keys if k.frame == frame), None)


def neighbour_key(keys: Sequence[Keyframe], frame: int, step: int) -> int | None:
    """The frame of the key before (``step`` -1) or after (+1) timeline frame ``frame``, or None."""
    frames = [int(k.frame) for k in keys if (k.frame - frame) * step > 0]
    return (max(frames) if step < 0 else min(frames)) if frames else None


def path_through(keys: Sequence[Keyframe], timeline: Timeline, image_size: tuple[int, int], sensor_width_mm: float,
                 name: str) -> CameraPath | None:
    """The new camera's path through ``keys``, one output frame per timeline frame (output frame ``i`` shows
    footage frame ``i``), interpolated as the path stage does (:meth:`CameraPath.from_keyframes`); None without
    keys."""
    if not keys:
        return None
    return CameraPath.from_keyframes(name, sorted(keys, key=lambda k: k.frame), image_size, timeline.fps,
                                     sensor_width_mm, timeline.start_timecode, frame_count=timeline.frame_count)


def editable_keys(path: CameraPath | None, timeline: Timeline) -> tuple[Keyframe, ...]:
    """The keys of a saved path that the editor can take up: those of a path with one frame per timeline frame whose
    keys sit on whole footage frames (output frame = footage frame); none otherwise (a path built without keys, or a
    retimed one: the editor starts afresh)."""
    if path is None or not path.keyframes or len(path) != timeline.frame_count:
        return ()
    keys = path.keyframes
    fits = all(k.frame == k.timeline_frame and float(k.frame).is_integer() and 0 <= k.frame < timeline.frame_count
               for k in keys)
    return tuple(sorted(keys, key=lambda k: k.frame)) if fits else ()


def preview_size(image_size: tuple[int, int], max_width_px: int) -> tuple[int, int]:
    """The preview's size: ``image_size`` shrunk to at most ``max_width_px`` across, same aspect, even numbers."""
    width, height = (int(v) for v in image_size)
    if width > max_width_px:
        width, height = max_width_px, round(height * max_width_px / width)
    return max(2, width - width % 2), max(2, height - height % 2)


def vertical_fov_rad(focal_mm: float, sensor_width_mm: float, image_size: tuple[int, int]) -> float:
    """A lens's vertical field of view on ``sensor_width_mm`` for pictures of ``image_size`` (width, height)."""
    focal_px = focal_px_from_mm(focal_mm, sensor_width_mm, image_size[0])
    return float(2.0 * math.atan(image_size[1] / 2.0 / focal_px))


def confidence_overlay(rgb: np.ndarray, confidence: np.ndarray, strength: float = 0.7) -> np.ndarray:
    """``rgb`` [H, W, 3] (floats in [0, 1]) tinted magenta where ``confidence`` [H, W] is under :data:`WELL_SEEN`,
    the more the lower (``strength`` at 0: no real camera saw it), as 8-bit.  # [H, W, 3] uint8"""
    mix = strength * np.clip(1.0 - np.asarray(confidence, np.float64) / WELL_SEEN, 0.0, 1.0)[..., None]
    picture = np.clip(rgb, 0.0, 1.0) * (1.0 - mix) + LOW_CONFIDENCE_RGB * mix
    return (picture * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class NewCamera:
    """What the editor starts from: the saved path's camera when there is one, else the first set camera's.

    Attributes:
        name: the path's name (the saved one's when it was saved from the viewer, else "viewer").
        image_size: (width, height) of the path's frames, even.
        sensor_width_mm: the film back its lenses refer to.
        world_to_camera: where the gizmo starts.  # [4, 4]
        focal_mm: the lens it starts with.
    """

    name: str
    image_size: tuple[int, int]
    sensor_width_mm: float
    world_to_camera: np.ndarray  # [4, 4]
    focal_mm: float


def starting_camera(view: WorkspaceView) -> NewCamera:
    """The :class:`NewCamera` of a workspace (see there)."""
    path = view.path
    if path is not None:
        return NewCamera(path.name if _saved_by_viewer(view.root) else "viewer", path.image_size,
                         path.sensor_width_mm, path.world_to_camera[0], float(path.focal_mm[0]))
    from reshoot.path_builders import set_camera_focal_mm

    camera_id = view.cameras.camera_ids[0]
    width, height = (int(v) for v in view.cameras.image_size[0])
    return NewCamera("viewer", (width - width % 2, height - height % 2), 36.0, view.camera_poses[camera_id][0],
                     set_camera_focal_mm(view.cameras, camera_id, 36.0))


def _saved_by_viewer(root: Path) -> bool:
    """Whether the workspace's path stage imported the viewer's file (its name is then the one given in the viewer)."""
    try:
        config = json.loads((root / "path" / "manifest.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    return config.get("kind") == "import" and config.get("file") == EDITED_PATH_FILE.as_posix()


# ---- the stage: Save ---------------------------------------------------------------------------------------------


def save_path(workspace_root: Path, path: CameraPath, timeline: Timeline) -> StageResult:
    """Write ``path`` as the workspace's path stage, as ``reshoot path --kind import --file
    WS/viewer/camera_path.json`` would: checks it first (a :class:`PathError` writes nothing), then, holding the
    writer lock (:class:`~reshoot.workspace.WorkspaceBusy` when another process holds it), writes the file and runs
    :func:`reshoot.stages.path.run_path` on it."""
    from reshoot.stages.path import PathConfig, run_path

    path.check(timeline)
    workspace = Workspace(workspace_root)
    with workspace.writing():
        file = workspace.root / EDITED_PATH_FILE
        file.parent.mkdir(exist_ok=True)
        path.save(file)
        return run_path(workspace, PathConfig(kind="import", file=file))


# ---- the preview: rendered in the background, the last request only ---------------------------------------------


class LatestOnly:
    """A background thread that runs the job submitted last: jobs submitted while one runs replace each other (only
    the newest runs next), never queue. A job that raises is reported on stderr; the thread goes on."""

    def __init__(self, name: str) -> None:
        self._job: Callable[[], None] | None = None
        self._busy, self._stopping = False, False
        self._changed = threading.Condition()
        self.finished = 0  #: jobs run so far
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._changed:
            self._job = job
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until nothing is waiting or running; False when ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._job is None and not self._busy, timeout_s)

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout=10.0)

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._job is not None or self._stopping)
                if self._stopping:
                    return
                job, self._job, self._busy = self._job, None, True
            try:
                job()
            except Exception as exc:  # keep previewing; say what failed
                print(f"viewer: preview failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            finally:
                with self._changed:
                    self._busy = False
                    self.finished += 1
                    self._changed.notify_all()


def render_preview(view: WorkspaceView, world_to_camera: np.ndarray, focal_mm: float, frame: int, camera: NewCamera,
                   size: tuple[int, int], real: RealCameras | None) -> GuideFrame:
    """What the new camera sees at timeline frame ``frame``, rendered by the guide stage's code at ``size``, with the
    confidence map when ``real`` (the cameras the scene learnt from) is given."""
    from reshoot.stages.guide import render_guide

    one = CameraPath("preview", world_to_camera[None], [focal_mm], [float(frame)], size, view.timeline.fps,
                     camera.sensor_width_mm)
    downscale = 2 if real is None else max(2, round(float(real.cameras.image_size[:, 0].max()) / size[0]))
    return render_guide(view.scene, one, 0, view.timeline, real, downscale)


# ---- the wiring: the gizmo, the GUI ------------------------------------------------------------------------------


class PathEditor:
    """The new camera in a running :class:`~reshoot.viewer.app.Viewer`: a gizmo, the lens, keys, the preview, Save.

    Attributes:
        keys: the keys, in frame order.
        camera: what the editor started from (name, picture size, sensor width).
        edited: the keys changed since they were loaded or saved.
        last_preview: the preview rendered last (rgb, alpha, depth, confidence), or None before the first.
        preview_s: seconds each preview took to render: the last 100.
    """

    def __init__(self, viewer: Viewer, preview_px: int = 320) -> None:
        self.viewer, self.view = viewer, viewer.view
        self.camera = starting_camera(self.view)
        self.keys = editable_keys(self.view.path, self.view.timeline)
        self.edited = False
        self.last_preview: GuideFrame | None = None
        self.preview_s: list[float] = []
        self._size = preview_size(self.camera.image_size, preview_px)
        self._real: RealCameras | None = None
        self._lock = threading.RLock()  # GUI callbacks run in viser's thread pool and the play thread
        self._worker = LatestOnly("reshoot-viewer-preview")
        self._key_nodes: dict[int, Any] = {}
        self._build_scene()
        self._build_gui()
        self._show_keys()
        viewer.slider.on_update(lambda event: self.follow(int(event.target.value)))
        self.request_preview()

    # -- what a user does (the GUI calls these; so can a script or a test)

    @property
    def frame(self) -> int:
        """The time slider's timeline frame."""
        return int(self.viewer.slider.value)

    @property
    def pose(self) -> np.ndarray:
        """The gizmo's camera, world-to-camera.  # [4, 4]"""
        return pose_from_frame(self.gizmo.wxyz, self.gizmo.position)

    @property
    def focal_mm(self) -> float:
        return float(self.lens.value)

    def place(self, world_to_camera: np.ndarray) -> None:
        """Move the gizmo (the new camera) to pose ``world_to_camera`` [4, 4] and preview it."""
        self.gizmo.wxyz, self.gizmo.position = frame_from_pose(world_to_camera)
        self.request_preview()

    def place_at_view(self, client: Any) -> None:
        """Move the new camera to where browser ``client`` looks from (its camera: OpenCV axes, as a gizmo's)."""
        if client is None:
            self._say("no browser view to take the camera from")
            return
        self.place(pose_from_frame(client.camera.wxyz, client.camera.position))

    def add_key(self) -> Keyframe:
        """Key the new camera (pose and lens) at the time slider's frame, replacing a key there."""
        key = new_key(self.frame, self.pose, self.focal_mm)
        with self._lock:
            self.keys = with_key(self.keys, key)
        self._keys_changed(f"key at frame {self.frame}")
        return key

    def delete_key(self) -> None:
        """Delete the key at the time slider's frame (nothing when there is none)."""
        with self._lock:
            self.keys = without_key(self.keys, self.frame)
        self._keys_changed(f"deleted the key at frame {self.frame}")

    def go_to_key(self, step: int) -> None:
        """Move the time slider to the key before (``step`` -1) or after (+1) its frame, when there is one."""
        frame = neighbour_key(self.keys, self.frame, step)
        if frame is not None:
            self.viewer.slider.value = frame  # the slider's callbacks draw that frame and follow the path there

    def path(self) -> CameraPath | None:
        """The path through the keys (None without keys)."""
        return path_through(self.keys, self.view.timeline, self.camera.image_size, self.camera.sensor_width_mm,
                            self.name.value.strip() or "viewer")

    def save(self) -> str:
        """Write the keys' path as the workspace's path stage (:func:`save_path`); returns what the page says."""
        from reshoot.deliver import check_file_stem
        from reshoot.workspace import WorkspaceBusy

        root = self.view.root
        if not self.keys:
            return self._say("nothing to save: add a key first (place the camera, then 'add key')")
        if not self.edited:
            return self._say("nothing to save: the keys are those of the saved path (add, replace or delete a key "
                             "first)")
        try:
            check_file_stem(self.name.value.strip(), "path name")
            result = save_path(root, self.path(), self.view.timeline)
        except WorkspaceBusy as exc:  # its advice to pass --wait is the command line's, not the page's
            return self._say(f"**not saved**: workspace {root} is being written by {exc.holder}; nothing was written. "
                             "Press Save again when it has finished.")
        except (PathError, StageError, ValueError, OSError) as exc:
            return self._say(f"**not saved**: {exc}")
        with self._lock:
            self.edited = False
        summary = result.manifest["summary"]
        done = "already saved, unchanged" if result.skipped else "saved"
        later = [note for note in result.notes if "out of date" in note]  # which later stages to run again
        notes = "".join(f"  \n{note}" for note in (*later, *summary.get("warnings", [])))
        return self._say(f"{done}: path '{summary['name']}', {summary['frames']} frames, {_keys(self.keys)}, in "
                         f"`{root / 'path' / 'path.json'}`. Next: `reshoot guide --workspace {root}`, then refine "
                         f"and export.{notes}")

    def follow(self, frame: int) -> None:
        """Put the gizmo and the lens where the path drawn has them at timeline frame ``frame`` (the slider moved),
        and preview."""
        path = self.viewer.path
        if path is not None:
            i = path_frame_at(path, frame)
            self.gizmo.wxyz, self.gizmo.position = frame_from_pose(path.world_to_camera[i])
            self.lens.value = round(float(np.clip(path.focal_mm[i], self.lens.min, self.lens.max)), 1)  # previews
        self._update_buttons()
        self.request_preview()

    def request_preview(self) -> None:
        """Render the new camera's view at the slider's frame in the background (the newest request wins)."""
        pose, focal_mm, frame, overlay = self.pose, self.focal_mm, self.frame, bool(self.overlay.value)
        self._worker.submit(lambda: self._preview(pose, focal_mm, frame, overlay))

    def wait_preview(self, timeout_s: float = 60.0) -> bool:
        """Wait until the previews asked for are shown; False when ``timeout_s`` passed first."""
        return self._worker.wait_idle(timeout_s)

    def stop(self) -> None:
        self._worker.stop()

    # -- scene and GUI

    def _build_scene(self) -> None:
        scene, rig = self.viewer.server.scene, self.viewer.nodes.rig
        wxyz, position = frame_from_pose(self.camera.world_to_camera)
        self.gizmo = scene.add_transform_controls("/new_camera", scale=0.35 * rig, line_width=2.0, wxyz=wxyz,
                                                  position=position, depth_test=False)
        self.frustum = scene.add_camera_frustum(
            "/new_camera/frustum", vertical_fov_rad(self.camera.focal_mm, self.camera.sensor_width_mm, self._size),
            self._size[0] / self._size[1], scale=0.15 * rig, thickness=0.006 * rig, color=NEW_CAMERA_COLOUR)
        self.gizmo.on_update(lambda event: self.request_preview() if event.phase != "start" else None)

    def _build_gui(self) -> None:
        gui, camera = self.viewer.server.gui, self.camera
        lens_mm = round(camera.focal_mm, 1)  # the slider's steps
        low, high = min(LENS_RANGE_MM[0], lens_mm), max(LENS_RANGE_MM[1], lens_mm)
        with gui.add_folder("new camera"):
            self.preview = gui.add_image(np.zeros((*self._size[::-1], 3), np.uint8), label="preview")
            self.overlay = gui.add_checkbox("confidence overlay", False, hint="tint magenta what the real cameras did "
                                            "not see well (the guide stage's confidence map under 0.5; slower)")
            self.lens = gui.add_slider("lens (mm)", min=low, max=high, step=0.1, initial_value=lens_mm,
                                       hint=f"focal length on a {camera.sensor_width_mm:g} mm wide sensor")
            self.from_view = gui.add_button("camera from my view", hint="put the new camera where you are looking "
                                            "from (then fine-tune it with the gizmo)")
            self.add = gui.add_button("add key", hint="key the camera and lens at this frame")
            self.delete = gui.add_button("delete key", hint="delete the key at this frame")
            self.jump = gui.add_button_group("go to key", ["< previous", "next >"])
            self.keys_text = gui.add_markdown("")
            self.name = gui.add_text("path name", camera.name, hint="the path's name, used in file names")
            self.save_button = gui.add_button("Save path", hint="write the path stage (WS/path), as `reshoot path` "
                                              "does; then run `reshoot guide`")
            self.message = gui.add_markdown(f"{camera.image_size[0]}x{camera.image_size[1]} px, "
                                            f"{float(self.view.timeline.fps):g} fps")
        self.overlay.on_update(lambda _: self.request_preview())
        self.lens.on_update(lambda _: self._lens_changed())
        self.from_view.on_click(lambda event: self.place_at_view(event.client))
        self.add.on_click(lambda _: self.add_key())
        self.delete.on_click(lambda _: self.delete_key())
        self.jump.on_click(lambda event: self.go_to_key(-1 if event.target.value.startswith("<") else 1))
        self.save_button.on_click(lambda _: self._save_clicked())

    def _lens_changed(self) -> None:
        self.frustum.fov = vertical_fov_rad(self.focal_mm, self.camera.sensor_width_mm, self._size)
        self.request_preview()

    def _save_clicked(self) -> None:
        self.save_button.disabled = True
        self._say("saving...")
        try:
            self.save()
        finally:
            self.save_button.disabled = False

    def _keys_changed(self, what: str) -> None:
        with self._lock:
            self.edited = True
            path = self.path()
        self.viewer.show_path(path)
        self._show_keys()
        self._say(f"{what}; not saved yet")

    def _show_keys(self) -> None:
        """Mark each key in the scene (a small orange frustum, under /path so that "show" hides them with it), list
        them in the panel, and set the buttons for the slider's frame."""
        scene, rig, camera = self.viewer.server.scene, self.viewer.nodes.rig, self.camera
        with self._lock:
            keys = self.keys
            for node in self._key_nodes.values():
                node.remove()
            self._key_nodes = {}
            for key in keys:
                pose = frustum_pose(np.eye(3), (1, 1), key.world_to_camera)
                self._key_nodes[int(key.frame)] = scene.add_camera_frustum(
                    f"/path/keys/f{int(key.frame):06d}", vertical_fov_rad(key.focal_mm, camera.sensor_width_mm,
                                                                          self._size),
                    self._size[0] / self._size[1], scale=0.07 * rig, thickness=0.004 * rig, color=NEW_CAMERA_COLOUR,
                    wxyz=pose.wxyz, position=pose.position)
        listed = ", ".join(f"{int(k.frame)} ({k.focal_mm:.1f} mm)" for k in keys)
        self.keys_text.content = f"**{_keys(keys)}**" + (f" at {'frames' if len(keys) > 1 else 'frame'} {listed}"
                                                         if keys else ": place the camera, then 'add key'")
        self._update_buttons()

    def _update_buttons(self) -> None:
        frame, here = self.frame, key_at(self.keys, self.frame) is not None
        self.add.label = f"{'replace' if here else 'add'} key at frame {frame}"
        self.delete.label = f"delete key at frame {frame}"
        self.delete.disabled = not here

    def _preview(self, pose: np.ndarray, focal_mm: float, frame: int, overlay: bool) -> None:
        started = time.perf_counter()
        real = self._real_cameras() if overlay else None
        shot = render_preview(self.view, pose, focal_mm, frame, self.camera, self._size, real)
        picture = (confidence_overlay(shot.rgb, shot.confidence) if shot.confidence is not None
                   else (np.clip(shot.rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        self.preview.image = picture
        self.frustum.image = picture
        self.preview.label = (f"preview, frame {frame}: covers {shot.alpha.mean():.0%}"
                              + (f", confidence {shot.confidence.mean():.2f}" if shot.confidence is not None else ""))
        self.last_preview = shot
        self.preview_s = [*self.preview_s[-99:], time.perf_counter() - started]

    def _real_cameras(self) -> RealCameras:
        if self._real is None:  # read once, when the overlay is first asked for
            from reshoot.stages.guide import RealCameras
            from reshoot.stages.reconstruct import trained_rig

            trained = list(self.view.trained_camera_ids) or None
            self._real = RealCameras(*trained_rig(self.view.root, trained))
        return self._real

    def _say(self, text: str) -> str:
        self.message.content = text
        return text


def _keys(keys: Sequence[Keyframe]) -> str:
    return f"{len(keys)} key{'' if len(keys) == 1 else 's'}"
