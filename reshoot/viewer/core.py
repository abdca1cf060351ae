"""The viewer's pure core: loaded workspace data to the plain numpy arrays a 3D viewer draws (no I/O, no viser).

Used by :mod:`reshoot.viewer.app` (the live viewer), :mod:`reshoot.viewer.scene` (those arrays into a viser scene) and
:mod:`reshoot.viewer.path` (the path editor); a notebook or another viewer can take them as they are. The names are
also reachable from :mod:`reshoot.viewer.app`.

Conventions: reshoot's poses are world-to-camera with OpenCV camera axes (x right, y down, z forward; see
:mod:`reshoot.cameras`); :class:`FrustumPose` is the camera-to-world rotation as a wxyz quaternion and the camera
centre, with the same axes, which is what viser's frusta and gizmos take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reshoot.camera_path import CameraPath
from reshoot.cameras import Cameras
from reshoot.splat.scene import SH_C0, DynamicScene

MIN_OPACITY = 1.0 / 255.0  #: Gaussians fainter than this at an instant are not sent (they would not show)
_F16_ROOM = 3.0e4  #: the largest value a splat node's covariance may hold (float16's largest is 65504)
SET_COLOUR = (40, 110, 220)  #: the set cameras' frusta (as plan.glb draws them)
PATH_COLOUR = (220, 50, 40)  #: the new camera's path and frustum


# ---- workspace data -> plain arrays ------------------------------------------------------------


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



# ---- what a splat node holds, and where things stand ---------------------------------------------------------


def transport_scale(splats: SplatArrays) -> float:
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


def packed_splats(splats: SplatArrays, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a splat node holds: centres times ``k``, covariances times ``k**2`` (see :func:`transport_scale`; clipped
    to float16's range for a Gaussian far larger than the rest), colours, opacities."""
    return (splats.centers * k, np.clip(splats.covariances * (k * k), -_F16_ROOM, _F16_ROOM), splats.rgbs,
            splats.opacities)


def empty_splats() -> SplatArrays:
    """One fully transparent Gaussian: what a splat node holds when nothing is visible (viser needs at least one)."""
    return SplatArrays(np.zeros((1, 3), np.float32), np.eye(3, dtype=np.float32)[None] * 1e-6,
                       np.zeros((1, 3), np.float32), np.zeros((1, 1), np.float32))


def rig_size(cameras: Cameras) -> float:
    """How far the set cameras stand from their middle (frusta and lines are drawn in proportion); 1 for one camera."""
    centres = cameras.centers
    size = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) if len(centres) else 0.0
    return size if size > 0 else 1.0


def overview_position(cameras: Cameras, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the browser's camera starts: high above the first set camera's side of the set, looking down into it at
    the middle of the sparse points (from outside the set, its walls would hide the action).  # [3], [3]"""
    target = np.median(points, axis=0) if len(points) else np.zeros(3)
    rig = rig_size(cameras)
    away = cameras.centers[0] - target if len(cameras) else np.array([1.0, 0.0, 0.0])
    away[2] = 0.0
    away = away / np.linalg.norm(away) if np.linalg.norm(away) > 1e-9 else np.array([1.0, 0.0, 0.0])
    return target, target + away * 1.0 * rig + np.array([0.0, 0.0, 1.4 * rig])
