"""The viewer (reshoot.viewer: app, path, report): the arrays it draws from a tiny finished workspace, the
server it starts, its errors, the `view` command, the path editor (keys, preview, Save as the path stage) and the 3D
view in eval's report; two tests drive it in a real browser (Playwright and the system Chromium; they skip,
saying why, without them)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from reshoot.camera_path import CameraPath, Keyframe
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.splat.scene import SH_C0, MIN_TIME_SCALE
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.path import PathConfig, import_path, run_path
from reshoot.stages.reconstruct import ReconstructConfig, run_reconstruct
from reshoot.stages.register import RegisterConfig, RegistrationError, read_frame_poses, run_register
from reshoot.viewer.app import (ViewerError, frustum_pose, load_view, path_frame_at, path_segments, splats_at,
                            start_viewer, thumbnail)
from reshoot.viewer.core import SplatArrays
from reshoot.viewer.path import (EDITED_PATH_FILE, LOW_CONFIDENCE_RGB, confidence_overlay, editable_keys,
                                 frame_from_pose, key_at, neighbour_key, new_key, path_through, pose_from_frame,
                                 preview_size, with_key, without_key)
from reshoot.viewer.report import SCENE_FILE, most_visible
from reshoot.workspace import Workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The small sample shoot up to a path: a 30-step scene (about 4k Gaussians, SH degree 1) and a 90-degree orbit."""
    root = tmp_path_factory.mktemp("viewer")
    shoot = make_sample_shoot(root / "shoot", PRESETS["small"])
    ws = Workspace(root / "ws")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    try:
        run_register(ws, RegisterConfig(survey=shoot.root / "survey"))
    except RegistrationError:  # COLMAP's threaded mapper now and then leaves one small-sample camera out: once more
        run_register(ws, RegisterConfig(survey=shoot.root / "survey", seed=1), force=True)
    run_reconstruct(ws, ReconstructConfig(steps=30, sh_degree=1, dynamic_per_instant=200, dense=False, stills=False))
    run_path(ws, PathConfig(kind="orbit", degrees=90))
    return ws


@pytest.fixture(scope="module")
def view(workspace):
    return load_view(workspace.root)


@pytest.fixture
def own_workspace(workspace, tmp_path):
    """A copy of the workspace that a test may write (Save writes its path stage)."""
    return Path(shutil.copytree(workspace.root, tmp_path / "ws", symlinks=True))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rotation(quats: np.ndarray) -> np.ndarray:  # wxyz [N, 4] -> [N, 3, 3]
    return Rotation.from_quat(quats[:, [1, 2, 3, 0]]).as_matrix()


# ---- the pure core ------------------------------------------------------------------------------------------------


def test_splats_at_gives_the_set_once_and_the_performance_at_each_instant(view):
    scene, p = view.scene, {k: v.detach() for k, v in view.scene.params.items()}
    static = view.static
    keep = (p["dynamic"] == 0) & (torch.sigmoid(p["opacities"]) >= 1 / 255)
    assert len(static) == int(keep.sum()) > 100
    np.testing.assert_allclose(static.centers, p["means"][keep].numpy(), atol=1e-7)
    scales = p["scales"][keep].exp().numpy().astype(np.float64)
    R = _rotation(p["quats"][keep].numpy().astype(np.float64))
    expected = np.einsum("nij,nj,nkj->nik", R, scales ** 2, R)  # R diag(s^2) R^T
    largest = (scales ** 2).max(axis=1)[:, None, None]  # float32 rounding, relative to each Gaussian's size
    np.testing.assert_allclose(static.covariances / largest, expected / largest, atol=1e-5)
    np.testing.assert_allclose(static.rgbs, np.clip(0.5 + SH_C0 * p["sh0"][keep, 0].numpy(), 0, 1), atol=1e-6)
    np.testing.assert_allclose(static.opacities[:, 0], torch.sigmoid(p["opacities"][keep]).numpy(), atol=1e-6)
    assert static.centers.dtype == static.covariances.dtype == np.float32 and static.opacities.shape == (len(static), 1)

    seen = {}
    for t in (0.0, 0.5, 1.0):
        actor = splats_at(scene, t, "dynamic")
        dt = t - p["times"]
        fade = torch.exp(-(dt / p["time_scales"].exp().clamp_min(MIN_TIME_SCALE)) ** 2)
        alive = (p["dynamic"] > 0) & (torch.sigmoid(p["opacities"]) * fade >= 1 / 255)
        assert len(actor) == int(alive.sum()) > 0  # the Gaussians of that instant, and only those
        moved = p["means"][alive] + p["velocities"][alive] * dt[alive, None] + p["accels"][alive] * dt[alive, None] ** 2
        np.testing.assert_allclose(actor.centers, moved.numpy(), atol=1e-6)
        np.testing.assert_allclose(actor.opacities[:, 0], (torch.sigmoid(p["opacities"]) * fade)[alive].numpy(),
                                   atol=1e-6)
        assert len(splats_at(scene, t)) == len(static) + len(actor)  # "all" = the set + the performance then
        seen[t] = set(map(tuple, actor.centers.round(4)))
    assert seen[0.0] != seen[1.0]  # the first and last instants show different Gaussians


def test_frustum_pose_is_the_camera_in_viser_convention(view):
    cameras = view.cameras
    for i in range(len(cameras)):
        K, (w, h), pose = cameras.K[i], cameras.image_size[i], cameras.world_to_camera[i]
        frustum = frustum_pose(K, (w, h), pose)
        np.testing.assert_allclose(frustum.position, cameras.centers[i], atol=1e-9)
        assert frustum.aspect == pytest.approx(w / h)
        R = Rotation.from_quat(np.r_[frustum.wxyz[1:], frustum.wxyz[0]]).as_matrix()  # camera-to-world
        np.testing.assert_allclose(R @ [0, 0, 1], pose[2, :3], atol=1e-9)  # +z is where the lens looks (OpenCV)
        # the frustum's top edge (OpenCV: -y) at 2 units lands on the picture's top row: fov is vertical
        edge = frustum.position + R @ (2 * np.array([0, -np.tan(frustum.fov_y_rad / 2), 1]))
        pixel = K @ (pose[:3, :3] @ edge + pose[:3, 3])
        assert pixel[1] / pixel[2] == pytest.approx(K[1, 2] - h / 2, abs=1e-6)
    with pytest.raises(ValueError, match=r"expected K \[3, 3\] and world_to_camera \[4, 4\], got \[3, 3\] and "
                                         r"\[3, 4\]"):
        frustum_pose(cameras.K[0], (w, h), pose[:3])
    viser = pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    frustum = frustum_pose(cameras.K[0], cameras.image_size[0], cameras.world_to_camera[0])
    np.testing.assert_allclose(viser.transforms.SO3(frustum.wxyz).as_matrix(),
                               np.linalg.inv(cameras.world_to_camera[0])[:3, :3], atol=1e-9)


def test_path_lines_join_the_camera_centres_and_each_instant_finds_its_path_frame(view):
    path = view.path
    segments = path_segments(path)
    assert segments.shape == (len(path) - 1, 2, 3)  # an orbit moves on every frame
    np.testing.assert_allclose(segments[:, 0], path.centers[:-1])
    np.testing.assert_allclose(segments[:, 1], path.centers[1:])
    still = CameraPath("still", np.repeat(path.world_to_camera[:1], 5, 0), np.full(5, 24.0), [0, 0, 1, 2, 4],
                       (320, 180), Fraction(24))
    assert path_segments(still).shape == (0, 2, 3)  # no zero-length lines (three.js draws them as NaN)
    assert [path_frame_at(path, f) for f in range(len(path))] == list(range(len(path)))
    assert [path_frame_at(still, f) for f in (0, 1, 3, 4)] == [0, 2, 3, 4]  # a frozen instant: its first frame


def test_thumbnail_shrinks_wide_frames_only():
    image = np.arange(90 * 160 * 3, dtype=np.uint8).reshape(90, 160, 3)
    assert thumbnail(image, 320) is image
    assert thumbnail(image, 80).shape == (45, 80, 3)


# ---- loading a workspace ------------------------------------------------------------------------------------------


def test_load_view_reads_the_cameras_frames_points_and_path_and_writes_nothing(workspace, view):
    before = {p: p.stat().st_mtime_ns for p in workspace.root.rglob("*")}
    again = load_view(workspace.root)
    assert {p: p.stat().st_mtime_ns for p in workspace.root.rglob("*")} == before
    frames = view.timeline.frame_count
    assert again.cameras.camera_ids == view.cameras.camera_ids and len(view.cameras) >= 2
    registered = read_frame_poses(workspace.stage_dir("register"))
    for c, camera_id in enumerate(view.cameras.camera_ids):
        assert view.camera_poses[camera_id].shape == (frames, 4, 4)
        first = registered.camera_ids.index(f"{camera_id}/{0:06d}")
        np.testing.assert_array_equal(view.camera_poses[camera_id][0], registered.world_to_camera[first])
        images = view.frame_images[camera_id]
        assert len(images) == frames and all(p is not None and p.is_file() for p in images)
        assert Image.open(images[-1]).size == tuple(view.cameras.image_size[c])
    assert view.points.shape[1] == 3 and len(view.points) == len(view.point_colours) > 20
    assert len(view.path) == frames and view.shot_time(frames - 1) == 1.0
    assert set(view.load_s) == {"scene", "static", "rest"}


def test_errors_say_what_to_run(tmp_path):
    with pytest.raises(ViewerError, match=r"nowhere is not a reshoot workspace \(no workspace.json\)"):
        load_view(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()  # never made as a side effect
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ViewerError, match=r"no scene to show: its reconstruct stage has not finished .* run `reshoot "
                                          r"reconstruct --workspace .*ws` first \(after `reshoot ingest` and `reshoot "
                                          r"register`"):
        load_view(ws.root)
    for stage in ("ingest", "register"):
        (ws.root / stage).mkdir()
        (ws.root / stage / "manifest.json").write_text("{}")
    with pytest.raises(ViewerError, match=r"run `reshoot reconstruct --workspace .*ws` first$"):
        load_view(ws.root)
    (ws.root / "reconstruct").mkdir()
    (ws.root / "reconstruct" / "manifest.json").write_text("{}")
    with pytest.raises(ViewerError, match=r"reconstruct/scene.pt is missing .* `reshoot reconstruct --workspace .* "
                                          r"--force`"):
        load_view(ws.root)


# ---- the server ---------------------------------------------------------------------------------------------------


def test_the_server_answers_and_draws_the_instant_the_slider_asks_for(view):
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    port = _free_port()
    viewer = start_viewer(view.root, port=port, view=view)
    try:
        assert viewer.url == f"http://127.0.0.1:{port}"
        page = urllib.request.urlopen(viewer.url, timeout=30)
        assert page.status == 200 and b"<html" in page.read().lower()
        assert viewer.frame == 0
        # the set as its node holds it: float16 covariances, scaled so that they keep their precision
        scale, static = viewer.set_node.scale, view.static
        np.testing.assert_allclose(viewer.set_node.centers * scale, static.centers, rtol=1e-6, atol=1e-7)
        largest = np.trace(static.covariances, axis1=1, axis2=2)[:, None, None]
        np.testing.assert_allclose(viewer.set_node.covariances * scale ** 2 / largest, static.covariances / largest,
                                   atol=2e-3)
        first = viewer.actor_node.buffer.copy()
        last = view.timeline.frame_count - 1
        viewer.show_frame(last)
        assert viewer.frame == last and viewer.slider.value == last
        assert not np.array_equal(viewer.actor_node.buffer, first)  # the performance of another instant
        actor = splats_at(view.scene, 1.0, "dynamic")
        assert viewer.actor_node.buffer.shape == (len(actor), 8)
        np.testing.assert_allclose(viewer.path_frustum.position, view.path.centers[last], atol=1e-9)
        camera_id = view.cameras.camera_ids[0]
        filmed = np.asarray(Image.open(view.frame_images[camera_id][last]).convert("RGB"))
        np.testing.assert_array_equal(viewer.frusta[camera_id].image, thumbnail(filmed, 320))
        with pytest.raises(ValueError, match=f"frame {last + 1} is outside the footage timeline's frames 0..{last}"):
            viewer.show_frame(last + 1)
        viewer.play.value = True  # plays on from the last frame: wraps round to 0, 1, ...
        deadline, played = time.monotonic() + 30, last
        while played in (last, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
            played = viewer.frame
        viewer.play.value = False
        assert 0 < played < last
    finally:
        viewer.stop()
    with socket.socket() as probe:  # stopped: the port is free again (for a server, which sets SO_REUSEADDR)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_a_taken_port_is_an_error_naming_it_never_another_port(view, monkeypatch):
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ViewerError, match=rf"port {port} on 127.0.0.1 is already in use .* --port, e.g. "
                                              rf"--port {port + 1}"):
            start_viewer(view.root, port=port, view=view)
        # taken between the check and viser's bind: viser moves to the next free port, which is caught too
        monkeypatch.setattr("reshoot.viewer.app._check_port_free", lambda host, port: None)
        with pytest.raises(ViewerError, match=rf"port {port} on 127.0.0.1 is already in use"):
            start_viewer(view.root, port=port, view=view)


_RUN_CLI = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job may have SIGINT ignored
from reshoot_cli import main
from reshoot_cli.view import ViewCommand
main.COMMANDS.setdefault("view", ViewCommand)
sys.exit(main.main(sys.argv[1:]))
"""


def test_the_view_command_prints_where_to_go_and_stops_cleanly_on_ctrl_c(workspace):
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    port = _free_port()
    command = [sys.executable, "-c", _RUN_CLI, "view", "--workspace", str(workspace.root), "--port", str(port)]
    env = {**os.environ, "RESHOOT_QUIET": "1", "SSH_CONNECTION": "10.0.0.2 50000 10.0.0.1 22"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = server.stdout.readline()
        assert f"open http://127.0.0.1:{port} in a web browser; Ctrl-C stops it" in first, server.stderr.read()
        assert f"ssh -L {port}:localhost:{port} " in server.stdout.readline()  # logged in over SSH: the tunnel
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=30).status == 200
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1
        assert f"error: port {port} on 127.0.0.1 is already in use" in " ".join(second.stderr.split())
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    finally:
        server.kill() if server.poll() is None else None
    assert server.returncode == 0, err
    assert out.strip().endswith("viewer stopped") and "Traceback" not in err


# ---- the path editor: its pure core -------------------------------------------------------------------------------


def _moved(world_to_camera: np.ndarray, offset) -> np.ndarray:
    """The same camera with its centre moved by ``offset`` (world units), still looking the same way."""
    wxyz, position = frame_from_pose(world_to_camera)
    return pose_from_frame(wxyz, position + np.asarray(offset, float))


def test_a_gizmo_frame_is_the_camera_with_opencv_axes(view):
    pose = view.cameras.world_to_camera[1]
    wxyz, position = frame_from_pose(pose)
    np.testing.assert_allclose(position, view.cameras.centers[1], atol=1e-9)
    np.testing.assert_allclose(pose_from_frame(wxyz, position), pose, atol=1e-9)  # round trip
    R = Rotation.from_quat(np.r_[wxyz[1:], wxyz[0]]).as_matrix()
    np.testing.assert_allclose(R[:, 2], pose[2, :3], atol=1e-9)  # the gizmo's z axis is where the lens looks
    np.testing.assert_allclose(R[:, 1], pose[1, :3], atol=1e-9)  # its y axis is down in the picture
    np.testing.assert_allclose(pose_from_frame(-wxyz, position), pose, atol=1e-9)  # either sign of a quaternion
    moved = _moved(pose, [0.1, 0.0, 0.0])
    np.testing.assert_allclose(np.linalg.inv(moved)[:3, 3], view.cameras.centers[1] + [0.1, 0, 0], atol=1e-9)
    with pytest.raises(ValueError, match=r"expected a non-zero wxyz quaternion \[4\], got \[0.0, 0.0, 0.0\]"):
        pose_from_frame([0, 0, 0], position)


def test_keys_sit_on_timeline_frames_in_order_one_per_frame(view):
    pose = view.cameras.world_to_camera[0]
    keys = with_key(with_key((), new_key(8, pose, 30)), new_key(2, pose, 24))
    assert [(k.frame, k.timeline_frame, k.focal_mm) for k in keys] == [(2, 2, 24), (8, 8, 30)]
    keys = with_key(keys, new_key(8, _moved(pose, [0, 0, 0.2]), 50))  # replaces the key at frame 8
    assert [(k.frame, k.focal_mm) for k in keys] == [(2, 24), (8, 50)]
    assert key_at(keys, 8).focal_mm == 50 and key_at(keys, 5) is None
    assert [neighbour_key(keys, f, s) for f, s in ((5, -1), (5, 1), (2, -1), (8, 1), (8, -1))] == [2, 8, None, None, 2]
    assert without_key(keys, 2) == keys[1:] and without_key(keys, 5) == keys


def test_the_path_through_the_keys_is_the_path_stages_and_reads_back_as_path_import_reads_it(view, tmp_path):
    timeline, pose = view.timeline, view.cameras.world_to_camera[0]
    keys = (new_key(2, pose, 24), new_key(9, _moved(pose, [0.3, -0.1, 0.05]), 35))
    path = path_through(keys, timeline, (320, 180), 36.0, "mine")
    expected = CameraPath.from_keyframes("mine", keys, (320, 180), timeline.fps, 36.0, timeline.start_timecode,
                                         frame_count=timeline.frame_count)
    np.testing.assert_array_equal(path.world_to_camera, expected.world_to_camera)
    assert len(path) == timeline.frame_count  # one output frame per footage frame ...
    np.testing.assert_array_equal(path.timeline_frames, np.arange(timeline.frame_count))  # ... showing that frame
    np.testing.assert_array_equal(path.world_to_camera[9], keys[1].world_to_camera)  # keys are passed exactly
    assert path.focal_mm[2] == 24 and path.focal_mm[9] == 35 and path.focal_mm[-1] == 35  # holds after the last
    np.testing.assert_allclose(path.world_to_camera[0], path.world_to_camera[2], atol=1e-12)  # and before
    assert path_through((), timeline, (320, 180), 36.0, "mine") is None
    path.save(tmp_path / "mine.json")  # as Save writes it, read back as `reshoot path --kind import` reads it
    imported = import_path(tmp_path / "mine.json", timeline, view.cameras, PathConfig(kind="import",
                                                                                       file=tmp_path / "mine.json"))
    np.testing.assert_array_equal(imported.world_to_camera, path.world_to_camera)
    assert imported.keyframes == path.keyframes and imported.name == "mine"


def test_a_saved_path_gives_the_editor_its_keys_where_they_sit_on_footage_frames(view):
    timeline, pose = view.timeline, view.cameras.world_to_camera[0]
    assert view.path.keyframes == () and editable_keys(view.path, timeline) == ()  # an orbit is built without keys
    assert editable_keys(None, timeline) == ()
    keys = (new_key(0, pose, 24), new_key(timeline.frame_count - 1, _moved(pose, [0, 0, 0.1]), 24))
    path = path_through(keys, timeline, (320, 180), 36.0, "mine")
    assert editable_keys(path, timeline) == keys
    retimed = CameraPath.from_keyframes("slow", [Keyframe(0, pose, 24, 0), Keyframe(timeline.frame_count - 1, pose,
                                                                                   24, 3)],
                                        (320, 180), timeline.fps, frame_count=timeline.frame_count)
    assert editable_keys(retimed, timeline) == ()  # output frame 16 shows footage frame 3: not the editor's kind


def test_the_preview_is_small_and_its_overlay_tints_what_no_camera_saw_well():
    assert preview_size((1920, 1080), 320) == (320, 180) and preview_size((160, 90), 320) == (160, 90)
    assert preview_size((1000, 333), 320) == (320, 106)  # even
    rgb = np.full((2, 3, 3), 0.5, np.float32)
    confidence = np.array([[1.0, 0.0, 0.25], [0.5, 0.6, 1.0]])
    tinted = confidence_overlay(rgb, confidence, strength=0.7)
    assert tinted.dtype == np.uint8 and tinted.shape == (2, 3, 3)
    np.testing.assert_array_equal(tinted[1], np.full((3, 3), 128))  # seen well (0.5 or more): unchanged
    np.testing.assert_array_equal(tinted[0, 0], [128, 128, 128])
    np.testing.assert_array_equal(tinted[0, 1], np.round((0.3 * 0.5 + 0.7 * LOW_CONFIDENCE_RGB) * 255))  # unseen
    np.testing.assert_array_equal(tinted[0, 2], np.round((0.65 * 0.5 + 0.35 * LOW_CONFIDENCE_RGB) * 255))  # half


# ---- the path editor in a running viewer (its handlers called as the page calls them) -------------------------------


def test_the_editor_keys_the_camera_previews_it_and_saves_the_path_stage(own_workspace):
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    before = CameraPath.load(own_workspace / "path" / "path.json")
    viewer = start_viewer(own_workspace, port=0)
    editor = viewer.editor
    try:
        assert editor.keys == () and editor.name.value == "viewer"  # the orbit has no keys to take up
        assert editor.wait_preview() and editor.last_preview is not None  # previewed from the start
        assert "nothing to save" in editor.save()  # nothing edited yet
        viewer.show_frame(2)  # the gizmo follows the saved orbit
        np.testing.assert_allclose(editor.pose, before.world_to_camera[2], atol=1e-9)
        assert editor.wait_preview()
        first = editor.last_preview.rgb.copy()
        editor.add_key()
        viewer.show_frame(8)
        moved = _moved(before.world_to_camera[2], [0.0, 0.0, 0.15])  # up, above where it was at frame 2
        editor.place(moved)
        editor.lens.value = 30.0
        assert editor.add.label == "add key at frame 8" and editor.delete.disabled
        editor.add_key()
        assert editor.add.label == "replace key at frame 8" and not editor.delete.disabled
        assert [(k.frame, round(k.focal_mm, 1)) for k in editor.keys] == [(2, round(before.focal_mm[2], 1)),
                                                                          (8, 30.0)]
        assert "**2 keys** at frames 2" in editor.keys_text.content
        assert editor.wait_preview()
        assert not np.allclose(editor.last_preview.rgb, first, atol=0.02)  # another place, another picture
        assert editor.last_preview.confidence is None
        editor.overlay.value = True
        assert editor.wait_preview() and editor.last_preview.confidence is not None
        assert "confidence" in editor.preview.label
        np.testing.assert_allclose(viewer.path.world_to_camera[8], moved, atol=1e-9)  # the path drawn is the keys'
        assert viewer.path.name == "viewer" and viewer.path_line is not None
        viewer.show_frame(5)  # between the keys: the gizmo and the lens follow the new path
        np.testing.assert_allclose(editor.pose, viewer.path.world_to_camera[5], atol=1e-9)
        editor.go_to_key(-1)
        assert editor.frame == 2 and viewer.wait_drawn(2)
        editor.go_to_key(-1)  # no key before the first
        assert editor.frame == 2

        said = editor.save()
        assert said.startswith("saved: path 'viewer', 17 frames, 2 keys"), said
        assert f"reshoot guide --workspace {own_workspace}" in said
    finally:
        viewer.stop()
    saved = CameraPath.load(own_workspace / "path" / "path.json")
    assert [k.frame for k in saved.keyframes] == [2, 8] and saved.focal_mm[8] == 30.0
    np.testing.assert_allclose(saved.world_to_camera[8], moved, atol=1e-9)
    np.testing.assert_allclose(saved.world_to_camera[2], before.world_to_camera[2], atol=1e-9)
    manifest = Workspace(own_workspace).manifest("path")
    assert manifest["config"]["kind"] == "import" and manifest["config"]["file"] == EDITED_PATH_FILE.as_posix()
    assert manifest["summary"]["frames"] == 17 and set(manifest["outputs"]) == {"path.json", "plan.png", "plan.glb"}
    assert (own_workspace / EDITED_PATH_FILE).is_file()

    again = start_viewer(own_workspace, port=0)  # reopened: the saved path, its keys and its name
    try:
        assert [k.frame for k in again.editor.keys] == [2, 8] and again.editor.name.value == "viewer"
        np.testing.assert_allclose(again.path.world_to_camera, saved.world_to_camera)
        again.show_frame(8)
        np.testing.assert_allclose(again.editor.pose, moved, atol=1e-9)
        assert again.editor.lens.value == 30.0
        again.editor.delete_key()
        assert [k.frame for k in again.editor.keys] == [2] and "not saved yet" in again.editor.message.content
        looking = _moved(saved.world_to_camera[0], [0.1, 0.0, 0.0])  # "camera from my view": a browser's camera
        wxyz, position = frame_from_pose(looking)
        again.editor.place_at_view(SimpleNamespace(camera=SimpleNamespace(wxyz=wxyz, position=position)))
        np.testing.assert_allclose(again.editor.pose, looking, atol=1e-9)
    finally:
        again.stop()


_HOLD_LOCK = """
import sys, time
from reshoot.workspace import Workspace
with Workspace(sys.argv[1]).writing():
    print("holding", flush=True)
    time.sleep(120)
"""


def test_save_says_in_the_page_why_it_did_not_save(own_workspace):
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    before = (own_workspace / "path" / "path.json").read_bytes()
    viewer = start_viewer(own_workspace, port=0)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(own_workspace)], stdout=subprocess.PIPE,
                              text=True)
    try:
        editor = viewer.editor
        editor.add_key()
        assert holder.stdout.readline().strip() == "holding"
        said = editor.save()
        assert said.startswith(f"**not saved**: workspace {own_workspace} is being written by reshoot process "
                               f"{holder.pid}"), said
        assert said.endswith("Press Save again when it has finished.") and editor.message.content == said
        holder.kill()
        holder.wait(timeout=30)
        editor.name.value = ".hidden"
        assert "**not saved**: path name '.hidden' must be a plain file name stem" in editor.save()
        editor.name.value = "viewer"
        editor.delete_key()
        assert "nothing to save: add a key first" in editor.save()
    finally:
        holder.kill() if holder.poll() is None else None
        viewer.stop()
    assert (own_workspace / "path" / "path.json").read_bytes() == before  # nothing written
    assert not (own_workspace / EDITED_PATH_FILE).exists()


# ---- the 3D view in eval's report ---------------------------------------------------------------------------------


def _reshot(view):
    from reshoot.evaluation.evaluate import TruthPath

    camera_id = view.cameras.camera_ids[1]
    return TruthPath(camera_id, view.cameras.select([camera_id]), view.camera_poses[camera_id])


def test_the_eval_report_embeds_a_standalone_3d_view_of_the_scene(own_workspace, view, monkeypatch):
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    from reshoot.evaluation.evaluate import write_report

    frames = view.timeline.frame_count
    shot = np.full((frames, 18, 32, 3), 0.5, np.float32)
    truth = {f: np.full((18, 32, 3), 120, np.uint8) for f in range(frames)}
    write_report(own_workspace, "cam1", "classical", shot, shot, truth, scene=own_workspace / "scene.pt",
                 reshot=_reshot(view))
    out = own_workspace / "eval" / "cam1"
    page = (out / SCENE_FILE).read_text()
    assert page.startswith("<!doctype html>") and "window.__VISER_EMBED_DATA__=" in page  # the scene inlined
    assert 0.8e6 < len(page) < 3e6  # viser's client (0.8 MB) and this small scene
    assert "<script src=" not in page  # nothing to fetch: it opens from the disk
    report = (out / "report.html").read_text()
    assert f'<iframe src="{SCENE_FILE}"' in report and "needs no install and no network" in report

    monkeypatch.setitem(sys.modules, "viser", None)  # viser not installed: the report still writes, and says how
    (out / SCENE_FILE).unlink()
    write_report(own_workspace, "cam1", "classical", shot, shot, truth, scene=own_workspace / "scene.pt")
    report = (out / "report.html").read_text()
    assert "pip install 'reshoot[viewer]'" in report and "<iframe" not in report and not (out / SCENE_FILE).exists()


def test_the_report_keeps_the_set_gaussians_that_show_most():
    rng = np.random.default_rng(0)
    splats = SplatArrays(rng.normal(size=(6, 3)).astype(np.float32),
                         np.eye(3, dtype=np.float32)[None] * np.array([1, 1, 4, 4, 9, 0.01], np.float32)[:, None, None],
                         rng.random((6, 3)).astype(np.float32),
                         np.array([[0.9], [0.1], [0.5], [0.2], [0.05], [1.0]], np.float32))
    kept = most_visible(splats, 3)  # opacity x size: 0.9, 0.1, 1.0, 0.4, 0.15, 0.1
    np.testing.assert_array_equal(kept.centers, splats.centers[[0, 2, 3]])  # in their own order
    assert most_visible(splats, 6) is splats


# ---- in a browser -------------------------------------------------------------------------------------------------


def _chromium(sync_api):
    """Headless Chromium, software WebGL (no GPU here: slow, several seconds a frame for a big scene)."""
    chromium = os.environ.get("RESHOOT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium found (set RESHOOT_CHROMIUM to its executable)")
    playwright = sync_api.sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=chromium, args=[
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"])
    return playwright, browser


def _on_screen(camera, point: np.ndarray) -> tuple[float, float]:
    """Where world ``point`` shows in a browser whose viser camera is ``camera`` (OpenCV axes, vertical fov),
    in the page's pixels (the 3D view fills the page)."""
    R = Rotation.from_quat(np.r_[camera.wxyz[1:], camera.wxyz[0]]).as_matrix()  # camera-to-world
    x, y, z = R.T @ (np.asarray(point) - camera.position)
    focal = camera.image_height / 2 / np.tan(camera.fov / 2)
    return camera.image_width / 2 + focal * x / z, camera.image_height / 2 + focal * y / z


_PREVIEW_PIXELS = """() => {  // the preview as the page shows it: its address and its mean pixel value
    const img = [...document.querySelectorAll('img[src^="blob:"]')].find(i => i.naturalWidth > 0);
    if (!img) return null;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
    return [img.src, sum / (data.length / 4 * 3)];
}"""


def _wait(condition, timeout_s: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_browser_moves_the_time_slider_places_two_keys_and_saves_the_path(own_workspace, tmp_path):
    """Headless Chromium (software WebGL: about 20 s here) opens the page; with the keyboard it moves the time
    slider to frame 2 (the server draws that instant) and keys the new camera there; moves the slider to frame 8,
    drags the gizmo's blue (z, forward) arrow with the mouse, which moves the camera forward, and keys it there; the
    preview it shows changes; it presses Save, and path.json holds both keys. Then it follows a move made from
    Python, hides the points with a "show" checkbox, and saves a screenshot (to $RESHOOT_VIEWER_SCREENSHOTS, else the
    test's temporary folder)."""
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    shots = Path(os.environ.get("RESHOOT_VIEWER_SCREENSHOTS", tmp_path))
    orbit = CameraPath.load(own_workspace / "path" / "path.json")
    viewer = start_viewer(own_workspace, port=_free_port())
    editor = viewer.editor
    playwright, browser = _chromium(sync_api)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(viewer.url)
        _wait(lambda: viewer.server.get_clients(), what="the browser's viser client to connect")
        slider = page.get_by_role("slider").first
        slider.focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        assert viewer.wait_drawn(2, timeout_s=60), f"the server drew frame {viewer.frame}, not 2"
        assert editor.wait_preview()
        page.wait_for_function("document.body.innerText.includes('preview, frame 2')", timeout=60_000)
        page.get_by_role("button", name="add key at frame 2").click()
        _wait(lambda: len(editor.keys) == 1, what="the first key")
        first_preview = page.evaluate(_PREVIEW_PIXELS)

        slider.focus()
        for _ in range(6):
            page.keyboard.press("ArrowRight")
        assert viewer.wait_drawn(8, timeout_s=60), f"the server drew frame {viewer.frame}, not 8"
        client, rig = next(iter(viewer.server.get_clients().values())), viewer.nodes.rig
        centre = editor.gizmo.position.copy()
        axes = Rotation.from_quat(np.r_[editor.gizmo.wxyz[1:], editor.gizmo.wxyz[0]]).as_matrix()
        forward = axes[:, 2]
        client.camera.position = centre + axes[:, 0] * rig + [0.0, 0.0, 0.4 * rig]  # look at the gizmo from its side
        client.camera.look_at = centre + forward * 0.2 * rig  # (the arrow keys may have turned the view)
        page.wait_for_timeout(2000)  # the browser moves its view, and says so
        x0, y0 = _on_screen(client.camera, centre)
        x1, y1 = _on_screen(client.camera, centre + forward * 0.35 * rig * 0.75)  # on the blue arrow
        assert 0 < x1 < 900 and 0 < y1 < 800, f"the gizmo's arrow is off the 3D view, at {x1:.0f}, {y1:.0f}"
        page.mouse.move(x1, y1)
        page.mouse.down()
        for step in range(1, 11):  # along the arrow, as a person drags it
            page.mouse.move(x1 + (x1 - x0) * 0.08 * step, y1 + (y1 - y0) * 0.08 * step)
            page.wait_for_timeout(100)
        page.mouse.up()
        _wait(lambda: np.linalg.norm(editor.gizmo.position - centre) > 0.02, what="the gizmo to move")
        page.get_by_role("button", name="add key at frame 8").click()
        _wait(lambda: len(editor.keys) == 2, what="the second key")
        assert editor.wait_preview()
        page.wait_for_function(f"(() => {{ const p = ({_PREVIEW_PIXELS})(); return p && p[0] != "
                               f"'{first_preview[0]}'; }})()", timeout=60_000)
        second_preview = page.evaluate(_PREVIEW_PIXELS)
        assert abs(second_preview[1] - first_preview[1]) > 0.5, (first_preview, second_preview)  # another picture

        page.get_by_role("button", name="Save path").click()
        page.wait_for_function("document.body.innerText.includes(\"saved: path 'viewer'\")", timeout=120_000)
        keys = editor.keys

        last = viewer.view.timeline.frame_count - 1
        viewer.show_frame(last)  # from Python: every browser's slider follows
        page.wait_for_function(f"document.querySelector('[role=slider]').getAttribute('aria-valuenow') == "
                               f"'{last}'", timeout=60_000)
        page.get_by_text("sparse points").click()  # a "show" checkbox hides the points
        _wait(lambda: not viewer.points_node.visible, 30, "the points to hide")
        page.wait_for_timeout(3000)  # the splats' sort and first frames
        page.screenshot(path=shots / "viewer.png", timeout=240_000)
    finally:
        browser.close()
        playwright.stop()
        viewer.stop()
    saved = CameraPath.load(own_workspace / "path" / "path.json")
    assert [k.frame for k in saved.keyframes] == [2, 8] and len(saved) == last + 1
    np.testing.assert_allclose(saved.world_to_camera[2], orbit.world_to_camera[2], atol=1e-9)  # keyed where it was
    np.testing.assert_allclose(saved.world_to_camera[8], keys[1].world_to_camera, atol=1e-9)  # keyed where dragged
    moved = saved.centers[8] - saved.centers[2]
    assert np.linalg.norm(moved) > 0.02 and moved @ forward > 0.9 * np.linalg.norm(moved)  # forward, along z
    manifest = Workspace(own_workspace).manifest("path")
    assert manifest["config"]["kind"] == "import" and manifest["summary"]["frames"] == last + 1
    picture = np.asarray(Image.open(shots / "viewer.png").convert("RGB"), dtype=np.float64)
    assert picture.shape == (800, 1280, 3) and picture.std() > 10  # a drawn scene, not a blank page


def test_the_reports_3d_view_opens_from_the_disk_in_a_browser(own_workspace, view, tmp_path):
    """The eval report's 3D view, opened as a file (no server): the viser client starts from the embedded scene
    and draws it in the report's frame."""
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    from reshoot.viewer.report import scene_3d_section

    shots = Path(os.environ.get("RESHOOT_VIEWER_SCREENSHOTS", tmp_path))
    out = tmp_path / "report"
    out.mkdir()
    section = scene_3d_section(own_workspace, out, "cam1", _reshot(view))
    (out / "report.html").write_text(f"<!doctype html><html><body>{section}</body></html>")
    playwright, browser = _chromium(sync_api)
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        said = []
        page.on("console", lambda message: said.append(message.text))
        page.goto((out / "report.html").as_uri())
        frame = page.frame_locator("iframe")
        frame.locator("canvas").first.wait_for(timeout=120_000)
        deadline = time.monotonic() + 120
        while not any("Embedded data loaded" in text for text in said) and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert any("Embedded data loaded" in text for text in said), said
        page.wait_for_timeout(5000)  # the splats' sort and first frames
        page.screenshot(path=shots / "report_3d.png", timeout=240_000)
    finally:
        browser.close()
        playwright.stop()
    picture = np.asarray(Image.open(shots / "report_3d.png").convert("RGB"), dtype=np.float64)
    assert picture[100:650].std() > 10  # the frame shows a drawn scene
