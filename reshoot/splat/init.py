"""Where the Gaussians start: the set from the cleaned SfM points, the action from per-instant visual hulls.

The registered cameras are locked off (or their poses known per frame), so at every instant each camera's
*motion mask* (pixels that differ from its clean plate) shows where the actor is. A point of space that
lands inside the motion mask of every camera that sees it, at one instant, is in that instant's visual
hull. Dynamic Gaussians start on a sample of those points, centred on their instant, coloured by what the
cameras saw there. Static Gaussians start on the SfM points (outliers removed, see ``pointcloud``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reshoot._deps import require
from reshoot.splat.data import SetStills, ShotFootage
from reshoot.splat.dense import DenseView
from reshoot.splat.pointcloud import PointCloudCleanConfig, clean_points
from reshoot.splat.scene import concat_params, make_params


@dataclass(frozen=True)
class InitConfig:
    """How the scene's Gaussians start."""

    sh_degree: int = 3
    """Spherical-harmonics degree of the colours (0 to 3)."""
    motion_threshold: int = 24
    """A pixel differing from its camera's clean plate by more than this (0-255, any channel) is moving."""
    hull_voxels: int = 96
    """Voxels along the longest side of the region carved for the visual hulls."""
    hull_min_cameras: int = 2
    """A hull point must be seen (inside the image, in front) by at least this many cameras."""
    dynamic_per_instant: int = 1500
    """At most this many dynamic Gaussians start at each instant."""
    time_scale_frames: float = 1.0
    """A dynamic Gaussian's temporal extent at the start, in instants used for training (its opacity falls to
    37 % that far from its own)."""
    plate_stride: int = 0
    """Also start static Gaussians on every plate_stride-th pixel of each camera's clean plate, at a depth
    interpolated from the SfM points it sees (0: SfM points only). On the sample, stride 4 fits the training
    cameras better (30.8 vs 26.8 dB after 600 steps) but adds floaters an overhead view sees (15.0 vs 15.7 dB)."""
    static_opacity: float = 0.1
    dense_opacity: float = 0.5
    """Opacity the Gaussians on dense set points start with (they lie on a surface the cameras agree on)."""
    dense_width: float = 1.0
    """Gaussians on dense set points start as discs in the local surface (fitted to their neighbours) this wide
    (their scale), relative to the points' spacing (their mean distance to 3 neighbours, as 3DGS starts). On the
    sample 0.5 leaves holes between irregular stereo points: the overhead view started at 17.8 against 19.2 dB."""
    dense_flatness: float = 0.2
    """Their thickness along the surface normal, relative to their width."""
    dynamic_opacity: float = 0.5
    clean: PointCloudCleanConfig = PointCloudCleanConfig()
    seed: int = 0


@dataclass(frozen=True)
class InitReport:
    static_points: dict  # the point-cloud cleaning report
    dynamic_per_instant: list[int]
    hull_region: list[list[float]]  # [[xmin, ymin, zmin], [xmax, ymax, zmax]]
    voxel_size: float
    moving_fraction: list[float]  # per camera: mean fraction of pixels moving
    sparse_on_performance: int = 0  # register's points left out of the set: they lie in the performance


def initial_params(footage: ShotFootage, points_xyz: np.ndarray, points_rgb: np.ndarray,
                   config: InitConfig = InitConfig(), masks: np.ndarray | None = None,
                   dense: tuple[np.ndarray, np.ndarray] | None = None,
                   set_depths: list[np.ndarray] | None = None) -> tuple[dict[str, torch.Tensor], InitReport]:
    """Static Gaussians on the cleaned SfM points (and dense set points), dynamic ones in each instant's visual hull.

    Args:
        points_xyz, points_rgb: register's sparse points [N, 3] and colours [N, 3] uint8; may be empty when
            ``dense`` has points (the set then starts on those alone).
        masks: the footage's motion masks [C, T, H, W] if already made (``motion_masks``).
        dense: dense set points and their colours in [0, 1] (``reshoot.splat.dense``): the set starts on them too.
        set_depths: per footage camera, the set's depth [H, W] (``reshoot.splat.priors``; 0: unknown): the visual
            hulls are carved only by the cameras that see a point in front of the set (not hidden by a prop).
    """
    if masks is None:
        masks = motion_masks(footage, config.motion_threshold)
    parts, xyz = [], np.zeros((0, 3))
    static_report = {"points_in": 0, "points_out": 0, "summary": "no sparse points: the set starts on the dense points"}
    if len(points_xyz) or dense is None or not len(dense[0]):  # no SfM points at all: the dense set alone (if any)
        cleaned = clean_points(points_xyz, points_rgb, config.clean)
        static_report = cleaned.report.describe()
        xyz, rgb = cleaned.xyz, cleaned.rgb / 255.0
        if config.plate_stride:
            dense_xyz, dense_rgb = plate_points(footage, masks, cleaned.xyz, config.plate_stride)
            xyz, rgb = np.concatenate([xyz, dense_xyz]), np.concatenate([rgb, dense_rgb])
        xyz_t = torch.as_tensor(xyz, dtype=torch.float32)
        scale = _neighbour_scale(xyz_t)
        scale = scale.clamp_max(torch.quantile(scale, 0.95))  # isolated points would start as huge blobs
        parts.append(make_params(xyz_t, torch.as_tensor(rgb, dtype=torch.float32), scale,
                                 config.sh_degree, opacity=config.static_opacity))
    if dense is not None and len(dense[0]):
        parts.append(surfel_params(dense[0], dense[1], config.sh_degree, config.dense_opacity, config.dense_width,
                                   config.dense_flatness))
        xyz = np.concatenate([xyz, dense[0]])
    dynamic, counts, region, voxel = dynamic_params(footage, masks, xyz, config, set_depths)
    parts.append(dynamic)
    report = InitReport(static_report, counts, [list(map(float, region[0])), list(map(float, region[1]))],
                        float(voxel), [float(m.mean()) for m in masks])
    return concat_params(*parts), report


def dynamic_params(footage: ShotFootage, masks: np.ndarray, set_xyz: np.ndarray, config: InitConfig = InitConfig(),
                   set_depths: list[np.ndarray] | None = None
                   ) -> tuple[dict[str, torch.Tensor], list[int], np.ndarray, float]:
    """The performance's Gaussians: at each instant, up to ``config.dynamic_per_instant`` points of its visual hull
    (the voxels every camera that sees them films as moving), carved in the box the set's points ``set_xyz`` span.

    Returns the params, how many start at each instant, the hulls' box [[min], [max]] and the voxel size.
    """
    region, voxel = _hull_region(footage, masks, set_xyz, config, set_depths)
    rng = np.random.default_rng(config.seed)
    spacing = float(footage.times[1] - footage.times[0]) if len(footage.times) > 1 else 1.0
    parts, counts = [], []
    for t in range(len(footage.times)):
        points, colors = _instant_hull(footage, masks, t, region, config, set_depths)
        if len(points) > config.dynamic_per_instant:
            pick = rng.choice(len(points), config.dynamic_per_instant, replace=False)
            points, colors = points[pick], colors[pick]
        counts.append(len(points))
        if len(points):
            n = len(points)
            parts.append(make_params(torch.as_tensor(points, dtype=torch.float32),
                                     torch.as_tensor(colors, dtype=torch.float32),
                                     torch.full((n,), voxel * 0.7), config.sh_degree,
                                     times=torch.full((n,), float(footage.times[t])),
                                     time_scale=config.time_scale_frames * spacing, opacity=config.dynamic_opacity))
    if not parts:
        parts.append(make_params(torch.zeros((0, 3)), torch.zeros((0, 3)), torch.zeros((0,)), config.sh_degree,
                                 times=torch.zeros((0,)), time_scale=config.time_scale_frames * spacing,
                                 opacity=config.dynamic_opacity))
    return concat_params(*parts), counts, region, float(voxel)


def on_performance(footage: ShotFootage, masks: np.ndarray, points: np.ndarray,
                   config: InitConfig = InitConfig()) -> np.ndarray:
    """Which ``points`` [P, 3] lie in the performance at some instant (in the motion masks ``masks`` [C, T, H, W]
    of every camera, at least ``config.hull_min_cameras``, that sees them then): register's points of what moved
    (``--dynamic instants``), which are no part of the set.  # [P] bool"""
    if not len(points) or not masks.any():
        return np.zeros(len(points), bool)
    return _carve(footage, masks, list(range(len(footage.times))), np.asarray(points, float), config.hull_min_cameras)


def set_views(footage: ShotFootage, motion: np.ndarray, stills: SetStills | None = None,
               max_moving_share: float = 0.3) -> list[DenseView]:
    """The set as registered views for dense stereo: each locked-off set camera's clean plate (per-pixel median of
    its frames), its pixels usable where the performance covered them in at most ``max_moving_share`` of the
    frames, and every set still (all pixels). Moving cameras give their first frame's static pixels."""
    views = []
    for c, camera_id in enumerate(footage.camera_ids):
        frames = np.flatnonzero(footage.valid[c])
        if len(frames) == 0:
            continue
        width, height = (int(v) for v in footage.cameras.image_size[c])
        posed = footage.world_to_camera[c, frames]
        if np.allclose(posed, posed[:1], atol=1e-9):
            plate = np.median(footage.images[c, frames, :height, :width], axis=0).astype(np.uint8)
            usable = motion[c, frames, :height, :width].mean(axis=0) <= max_moving_share
        else:
            plate, usable = footage.images[c, frames[0], :height, :width], ~motion[c, frames[0], :height, :width]
        if footage.masks is not None:
            usable &= footage.masks[c, frames].all(axis=0)[:height, :width]
        views.append(DenseView(camera_id, plate, footage.cameras.K[c], posed[0], usable))
    if stills is not None:
        views += [DenseView(camera_id, image, stills.cameras.K[s], stills.cameras.world_to_camera[s])
                  for s, (camera_id, image) in enumerate(zip(stills.cameras.camera_ids, stills.images))]
    return views


def plate_points(footage: ShotFootage, masks: np.ndarray, set_points: np.ndarray,
                 stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on each camera's clean plate: every ``stride``-th static pixel, at the depth interpolated
    (linearly, between the SfM points that project into that camera) there.  # [P, 3], [P, 3] in [0, 1]"""
    interpolate = require("scipy.interpolate", "pip install scipy")
    out_xyz, out_rgb = [], []
    for c in range(len(footage.camera_ids)):
        frames = np.flatnonzero(footage.valid[c])
        if len(frames) == 0:
            continue
        t = frames[0]
        pixels, inside = _project(footage, c, t, set_points)
        pose = footage.world_to_camera[c, t]
        depth = (set_points @ pose[:3, :3].T + pose[:3, 3])[:, 2]
        if inside.sum() < 8:
            continue
        uv = pixels[inside] + 0.5
        width, height = (int(v) for v in footage.cameras.image_size[c])
        grid_u, grid_v = np.meshgrid(np.arange(stride // 2, width, stride) + 0.5,
                                     np.arange(stride // 2, height, stride) + 0.5)
        z = interpolate.griddata(uv, depth[inside], (grid_u, grid_v), method="linear")
        keep = np.isfinite(z) & (z > 0) & _smooth_depth(uv, depth[inside], grid_u, grid_v)
        static = ~masks[c, frames].any(axis=0)[grid_v.astype(int), grid_u.astype(int)]
        keep &= static
        u, v, z = grid_u[keep], grid_v[keep], z[keep]
        K = footage.cameras.K[c]
        cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
        world = (cam - pose[:3, 3]) @ pose[:3, :3]  # R^T (x - t)
        plate = np.median(footage.images[c, frames], axis=0)
        out_xyz.append(world)
        out_rgb.append(plate[v.astype(int), u.astype(int)] / 255.0)
    if not out_xyz:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return np.concatenate(out_xyz), np.concatenate(out_rgb)


def _smooth_depth(uv: np.ndarray, depth: np.ndarray, grid_u: np.ndarray, grid_v: np.ndarray,
                  max_ratio: float = 1.15) -> np.ndarray:
    """Where the interpolation is between SfM points at similar depths (one surface, not across an edge)."""
    spatial = require("scipy.spatial", "pip install scipy")
    mesh = spatial.Delaunay(uv)
    simplex = mesh.find_simplex(np.stack([grid_u.ravel(), grid_v.ravel()], axis=1))
    corners = depth[mesh.simplices]  # [S, 3]
    ratio = corners.max(axis=1) / np.maximum(corners.min(axis=1), 1e-9)
    return ((simplex >= 0) & (ratio[simplex] <= max_ratio)).reshape(grid_u.shape)


def motion_masks(footage: ShotFootage, threshold: int) -> np.ndarray:
    """Per camera and instant, the pixels that differ from the camera's clean plate.  # [C, T, H, W] bool

    The plate is the per-pixel median of the camera's frames; cameras whose pose changes over the shot
    (moving cameras) get no motion mask (all False): there is no plate to compare with.
    """
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    C, T, H, W, _ = footage.images.shape
    masks = np.zeros((C, T, H, W), bool)
    kernel = np.ones((3, 3), np.uint8)
    for c in range(C):
        frames = footage.images[c][footage.valid[c]]
        posed = footage.world_to_camera[c][footage.valid[c]]
        locked = len(posed) > 0 and np.allclose(posed, posed[:1], atol=1e-9)
        if len(frames) < 3 or not locked:
            continue
        plate = np.median(frames, axis=0).astype(np.int16)
        for t in np.flatnonzero(footage.valid[c]):
            moved = (np.abs(footage.images[c, t].astype(np.int16) - plate).max(axis=2) > threshold).astype(np.uint8)
            masks[c, t] = cv2.morphologyEx(moved, cv2.MORPH_OPEN, kernel).astype(bool)  # drop single-pixel noise
    return masks


def performance_masks(motion: np.ndarray, grow_px: int = 2) -> np.ndarray:
    """Motion masks grown by ``grow_px`` pixels, so the blurred edges of the actor and its shadow count as the
    performance, not the set.  # [C, T, H, W] bool"""
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    if grow_px <= 0:
        return motion.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
    grown = np.zeros_like(motion)
    for c, t in zip(*np.nonzero(motion.any(axis=(2, 3)))):
        grown[c, t] = cv2.dilate(motion[c, t].astype(np.uint8), kernel).astype(bool)
    return grown


def _project(footage: ShotFootage, c: int, t: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel indices (col, row) and an in-view flag of ``points`` [P, 3] in camera c at instant t (pinhole)."""
    pose, K = footage.world_to_camera[c, t], footage.cameras.K[c]
    cam = points @ pose[:3, :3].T + pose[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * cam[:, 0] / z + K[0, 2]
        v = K[1, 1] * cam[:, 1] / z + K[1, 2]
    width, height = footage.cameras.image_size[c]
    inside = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    cols = np.clip(np.nan_to_num(u), 0, width - 1).astype(np.int64)
    rows = np.clip(np.nan_to_num(v), 0, height - 1).astype(np.int64)
    return np.stack([cols, rows], axis=1), inside


def _carve(footage: ShotFootage, masks: np.ndarray, instants: list[int], points: np.ndarray,
           min_cameras: int, set_depths: list[np.ndarray] | None = None) -> np.ndarray:
    """Which points lie in the moving region of every camera that sees them (at any of ``instants``).

    ``set_depths``: per camera, the set's depth (0: unknown); a point behind the set there is hidden from that
    camera (an actor behind a prop), so the camera neither sees nor carves it.
    """
    keep = np.zeros(len(points), bool)
    for t in instants:
        seen = np.zeros(len(points), np.int64)
        inside_all = np.ones(len(points), bool)
        for c in range(len(footage.camera_ids)):
            if not footage.valid[c, t] or not masks[c].any():
                continue
            pixels, inside = _project(footage, c, t, points)
            if set_depths is not None:
                pose = footage.world_to_camera[c, t]
                z = points @ pose[:3, 2] + pose[2, 3]
                surface = set_depths[c][np.minimum(pixels[:, 1], set_depths[c].shape[0] - 1),
                                        np.minimum(pixels[:, 0], set_depths[c].shape[1] - 1)]
                inside &= (surface <= 0) | (z <= surface * 1.05)
            seen += inside
            inside_all &= ~inside | masks[c, t][pixels[:, 1], pixels[:, 0]]
        keep |= inside_all & (seen >= min_cameras)
    return keep


def _hull_region(footage: ShotFootage, masks: np.ndarray, set_points: np.ndarray,
                 config: InitConfig, set_depths: list[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """The box holding every instant's hull (carved on a coarse grid over the set), and the fine voxel size."""
    low, high = _set_box(footage, set_points)
    grid = _grid(low, high, config.hull_voxels // 2)
    occupied = grid[_carve(footage, masks, list(range(len(footage.times))), grid, config.hull_min_cameras,
                           set_depths)]
    if len(occupied) == 0:
        return np.stack([low, low]), float((high - low).max() / config.hull_voxels)
    step = (high - low).max() / (config.hull_voxels // 2)
    region = np.stack([occupied.min(axis=0) - step, occupied.max(axis=0) + step])
    return region, float((region[1] - region[0]).max() / config.hull_voxels)


def _set_box(footage: ShotFootage, set_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box the set's points span (1st to 99th percentile); with too few points (a calibrated rig that
    triangulated almost nothing), the box of the set cameras' centres, which stand around the action."""
    if len(set_points) >= 20:
        low, high = np.percentile(set_points, 1, axis=0), np.percentile(set_points, 99, axis=0)
        if (high - low).max() > 0:
            return low, high
    poses = footage.world_to_camera[footage.valid]
    centres = np.einsum("nji,nj->ni", poses[:, :3, :3], -poses[:, :3, 3])  # R^T (-t)
    low, high = centres.min(axis=0), centres.max(axis=0)
    pad = max(1e-3, 0.05 * float((high - low).max()))
    return low - pad, high + pad


def _grid(low: np.ndarray, high: np.ndarray, n: int) -> np.ndarray:
    step = (high - low).max() / max(1, n)
    axes = [np.arange(lo + step / 2, hi, step) for lo, hi in zip(low, high)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _instant_hull(footage: ShotFootage, masks: np.ndarray, t: int, region: np.ndarray,
                  config: InitConfig, set_depths: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Instant t's hull points (jittered inside their voxels) and their mean colour in the cameras [0, 1]."""
    if not (region[1] > region[0]).all():
        return np.zeros((0, 3)), np.zeros((0, 3))
    step = (region[1] - region[0]).max() / config.hull_voxels
    points = _grid(region[0], region[1], config.hull_voxels)
    points = points[_carve(footage, masks, [t], points, config.hull_min_cameras, set_depths)]
    rng = np.random.default_rng(config.seed + t)
    points = points + rng.uniform(-step / 2, step / 2, points.shape)
    colors, count = np.zeros((len(points), 3)), np.zeros((len(points), 1))
    for c in range(len(footage.camera_ids)):
        if footage.valid[c, t]:
            pixels, inside = _project(footage, c, t, points)
            colors[inside] += footage.images[c, t][pixels[inside, 1], pixels[inside, 0]] / 255.0
            count[inside] += 1
    return points, colors / np.maximum(count, 1)


def surfel_params(xyz: np.ndarray, rgb: np.ndarray, sh_degree: int, opacity: float, width: float, flatness: float,
                  neighbours: int = 8) -> dict[str, torch.Tensor]:
    """Static Gaussians on dense surface points, as flat discs in the surface their ``neighbours`` nearest points
    span: ``width`` x the points' spacing wide, ``flatness`` of that thick. ``xyz`` [P, 3]; ``rgb`` [P, 3] in
    [0, 1]."""
    spatial = require("scipy.spatial", "pip install scipy")
    rotation = require("scipy.spatial.transform", "pip install scipy").Rotation
    xyz_t = torch.as_tensor(xyz, dtype=torch.float32)
    spacing = _neighbour_scale(xyz_t)
    spacing = spacing.clamp_max(torch.quantile(spacing, 0.95))
    params = make_params(xyz_t, torch.as_tensor(rgb, dtype=torch.float32), width * spacing, sh_degree, opacity=opacity)
    if len(xyz) <= neighbours:
        return params
    _, index = spatial.cKDTree(xyz).query(xyz, k=neighbours + 1)
    local = xyz[index] - xyz[index].mean(axis=1, keepdims=True)  # [P, k+1, 3]
    _, axes = np.linalg.eigh(np.einsum("pki,pkj->pij", local, local))  # columns by increasing spread
    frame = axes[:, :, ::-1].copy()  # widest, middle, normal
    frame[np.linalg.det(frame) < 0, :, 2] *= -1  # a proper rotation
    xyzw = rotation.from_matrix(frame).as_quat()
    params["quats"] = torch.as_tensor(xyzw[:, [3, 0, 1, 2]], dtype=torch.float32)  # wxyz
    params["scales"][:, 2] += float(np.log(flatness))
    return params


def _neighbour_scale(xyz: torch.Tensor) -> torch.Tensor:
    """Each point's mean distance to its 3 nearest neighbours (3DGS's initial scale).  # [N]"""
    scipy_spatial = require("scipy.spatial", "pip install scipy")
    if len(xyz) < 4:
        return torch.full((len(xyz),), 0.01)
    distances, _ = scipy_spatial.cKDTree(xyz.numpy()).query(xyz.numpy(), k=4)
    return torch.as_tensor(distances[:, 1:].mean(axis=1), dtype=torch.float32).clamp_min(1e-4)
