"""The viewer (reshoot.viewer): the arrays it draws from a tiny finished workspace, the server it starts, its errors,
and the `view` command; one slow test drives it in a real browser (Playwright and a system Chromium)."""

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

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from reshoot.camera_path import CameraPath
from reshoot.ingest import IngestConfig, run_ingest
from reshoot.plan import PathConfig, run_path
from reshoot.reconstruct import ReconstructConfig, run_reconstruct
from reshoot.register import RegisterConfig, read_frame_poses, run_register
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.splat.scene import SH_C0, MIN_TIME_SCALE
from reshoot.viewer import (ViewerError, frustum_pose, load_view, path_frame_at, path_segments, splats_at,
                            start_viewer, thumbnail)
from reshoot.workspace import Workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The small sample shoot up to a path: a 30-step scene (about 4k Gaussians, SH degree 1) and a 90-degree orbit."""
    root = tmp_path_factory.mktemp("viewer")
    shoot = make_sample_shoot(root / "shoot", PRESETS["small"])
    ws = Workspace(root / "ws")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    run_register(ws, RegisterConfig(survey=shoot.root / "survey"))
    run_reconstruct(ws, ReconstructConfig(steps=30, sh_degree=1, dynamic_per_instant=200, dense=False, stills=False))
    run_path(ws, PathConfig(kind="orbit", degrees=90))
    return ws


@pytest.fixture(scope="module")
def view(workspace):
    return load_view(workspace.root)


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
        monkeypatch.setattr("reshoot.viewer._check_port_free", lambda host, port: None)
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


# ---- in a browser -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_browser_connects_moves_the_time_slider_and_sees_the_scene(view, tmp_path):
    """Headless Chromium (software WebGL: slow, about a minute) opens the page, moves the slider with the keyboard
    (the server draws that instant), sees a move made from Python, and saves a screenshot
    (to $RESHOOT_VIEWER_SCREENSHOTS, else the test's temporary folder)."""
    pytest.importorskip("viser", reason="viser is not installed: pip install viser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    chromium = os.environ.get("RESHOOT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium found (set RESHOOT_CHROMIUM to its executable)")
    shots = Path(os.environ.get("RESHOOT_VIEWER_SCREENSHOTS", tmp_path))
    viewer = start_viewer(view.root, port=_free_port(), view=view)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=[
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 960, "height": 600})
            page.goto(viewer.url)
            deadline = time.monotonic() + 60
            while not viewer.server.get_clients() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert viewer.server.get_clients(), "the browser's viser client never connected"
            slider = page.get_by_role("slider").first
            slider.focus()
            for _ in range(2):
                page.keyboard.press("ArrowRight")
            assert viewer.wait_drawn(2, timeout_s=60), f"the server drew frame {viewer.frame}, not 2"
            last = view.timeline.frame_count - 1
            viewer.show_frame(last)  # from Python: every browser's slider follows
            page.wait_for_function(f"document.querySelector('[role=slider]').getAttribute('aria-valuenow') == "
                                   f"'{last}'", timeout=60_000)
            page.get_by_text("sparse points").click()  # a "show" checkbox hides the points
            deadline = time.monotonic() + 30
            while viewer.points_node.visible and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not viewer.points_node.visible
            page.wait_for_timeout(3000)  # the splats' sort and first frames
            page.screenshot(path=shots / "viewer.png", timeout=240_000)
            browser.close()
    finally:
        viewer.stop()
    picture = np.asarray(Image.open(shots / "viewer.png").convert("RGB"), dtype=np.float64)
    assert picture.shape == (600, 960, 3) and picture.std() > 10  # a drawn scene, not a blank page
