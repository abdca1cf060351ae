"""The viewer's arrays put into a viser scene: the set, the performance at an instant, the set cameras with what
they filmed, the sparse points, a camera path. Shared by the live viewer (:mod:`reshoot.viewer.app`) and the 3D view that
``reshoot eval`` saves into its report (:mod:`reshoot.viewer.report`); ``scene`` is a ``ViserServer.scene``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reshoot.camera_path import CameraPath
from reshoot.viewer.core import (PATH_COLOUR, SET_COLOUR, empty_splats, frustum_pose, overview_position, packed_splats,
                                 path_frame_at, path_segments, rig_size, splats_at, thumbnail, transport_scale)

if TYPE_CHECKING:
    from reshoot.viewer.app import WorkspaceView


@dataclass
class SceneNodes:
    """The viser scene nodes that show a workspace (:func:`add_workspace_scene`).

    Attributes:
        scale: the splat nodes' transport scale (:func:`transport_scale`).
        rig: how far the set cameras stand from their middle: frusta and lines are drawn in proportion.
        set_node, actor_node: the set's and the performance's Gaussians.
        points_node: the sparse points (None when there are none).
        frusta: the set cameras, by id.
        path_group: the frame ``/path`` that the new camera's line, frustum and keys hang under (hiding it hides
            them all).
        path_line, path_frustum: the path drawn (None when there is none).
    """

    scale: float
    rig: float
    set_node: Any
    actor_node: Any
    points_node: Any | None
    frusta: dict[str, Any]
    path_group: Any
    path_line: Any | None = None
    path_frustum: Any | None = None


def add_workspace_scene(scene: Any, view: WorkspaceView) -> SceneNodes:
    """Put the workspace into viser scene ``scene`` (a ``ViserServer.scene``): the set, an empty performance (see
    :func:`draw_instant`), the sparse points and the set cameras at timeline frame 0, +Z up, and the browser's first
    view of it."""
    scene.set_up_direction("+z")
    scale, rig = transport_scale(view.static), rig_size(view.cameras)
    set_node = scene.add_gaussian_splats("/splats/set", *packed_splats(view.static, scale), scale=1.0 / scale)
    actor_node = scene.add_gaussian_splats("/splats/actor", *packed_splats(empty_splats(), scale), scale=1.0 / scale)
    points_node = None
    if len(view.points):
        points_node = scene.add_point_cloud("/sparse_points", view.points.astype(np.float32), view.point_colours,
                                            point_size=0.006 * rig, precision="float32")
    frusta = {}
    for i, camera_id in enumerate(view.cameras.camera_ids):
        pose = frustum_pose(view.cameras.K[i], view.cameras.image_size[i], view.camera_poses[camera_id][0])
        frusta[camera_id] = scene.add_camera_frustum(
            f"/cameras/{camera_id}", pose.fov_y_rad, pose.aspect, scale=0.12 * rig, thickness=0.004 * rig,
            color=SET_COLOUR, wxyz=pose.wxyz, position=pose.position)
        scene.add_label(f"/cameras/{camera_id}/label", camera_id)
    path_group = scene.add_frame("/path", show_axes=False)
    return SceneNodes(scale, rig, set_node, actor_node, points_node, frusta, path_group)


def overview_camera(server: Any, view: WorkspaceView) -> None:
    """Where every browser's camera starts (and "reset view" returns): see :func:`overview_position`."""
    target, position = overview_position(view.cameras, view.points)
    server.initial_camera.look_at = tuple(float(v) for v in target)
    server.initial_camera.position = tuple(float(v) for v in position)


def draw_instant(nodes: SceneNodes, view: WorkspaceView, frame: int, image_px: int) -> None:
    """Show timeline frame ``frame``: the performance then, and each set camera where it stood, with the frame it
    filmed (shrunk to ``image_px`` across; none where it filmed none)."""
    actor = splats_at(view.scene, view.shot_time(frame), "dynamic")
    nodes.actor_node.set_gaussians(*packed_splats(actor if len(actor) else empty_splats(), nodes.scale))
    for i, camera_id in enumerate(view.cameras.camera_ids):
        pose = frustum_pose(view.cameras.K[i], view.cameras.image_size[i], view.camera_poses[camera_id][frame])
        node = nodes.frusta[camera_id]
        node.wxyz, node.position = pose.wxyz, pose.position
        image_path = view.frame_images[camera_id][frame]
        node.image = None if image_path is None else thumbnail(read_rgb(image_path), image_px)


def draw_path(scene: Any, nodes: SceneNodes, path: CameraPath | None, frame: int, colour: tuple[int, int, int]
              = PATH_COLOUR, name: str = "/path") -> None:
    """Draw ``path`` under ``name``: its line (replacing the one drawn before; a still camera has none) and its
    frustum at timeline frame ``frame``; ``None`` removes them."""
    if nodes.path_line is not None:
        nodes.path_line.remove()
        nodes.path_line = None
    if path is None:
        if nodes.path_frustum is not None:
            nodes.path_frustum.remove()
            nodes.path_frustum = None
        return
    segments = path_segments(path)
    if len(segments):  # zero-length segments draw as NaN in three.js
        nodes.path_line = scene.add_line_segments(f"{name}/line", segments.astype(np.float32), colour,
                                                  thickness=0.006 * nodes.rig)
    if nodes.path_frustum is None:
        nodes.path_frustum = scene.add_camera_frustum(f"{name}/camera", 1.0, 1.0, scale=0.1 * nodes.rig,
                                                      thickness=0.005 * nodes.rig, color=colour)
    place_path_frustum(nodes, path, frame)


def place_path_frustum(nodes: SceneNodes, path: CameraPath | None, frame: int) -> None:
    """Move the path's frustum to the path frame that shows timeline frame ``frame``."""
    if path is None or nodes.path_frustum is None:
        return
    i = path_frame_at(path, frame)
    pose = frustum_pose(path.K[i], path.image_size, path.world_to_camera[i])
    node = nodes.path_frustum
    node.wxyz, node.position, node.fov, node.aspect = pose.wxyz, pose.position, pose.fov_y_rad, pose.aspect


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
