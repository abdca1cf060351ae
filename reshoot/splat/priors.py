"""What dense set geometry tells training: a depth map per training view, and which Gaussians hang in free space.

The set's dense points (``reshoot.splat.dense``) are drawn into every training view as a z-buffer: the depth the set
should have there. Training pulls the rendered depth of the set towards it (``TrainConfig.depth_weight``), and a
Gaussian that sits clearly in front of that surface in views that see the surface behind it is in space the cameras
see through: a floater (``seen_through``), removed at refine steps.

The same points are drawn into *pseudo views* (``pseudo_cameras``): virtual cameras between and above the real ones,
where no footage exists. A set is solid where its geometry is: there the render must be opaque and at the prior's
depth (``TrainConfig.coverage_weight``). Without it, set Gaussians that only grazing views constrain thin out or
vanish, and a new angle from above sees holes in the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from reshoot._deps import require
from reshoot.cameras import Cameras, look_at


@dataclass(frozen=True)
class DepthPriors:
    """The set's depth in each training view: the set cameras (same order as the footage's) and the set stills."""

    cameras: list[np.ndarray]  # C x [H, W] float32 metres along the optical axis; 0 where unknown
    stills: list[np.ndarray]  # S x [H_s, W_s] float32
    pseudo_cameras: Cameras | None = None  # P virtual views between and above the real cameras
    pseudo: tuple[np.ndarray, ...] = ()  # P x [H_p, W_p] float32: the set's depth in each pseudo view

    def view(self, appearance_idx: int) -> np.ndarray:
        """The prior of a training view, numbered as the trainer's appearance rows (cameras, then stills)."""
        c = len(self.cameras)
        return self.cameras[appearance_idx] if appearance_idx < c else self.stills[appearance_idx - c]


def zbuffer_depth(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray, size: tuple[int, int],
                  fill_px: int = 2, radius: np.ndarray | float = 0.0, max_footprint_px: int = 8) -> np.ndarray:
    """The nearest point's depth at each pixel of a pinhole camera, each point drawn as a small square surfel.

    A point stands for the patch of surface around it (``radius``: half the spacing to its neighbours), so it covers
    every pixel that patch covers, up to ``max_footprint_px`` either side. Drawn as single pixels instead, points on
    a near surface leave gaps wherever the view is finer than their spacing, and a farther surface shows through
    them: a prior that says "wall" in the middle of a box pulls the box's Gaussians back and marks them seen through.

    Args:
        points: [P, 3] world points.
        K: [3, 3]; world_to_camera: [4, 4] (OpenCV axes); size: (width, height).
        fill_px: holes up to about this many pixels wide between projected points are filled (a grey closing:
            the nearest depth around, then the farthest of those), so a surface drawn by points is solid.
        radius: [P] or a scalar: each point's surfel half-size in world units (0: one pixel; see
            :func:`surfel_radii`).
        max_footprint_px: the largest surfel half-size in pixels (points very near the camera).

    Returns:
        [H, W] float32 depth along the optical axis; 0 where no point lands.
    """
    ndimage = require("scipy.ndimage", "pip install scipy")
    width, height = size
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    cam, z = cam[front], z[front]
    u = np.floor(K[0, 0] * cam[:, 0] / z + K[0, 2]).astype(np.int64)
    v = np.floor(K[1, 1] * cam[:, 1] / z + K[1, 2]).astype(np.int64)
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), points.shape[:1])[front]
    half = np.clip(np.floor(K[0, 0] * radii / z + 0.5), 0, max_footprint_px).astype(np.int64)  # [P] pixels
    depth = np.full(height * width, np.inf)
    reach = int(half.max()) if len(half) else 0
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            take = half >= max(abs(dx), abs(dy))
            uu, vv = u[take] + dx, v[take] + dy
            inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            np.minimum.at(depth, vv[inside] * width + uu[inside], z[take][inside])
    depth = depth.reshape(height, width)
    if fill_px > 0:
        window = 2 * fill_px + 1
        closed = ndimage.maximum_filter(np.where(np.isinf(depth), -np.inf, depth), size=window)
        closed = ndimage.minimum_filter(np.where(np.isinf(closed), np.inf, closed), size=window)
        closed = np.where(np.isfinite(depth), np.minimum(depth, closed), closed)
        depth = closed
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def surfel_radii(points: np.ndarray, neighbours: int = 4) -> np.ndarray:
    """[P] each point's surfel half-size: half the mean distance to its ``neighbours`` nearest points (on a grid of
    spacing s, s / 2: the squares tile the surface), at most twice the median of its neighbours' own (a lone point
    stays small: it is a stray, not a surface; a sparse surface keeps its size)."""
    spatial = require("scipy.spatial", "pip install scipy")
    if len(points) <= neighbours:
        return np.zeros(len(points))
    distance, nearest = spatial.cKDTree(points).query(points, k=neighbours + 1)
    radii = 0.5 * distance[:, 1:].mean(axis=1)
    return np.minimum(radii, 2 * np.median(radii[nearest[:, 1:]], axis=1))


def depth_priors(points: np.ndarray, cameras: Cameras, stills: Cameras | None = None, pseudo_views: int = 0,
                 seed: int = 0) -> DepthPriors:
    """``zbuffer_depth`` of ``points`` in every set camera (at its first pose) and set still, and in
    ``pseudo_views`` virtual views (:func:`pseudo_cameras`)."""
    radii = surfel_radii(points)

    def draw(group: Cameras | None) -> list[np.ndarray]:
        if group is None:
            return []
        return [zbuffer_depth(points, group.K[i], group.world_to_camera[i], tuple(int(v) for v in group.image_size[i]),
                              radius=radii) for i in range(len(group))]

    real = [cameras] if stills is None else [cameras, stills]
    pseudo = pseudo_cameras(real, points, pseudo_views, seed) if pseudo_views > 0 else None
    return DepthPriors(draw(cameras), draw(stills), pseudo, tuple(draw(pseudo)))


def pseudo_cameras(groups: list[Cameras], points: np.ndarray, count: int, seed: int = 0) -> Cameras:
    """``count`` virtual cameras where no footage is: each at a random mix of two real cameras' centres, raised
    by up to the cameras' spread along the cameras' mean up direction, looking at a random dense point near the
    set's middle; the first camera's intrinsics at half its size.

    Args:
        groups: the real views, registered: the set cameras (whose first camera gives the lens), then the stills.
        points: [P, 3] the set's dense points (world).
    """
    rng = np.random.default_rng(seed)
    cameras = groups[0]
    centres = np.concatenate([g.centers for g in groups])  # [C, 3]
    up = -np.concatenate([g.world_to_camera[:, 1, :3] for g in groups]).mean(axis=0)  # image y points down
    up /= max(np.linalg.norm(up), 1e-12)
    spread = float(np.linalg.norm(centres - centres.mean(axis=0), axis=1).max()) or 1.0
    middle = np.median(points, axis=0)
    near = points[np.linalg.norm(points - middle, axis=1) <= np.quantile(np.linalg.norm(points - middle, axis=1), 0.5)]
    width, height = (max(8, int(v) // 2) for v in cameras.image_size[0])
    scale = width / float(cameras.image_size[0, 0])
    poses = []
    for _ in range(count):
        a, b = rng.choice(len(centres), size=2, replace=len(centres) < 2)
        eye = centres[a] + rng.uniform(0, 1) * (centres[b] - centres[a]) + rng.uniform(0, 1) * spread * up
        target = near[rng.integers(len(near))]
        forward = (target - eye) / max(np.linalg.norm(target - eye), 1e-12)
        side = np.cross(forward, up)
        poses.append(look_at(eye, target, up if np.linalg.norm(side) > 1e-3 else cameras.world_to_camera[0, 0, :3]))
    K = cameras.K[0]
    return Cameras.create([f"pseudo{i}" for i in range(count)], [K[0, 0] * scale] * count, [K[1, 1] * scale] * count,
                          [K[0, 2] * scale] * count, [K[1, 2] * scale] * count, np.stack(poses),
                          np.tile([width, height], (count, 1)))


@torch.no_grad()
def camera_bodies(means: Tensor, views: list[tuple[np.ndarray, np.ndarray, tuple[int, int]]],
                  clearance: float) -> tuple[Tensor, Tensor]:
    """Where the cameras themselves stand: a ball around each camera centre, of radius ``clearance`` times the
    median depth of the points it sees (a camera cannot film anything of the set nearer than that; what other
    cameras filmed there is its body or stand, and from its own view such a point would cover the picture).

    Args:
        means: [N, 3] world points the depths are measured on (the set's Gaussian centres).
        views: (K [3, 3], world_to_camera [4, 4], (width, height)) per camera.
    Returns:
        centres [V, 3] and radii [V] (0 for a camera that sees none of the points).
    """
    centres, radii = [], []
    for K, w2c, (width, height) in views:
        R = torch.tensor(w2c[:3, :3], dtype=means.dtype, device=means.device)
        t = torch.tensor(w2c[:3, 3], dtype=means.dtype, device=means.device)
        cam = means @ R.T + t
        z = cam[:, 2]
        safe = z.clamp_min(1e-6)
        u = float(K[0, 0]) * cam[:, 0] / safe + float(K[0, 2])
        v = float(K[1, 1]) * cam[:, 1] / safe + float(K[1, 2])
        seen = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        centres.append(-R.T @ t)
        radii.append(clearance * z[seen].median() if seen.any() else torch.zeros((), dtype=means.dtype))
    return torch.stack(centres), torch.stack(radii).to(means.device)


def inside_bodies(means: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """[N] bool: the points inside any camera's ball (:func:`camera_bodies`)."""
    inside = torch.zeros(len(means), dtype=torch.bool, device=means.device)
    for centre, radius in zip(centres, radii):
        inside |= ((means - centre) ** 2).sum(-1) < radius ** 2
    return inside


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
