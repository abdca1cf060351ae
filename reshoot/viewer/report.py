"""The 3D view in ``reshoot eval``'s report: the scene, the set cameras, the new camera's path and the camera
reshot, saved as one standalone web page next to the report (``scene_3d.html``) and shown in it in a frame.

The page is viser's standalone export (``StateSerializer.as_html``): viser's web client, shipped in its wheel as one
self-contained ``index.html``, with the recorded scene inlined (zstd-compressed, base64) in the same file. It needs
no install and no network, and opens from the disk (``file://``) in Chromium, Firefox and Safari: nothing is fetched.
The scene is the one :mod:`reshoot.viewer.app` draws, at the timeline's middle frame; the set's Gaussians are capped at
``max_set_gaussians`` (those that show most: opacity times size) to keep the file small.

Without viser (the optional ``viewer`` extra) or without a scene in the workspace, the report says so in a line
instead, and how to get the view.
"""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.atomic import atomic_write_text
from reshoot.viewer.core import SplatArrays, frustum_pose, rig_size

SCENE_FILE = "scene_3d.html"  #: the 3D view's page, next to report.html
RESHOT_COLOUR = (30, 160, 60)  #: the camera reshot: its track and its frustum at the frame shown
MAX_SET_GAUSSIANS = 80_000  #: the page is then about 4 MB (the demo's set has about 214,000; it looks the same)


def scene_3d_section(workspace_root: Path, out_dir: Path, camera: str, reshot: Any = None,
                     max_set_gaussians: int = MAX_SET_GAUSSIANS) -> str:
    """Write ``out_dir/scene_3d.html`` and return the report's HTML section that shows it; without viser or a scene,
    write nothing and return a line saying how to get it.

    ``reshot`` (optional) is the camera reshot as :func:`reshoot.evaluation.evaluate.run_eval` renders it: anything with
    ``lens`` (one pinhole :class:`~reshoot.cameras.Cameras`) and ``world_to_camera`` [T, 4, 4], one pose per timeline
    frame (a :class:`reshoot.evaluation.evaluate.TruthPath`)."""
    try:
        import viser
    except ImportError:
        return _note("The report has no 3D view of the scene here: it needs viser. Install it with <code>pip install "
                     "'reshoot[viewer]'</code> and run <code>reshoot eval</code> again.")
    from reshoot.viewer.app import ViewerError, load_view

    try:
        view = load_view(workspace_root)
    except ViewerError as exc:
        return _note(f"No 3D view of the scene: {html.escape(str(exc))}.")
    if len(view.static) > max_set_gaussians:
        view = replace(view, static=most_visible(view.static, max_set_gaussians))
    frame = view.timeline.frame_count // 2
    page = _scene_page(viser, view, frame, camera, reshot)
    atomic_write_text(Path(out_dir) / SCENE_FILE, page)
    size_mb = len(page.encode()) / 1e6
    return (f'<h2>The scene in 3D</h2>\n<iframe src="{SCENE_FILE}" title="the scene in 3D" style="width:100%;height:'
            f'560px;border:1px solid #ccc"></iframe>\n<p>The reconstructed scene at footage frame {frame}, the set '
            f"cameras (blue), the new camera's path (red, when <code>reshoot path</code> has run) and the camera "
            f"reshot, {html.escape(camera)} (green: its track, and its frustum at that frame). Drag to orbit, "
            f"right-drag to pan, scroll to zoom. It is <a href=\"{SCENE_FILE}\">{SCENE_FILE}</a> ({size_mb:.1f} MB), "
            "a standalone page next to this report: it needs no install and no network. If the frame above stays "
            "empty (a browser that blocks frames from files), open that file itself, or serve the folder: "
            "<code>python -m http.server --directory FOLDER</code> and open <code>http://localhost:8000/report.html"
            "</code>.</p>")


def most_visible(splats: SplatArrays, count: int) -> SplatArrays:
    """The ``count`` Gaussians of ``splats`` that show most: by opacity times size (the square root of the
    covariance's trace), so that large faint ones that fill walls stay (all of them when there are no more)."""
    if len(splats) <= count:
        return splats
    weight = splats.opacities[:, 0] * np.sqrt(np.trace(splats.covariances, axis1=1, axis2=2))
    keep = np.sort(np.argpartition(-weight, count - 1)[:count])
    return SplatArrays(splats.centers[keep], splats.covariances[keep], splats.rgbs[keep], splats.opacities[keep])


def _scene_page(viser: Any, view: Any, frame: int, camera: str, reshot: Any) -> str:
    """The standalone page of the workspace's scene at timeline frame ``frame``, with the reshot camera."""
    from reshoot.viewer.net import quiet_stdout
    from reshoot.viewer.scene import add_workspace_scene, draw_instant, draw_path, overview_camera

    with quiet_stdout():  # a server nobody connects to (port 0: any free port): viser records what it would send
        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        nodes = add_workspace_scene(server.scene, view)
        overview_camera(server, view)
        draw_instant(nodes, view, frame, image_px=160)
        draw_path(server.scene, nodes, view.path, frame)
        if reshot is not None:
            _add_reshot(server.scene, camera, reshot, frame, rig_size(view.cameras))
        return server.get_scene_serializer().as_html()
    finally:
        with quiet_stdout():
            server.stop()


def _add_reshot(scene: Any, camera: str, reshot: Any, frame: int, rig: float) -> None:
    """The camera reshot: the line through its centres, its frustum at ``frame``, its name."""
    poses = np.asarray(reshot.world_to_camera, np.float64)
    centres = np.linalg.inv(poses)[:, :3, 3]
    segments = np.stack([centres[:-1], centres[1:]], axis=1)
    segments = segments[np.linalg.norm(segments[:, 1] - segments[:, 0], axis=-1) > 1e-9]
    if len(segments):  # a still camera has no line (zero-length segments draw as NaN)
        scene.add_line_segments("/reshot/line", segments.astype(np.float32), RESHOT_COLOUR, thickness=0.006 * rig)
    i = min(frame, len(poses) - 1)
    pose = frustum_pose(reshot.lens.K[0], reshot.lens.image_size[0], poses[i])
    scene.add_camera_frustum("/reshot/camera", pose.fov_y_rad, pose.aspect, scale=0.12 * rig, thickness=0.006 * rig,
                             color=RESHOT_COLOUR, wxyz=pose.wxyz, position=pose.position)
    scene.add_label("/reshot/camera/label", camera)


def _note(text: str) -> str:
    return f'<h2>The scene in 3D</h2>\n<p style="color:#777">{text}</p>'
