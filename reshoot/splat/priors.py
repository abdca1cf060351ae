"""What dense set geometry tells training: a depth map per training view, and which Gaussians hang in free space.

The set's dense points (``reshoot.splat.dense``) are drawn into every training view as a z-buffer: the depth the set
should have there. Training pulls the rendered depth of the set towards it (``TrainConfig.depth_weight``), and a
Gaussian that sits clearly in front of that surface in views that see the surface behind it is in space the cameras
see through: a floater (``seen_through``), removed at refine steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from reshoot._deps import require
from reshoot.cameras import Cameras


@dataclass(frozen=True)
class DepthPriors:
    """The set's depth in each training view: the set cameras (same order as the footage's) and the set stills."""

    cameras: list[np.ndarray]  # C x [H, W] float32 metres along the optical axis; 0 where unknown
    stills: list[np.ndarray]  # S x [H_s, W_s] float32

    def view(self, appearance_idx: int) -> np.ndarray:
        """The prior of a training view, numbered as the trainer's appearance rows (cameras, then stills)."""
        c = len(self.cameras)
        return self.cameras[appearance_idx] if appearance_idx < c else self.stills[appearance_idx - c]


def zbuffer_depth(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray, size: tuple[int, int],
                  fill_px: int = 2) -> np.ndarray:
    """The nearest point's depth at each pixel of a pinhole camera, small holes between points closed.

    Args:
        points: [P, 3] world points.
        K: [3, 3]; world_to_camera: [4, 4] (OpenCV axes); size: (width, height).
        fill_px: holes up to about this many pixels wide between projected points are filled (a grey closing:
            the nearest depth around, then the farthest of those), so a surface drawn by points is solid.

    Returns:
        [H, W] float32 depth along the optical axis; 0 where no point lands.
    """
    ndimage = require("scipy.ndimage", "pip install scipy")
    width, height = size
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    u = np.floor(K[0, 0] * cam[front, 0] / z[front] + K[0, 2]).astype(np.int64)
    v = np.floor(K[1, 1] * cam[front, 1] / z[front] + K[1, 2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    depth = np.full(height * width, np.inf)
    np.minimum.at(depth, v[inside] * width + u[inside], z[front][inside])
    depth = depth.reshape(height, width)
    if fill_px > 0:
        window = 2 * fill_px + 1
        closed = ndimage.maximum_filter(np.where(np.isinf(depth), -np.inf, depth), size=window)
        closed = ndimage.minimum_filter(np.where(np.isinf(closed), np.inf, closed), size=window)
        closed = np.where(np.isfinite(depth), np.minimum(depth, closed), closed)
        depth = closed
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def depth_priors(points: np.ndarray, cameras: Cameras, stills: Cameras | None = None) -> DepthPriors:
    """``zbuffer_depth`` of ``points`` in every set camera (at its first pose) and set still."""
    def draw(group: Cameras | None) -> list[np.ndarray]:
        if group is None:
            return []
        return [zbuffer_depth(points, group.K[i], group.world_to_camera[i], tuple(int(v) for v in group.image_size[i]))
                for i in range(len(group))]

    return DepthPriors(draw(cameras), draw(stills))


@torch.no_grad()
def seen_through(means: Tensor, views: list[tuple[np.ndarray, np.ndarray, np.ndarray]], margin: float = 0.05) -> Tensor:
    """How many views see through each point: it projects onto the view's prior surface but lies more than
    ``margin`` (relative) in front of it.

    Args:
        means: [N, 3] world points (Gaussian centres).
        views: (K [3, 3], world_to_camera [4, 4], prior depth [H, W]) per view; 0 in the prior: unknown there.

    Returns:
        [N] int: the count of views that see through each point.
    """
    count = torch.zeros(len(means), dtype=torch.int32, device=means.device)
    for K, w2c, prior in views:
        R = torch.tensor(w2c[:3, :3], dtype=means.dtype, device=means.device)
        t = torch.tensor(w2c[:3, 3], dtype=means.dtype, device=means.device)
        cam = means @ R.T + t
        z = cam[:, 2]
        height, width = prior.shape
        safe = z.clamp_min(1e-6)
        u = torch.floor(float(K[0, 0]) * cam[:, 0] / safe + float(K[0, 2])).long()
        v = torch.floor(float(K[1, 1]) * cam[:, 1] / safe + float(K[1, 2])).long()
        inside = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        surface = torch.zeros_like(z)
        depth = torch.as_tensor(prior, dtype=means.dtype, device=means.device)
        surface[inside] = depth[v[inside], u[inside]]
        count += (inside & (surface > 0) & (z < surface * (1 - margin))).int()
    return count
