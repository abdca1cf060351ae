"""Dense geometry of the (static) set before training: plane-sweep stereo, consistency fusion and a plane prior.

The static Gaussians would otherwise start on the few thousand sparse SfM points, and a view the cameras
never filmed (an overhead one) then shows the floaters between them. This module turns registered,
undistorted views of the set into a dense coloured point set:

1. **Plane-sweep stereo** per reference view, at a working resolution: fronto-parallel planes sampled
   uniformly in inverse depth between bounds from the sparse points it sees (or the camera layout), its
   nearest neighbour views warped onto each plane with ``grid_sample``, a ZNCC cost over a small window
   (box filters), the mean of the best-k neighbours, winner-take-all with a sub-plane parabola fit and a
   uniqueness ratio.
2. **Consistency fusion**: a depth is kept where enough neighbour depth maps agree with it; kept pixels are
   back-projected with their colour, and all views are merged on a voxel grid to a target count.
3. **Plane prior**: large planes (floor, walls) are fitted with RANSAC to the fused and sparse points; each
   is sampled on a regular grid near its inliers (where stereo points are not already), kept where some view
   sees the point un-occluded (no stereo depth nearer) and no view's stereo sees through it, and where the
   views that see it agree on its colour; coloured by their median. This fills textureless floors and a rig
   of four cameras with no survey. Planes and voxel merging are numpy/scipy (no open3d needed).

Conventions: ``world_to_camera`` is OpenCV (x right, y down, z forward); pixels have a corner origin, so the
centre of pixel (col, row) is at (col + 0.5, row + 0.5), as in :func:`reshoot.splat.data._undistort_maps`.
Images are pinhole (undistort them first). Pure core: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from reshoot._deps import require
from reshoot.progress import track


@dataclass(frozen=True)
class DenseView:
    """One registered, undistorted (pinhole) view of the static set."""

    name: str
    image: np.ndarray  # [H, W, 3] uint8
    K: np.ndarray  # [3, 3] pinhole intrinsics, pixel-corner origin
    world_to_camera: np.ndarray  # [4, 4] OpenCV axes
    mask: np.ndarray | None = None  # [H, W] bool, True where the pixel shows the static set (None: all)


@dataclass(frozen=True)
class DenseConfig:
    """How the dense set is built (see the module docstring for the steps)."""

    max_side_px: int = 240
    """Working resolution: each view is shrunk so its longer side is at most this many pixels."""
    neighbours: int = 4
    """Source views warped onto each reference view (chosen by shared coverage and triangulation angle)."""
    depth_planes: int = 96
    """Planes swept per family and reference view (uniform in inverse depth for fronto-parallel ones)."""
    sweep_planes: int = 0
    """Besides fronto-parallel planes, also sweep planes parallel to this many dominant planes of the sparse
    points (the floor, a wall) that the view sees most, so a window on a slanted floor warps correctly.
    Each family costs one more sweep; on the sample's four-camera rig 2 was no better than 0."""
    min_sparse_points: int = 20
    """Fewer sparse points than this in a view: its depth range comes from the camera layout instead."""
    window_px: int = 5
    """Side of the square ZNCC window (odd), at the working resolution."""
    best_k: int = 2
    """The plane cost of a pixel is the mean of its best ``best_k`` neighbour costs (robust to occlusion)."""
    cost_smoothing_px: int = 0
    """Box-filter the aggregated cost volume over this many pixels (odd; 0 or 1: none)."""
    min_texture: float = 0.01
    """Reference pixels whose window's grey-level standard deviation (0-1) is below this get no depth."""
    max_cost: float = 0.5
    """Keep a winner only if its cost (1 - ZNCC) is at most this."""
    max_cost_ratio: float = 0.95
    """Keep a winner only if its cost is at most this fraction of the best cost away from it (uniqueness)."""
    consistency_rel: float = 0.015
    """Two views agree on a point when their depths differ by less than this fraction."""
    min_consistent_views: int = 2
    """Keep a pixel's depth only if at least this many neighbour depth maps agree with it."""
    target_points: int = 150_000
    """The fused stereo points are merged on a voxel grid to about this many."""
    planes: int = 6
    """Fit at most this many planes (0: no plane prior)."""
    plane_distance_frac: float = 0.01
    """RANSAC inlier distance, as a fraction of the scene scale (median stereo depth)."""
    plane_min_fraction: float = 0.05
    """A plane is kept only if it holds at least this fraction of the points (and 100 points)."""
    plane_spacing_frac: float = 0.008
    """Spacing of a plane's grid points, as a fraction of the scene scale."""
    plane_fill_frac: float = 0.2
    """The region sampled on a plane: the places within this fraction of the scene scale (or four inlier
    spacings, if more) of one of its inliers; it bridges gaps that wide in the stereo points."""
    plane_occlusion_rel: float = 0.03
    """A plane point is hidden in a view whose stereo depth there is this fraction nearer than the point;
    it is empty space if some view's stereo depth there is this fraction beyond it."""
    plane_min_views: int = 1
    """A plane point is kept only if at least this many views see it un-occluded (and, seen by two or more,
    they agree on its colour)."""
    plane_max_colour_spread: float = 0.08
    """...and the median absolute deviation of their colours (0-1, mean over channels) is at most this: views
    that disagree see something else there (an occluder stereo missed, or a plane that is not there)."""
    plane_min_agreement: float = 0.5
    """A plane is dropped whole if fewer than this fraction of its grid points seen by two or more views pass
    the colour test (a RANSAC plane through unrelated points)."""
    plane_min_zncc: float = 0.2
    """A fitted plane (and the swept floor) is kept only if the views' pictures of it line up: mean ZNCC of textured
    windows at least this (:func:`_agreeing_planes`)..."""
    plane_min_windows: int = 50
    """... when at least this many textured windows tell (a plane too uniform to tell is kept)."""
    ground: bool = True
    """When no fitted plane is a floor under a level rig, sweep a horizontal plane below the cameras and add the
    height where the views agree best on its colours (:func:`_ground_plane`): four low cameras far apart find
    almost no stereo on a floor they see at a grazing angle, and the planes fitted are then the walls."""
    floor_fill: bool = True
    """Fill the floor inside the cameras' ring where no view's picture reaches (low cameras see the floor only far
    off) with the colour of the floor they do see, as the steepest views see it (:func:`_unseen_floor`)."""
    ground_heights: int = 64
    """Heights the floor sweep tries."""
    level_rig_deg: float = 20.0
    """The rig is level (and the floor search runs) when the views' down directions are within this of their mean
    (all but a third of them: handheld stills tilt)."""
    backdrop: bool = True
    """Where neither stereo nor a plane explains a view's pixel of the set, start a point where the pixel's ray
    leaves the set (:func:`_backdrop`): a set camera stands at the set's edge, so what it sees beyond the action is
    at least as far as the rig's far side. Otherwise the training grows that wall wherever it fits the one view
    that sees it, in the middle of the set, and a camera above sees it as fog."""
    backdrop_margin: float = 1.1
    """The backdrop is the sphere round the views' centroid this many times as wide as the farthest view."""
    backdrop_stride: int = 2
    """One backdrop point per this many working pixels (each way)."""
    backdrop_hole_px: int = 9
    """A view's pixels within half this (working pixels) of one that stereo or a plane explains are a hole in that
    surface, not backdrop."""
    backdrop_points: int = 40_000
    """At most this many backdrop points (merged on a voxel grid)."""
    ransac_iterations: int = 400
    seed: int = 0


@dataclass(frozen=True)
class DenseSet:
    """The dense point set the static Gaussians can start on."""

    xyz: np.ndarray  # [P, 3] world
    rgb: np.ndarray  # [P, 3] float in [0, 1]
    source: np.ndarray  # [P] int8: 0 stereo, 1 plane, 2 backdrop
    depths: dict[str, np.ndarray]  # view name -> [h, w] filtered depth map at the working resolution (0: none)
    report: dict  # counts, planes found (normal, offset, inliers), seconds per step


@dataclass(frozen=True)
class _View:
    """A view at the working resolution."""

    name: str
    gray: torch.Tensor  # [h, w] float32 in [0, 1]
    rgb: np.ndarray  # [h, w, 3] float32 in [0, 1]
    K: np.ndarray  # [3, 3] scaled to the working resolution
    pose: np.ndarray  # [4, 4] world_to_camera
    usable: np.ndarray  # [h, w] bool

    @property
    def centre(self) -> np.ndarray:  # [3]
        return -self.pose[:3, :3].T @ self.pose[:3, 3]


Progress = Callable[[Iterable, str], Iterable]


def dense_set_points(views: list[DenseView], sparse_xyz: np.ndarray, config: DenseConfig = DenseConfig(),
                     progress: Progress | None = None) -> DenseSet:
    """Dense, coloured points of the static set seen by ``views`` (see the module docstring).

    Args:
        views: two or more registered pinhole views of the static set (undistorted images).
        sparse_xyz: the sparse SfM points, world coordinates (may be empty).  # [N, 3]
        config: stereo, fusion and plane-prior settings.
        progress: wraps long loops, ``progress(items, description)``; default :func:`reshoot.progress.track`.
    Returns:
        a :class:`DenseSet`: stereo points (source 0), plane points (source 1), then backdrop points (source 2).
    """
    sparse_xyz = _check_inputs(views, sparse_xyz, config)
    progress = progress or track
    seconds: dict[str, float] = {}
    # 1. working-resolution views, depth ranges and neighbours
    start = time.perf_counter()
    small = [_working_view(v, config.max_side_px) for v in views]
    ranges = [_depth_range(v, small, sparse_xyz, config.min_sparse_points) for v in small]
    neighbours = [_neighbours(i, small, sparse_xyz, ranges[i], config.neighbours) for i in range(len(small))]
    sparse_planes = []
    if config.sweep_planes > 0 and len(sparse_xyz) >= 100:
        sparse_planes = _fit_planes(sparse_xyz, _scene_scale([], small, sparse_xyz), config)
    families = [_sweep_families(v, sparse_xyz, sparse_planes, r, config) for v, r in zip(small, ranges)]
    seconds["prepare"] = time.perf_counter() - start
    # 2. plane-sweep stereo per reference view
    start = time.perf_counter()
    raw = [_plane_sweep(small[i], [small[j] for j in neighbours[i]], families[i], config)
           for i in progress(range(len(small)), "dense stereo")]
    seconds["stereo"] = time.perf_counter() - start
    # 3. consistency filtering and fusion
    start = time.perf_counter()
    depths = [_consistent(i, small, raw, neighbours[i], config) for i in range(len(small))]
    stereo_xyz, stereo_rgb = _fuse(small, depths)
    voxel = 0.0
    if len(stereo_xyz) > config.target_points:
        stereo_xyz, stereo_rgb, voxel = _downsample_to(stereo_xyz, stereo_rgb, config.target_points)
    seconds["fusion"] = time.perf_counter() - start
    # 4. plane prior
    start = time.perf_counter()
    scale = _scene_scale(depths, small, sparse_xyz)
    planes, dropped, plane_xyz, plane_rgb = [], [], np.zeros((0, 3)), np.zeros((0, 3))
    if config.planes > 0:
        support = np.concatenate([stereo_xyz, sparse_xyz])
        planes = _fit_planes(support, scale, config)
        planes, dropped = _agreeing_planes(planes, small, config)
        ground = _ground_plane(planes, support, small, depths, scale, config) if config.ground else None
        if ground is not None:
            planes.append(ground)
        plane_xyz, plane_rgb = _sample_planes(planes, support, small, depths, stereo_xyz, scale, config, progress)
    seconds["planes"] = time.perf_counter() - start
    # 5. the backdrop: what no view's stereo or plane explains, where the ray leaves the set
    start = time.perf_counter()
    back_xyz, back_rgb = np.zeros((0, 3)), np.zeros((0, 3))
    if config.backdrop:
        back_xyz, back_rgb = _backdrop(small, depths, np.concatenate([stereo_xyz, plane_xyz]), planes, config)
    seconds["backdrop"] = time.perf_counter() - start
    report = {
        "views": len(views), "stereo_points": int(len(stereo_xyz)), "plane_points": int(len(plane_xyz)),
        "backdrop_points": int(len(back_xyz)), "voxel_size": voxel, "scene_scale": scale, "seconds": seconds,
        "planes": [{"normal": p["normal"].tolist(), "offset": p["offset"], "inliers": p["inliers"],
                    "points": p["points"], "agreement": p.get("agreement"), **({"swept": True} if p.get("swept") else {}),
                    **({"unseen_filled": p["unseen_filled"]} if "unseen_filled" in p else {})}
                   for p in planes],
        "planes_dropped": [{"normal": p["normal"].tolist(), "offset": p["offset"], "inliers": p["inliers"],
                            "agreement": p["agreement"]} for p in dropped],
        "per_view": [{"name": v.name, "size": [int(v.gray.shape[1]), int(v.gray.shape[0])],
                      "depth_range": [float(r[0]), float(r[1])], "neighbours": [small[j].name for j in nb],
                      "families": len(fam),
                      "raw_fraction": float((d > 0).mean()), "kept_fraction": float((k > 0).mean())}
                     for v, r, nb, fam, d, k in zip(small, ranges, neighbours, families, raw, depths)],
    }
    return DenseSet(np.concatenate([stereo_xyz, plane_xyz, back_xyz]).astype(np.float64),
                    np.concatenate([stereo_rgb, plane_rgb, back_rgb]).clip(0, 1).astype(np.float32),
                    np.concatenate([np.zeros(len(stereo_xyz), np.int8), np.ones(len(plane_xyz), np.int8),
                                    np.full(len(back_xyz), 2, np.int8)]),
                    {v.name: d for v, d in zip(small, depths)}, report)


# ---- inputs -----------------------------------------------------------------------------------------------


def _check_inputs(views: list[DenseView], sparse_xyz: np.ndarray, config: DenseConfig) -> np.ndarray:
    if len(views) < 2:
        raise ValueError(f"dense_set_points needs 2 or more views, got {len(views)}")
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise ValueError(f"view names must be unique; repeated: {sorted({n for n in names if names.count(n) > 1})}")
    for v in views:
        image = np.asarray(v.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"view {v.name!r}: image must be [H, W, 3] uint8, got {list(image.shape)} {image.dtype}")
        K, pose = np.asarray(v.K, float), np.asarray(v.world_to_camera, float)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"view {v.name!r}: K must be a finite [3, 3] pinhole matrix with positive focal "
                             f"lengths, got {K.tolist() if K.size < 20 else list(K.shape)}")
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise ValueError(f"view {v.name!r}: world_to_camera must be a finite [4, 4] matrix, got {list(pose.shape)}")
        R = pose[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
            raise ValueError(f"view {v.name!r}: world_to_camera's 3x3 part is not a rotation "
                             f"(det {np.linalg.det(R):.4g}); pass a rigid OpenCV world-to-camera pose")
        if v.mask is not None:
            mask = np.asarray(v.mask)
            if mask.shape != image.shape[:2] or mask.dtype != bool:
                raise ValueError(f"view {v.name!r}: mask must be [H, W] = {list(image.shape[:2])} bool, "
                                 f"got {list(mask.shape)} {mask.dtype}")
    if config.window_px % 2 == 0 or config.neighbours < 1 or config.depth_planes < 3:
        raise ValueError(f"DenseConfig: window_px must be odd ({config.window_px}), neighbours >= 1 "
                         f"({config.neighbours}), depth_planes >= 3 ({config.depth_planes})")
    sparse = np.asarray(sparse_xyz, dtype=np.float64)
    if sparse.size == 0:
        return np.zeros((0, 3))
    if sparse.ndim != 2 or sparse.shape[1] != 3:
        raise ValueError(f"sparse_xyz must be [N, 3], got {list(sparse.shape)}")
    return sparse[np.isfinite(sparse).all(axis=1)]


def _working_view(view: DenseView, max_side_px: int) -> _View:
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    H, W = view.image.shape[:2]
    s = min(1.0, max_side_px / max(H, W))
    w, h = max(1, int(round(W * s))), max(1, int(round(H * s)))
    rgb = view.image if (w, h) == (W, H) else cv2.resize(view.image, (w, h), interpolation=cv2.INTER_AREA)
    usable = np.ones((H, W), np.float32) if view.mask is None else view.mask.astype(np.float32)
    usable = cv2.resize(usable, (w, h), interpolation=cv2.INTER_AREA) > 0.999 if (w, h) != (W, H) else usable > 0.5
    K = np.diag([w / W, h / H, 1.0]) @ np.asarray(view.K, float)  # pixel-corner origin scales with the image
    rgb = rgb.astype(np.float32) / 255.0
    gray = torch.from_numpy(rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    return _View(view.name, gray, rgb, K, np.asarray(view.world_to_camera, float), usable)


def _to_camera(view: _View, xyz: np.ndarray) -> np.ndarray:  # [P, 3]
    return xyz @ view.pose[:3, :3].T + view.pose[:3, 3]


def _project(view: _View, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous pixel coordinates (corner origin) [P, 2], depth [P], inside-and-in-front flag [P]."""
    cam = _to_camera(view, xyz)
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam[:, :2] / z[:, None]) * np.diag(view.K)[:2] + view.K[:2, 2]
    h, w = view.usable.shape
    inside = (z > 1e-9) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    return np.nan_to_num(uv), z, inside


def _rays(view: _View) -> np.ndarray:
    """Each pixel centre's ray in camera coordinates, z = 1.  # [h, w, 3]"""
    h, w = view.usable.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    K = view.K
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)


def _backproject(view: _View, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points of the pixels with depth > 0, and their flat pixel indices."""
    idx = np.flatnonzero(depth.ravel() > 0)
    cam = _rays(view).reshape(-1, 3)[idx] * depth.ravel()[idx, None]
    return (cam - view.pose[:3, 3]) @ view.pose[:3, :3], idx


def _depth_range(view: _View, views: list[_View], sparse: np.ndarray, min_points: int) -> tuple[float, float]:
    """Near and far bounds: from the sparse points the view sees, else 0.3x-3x the distance to the others."""
    if len(sparse):
        uv, z, inside = _project(view, sparse)
        if inside.sum() >= min_points:
            near, far = np.percentile(z[inside], [2, 98])
            return float(near * 0.8), float(far * 1.25)
    others = [v.centre for v in views if v is not view]
    distance = float(np.linalg.norm(np.mean(others, axis=0) - view.centre))
    distance = distance if distance > 1e-9 else 1.0
    return 0.3 * distance, 3.0 * distance


def _neighbours(i: int, views: list[_View], sparse: np.ndarray, depth_range: tuple[float, float],
                count: int) -> list[int]:
    """The views that best see what view i sees: coverage of its points, weighted by triangulation angle."""
    ref = views[i]
    uv, z, inside = _project(ref, sparse) if len(sparse) else (None, None, np.zeros(0, bool))
    if inside.sum() >= 20:
        points = sparse[inside]
    else:  # points along a grid of its rays, at depths across its range
        rays = _rays(ref)[::max(1, ref.usable.shape[0] // 8), ::max(1, ref.usable.shape[1] // 8)].reshape(-1, 3)
        depths = 1.0 / np.linspace(1 / depth_range[0], 1 / depth_range[1], 6)
        cam = (rays[None] * depths[:, None, None]).reshape(-1, 3)
        points = (cam - ref.pose[:3, 3]) @ ref.pose[:3, :3]
    scores = []
    for j, other in enumerate(views):
        if j == i:
            scores.append(-1.0)
            continue
        _, _, seen = _project(other, points)
        a, b = points - ref.centre, points - other.centre
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        weight = np.clip(angle / 5.0, 0, 1) * np.clip((60.0 - angle) / 30.0, 0, 1)  # 5-30 deg best
        scores.append(float((seen * weight).sum()))
    order = np.argsort(scores)[::-1]
    return [int(j) for j in order[:count] if scores[j] > 0] or [int(order[0])]


# ---- stereo -----------------------------------------------------------------------------------------------


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size x size window (borders: mean of the part inside).  # same shape [N, C, h, w]"""
    return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)


def _sweep_families(ref: _View, sparse: np.ndarray, planes: list[dict], depth_range: tuple[float, float],
                    config: DenseConfig) -> list[tuple[np.ndarray, torch.Tensor]]:
    """Plane families swept in view ``ref``: fronto-parallel, then the dominant planes it sees most.

    A family is a camera-frame normal ``n`` and values ``q`` (uniform): the hypothesis q puts the pixel with ray
    r (z = 1) at inverse depth ``q * (n . r)``, i.e. on the plane ``n . X = 1 / q``. Fronto-parallel: n = (0, 0, 1).
    """
    D = config.depth_planes
    families = [(np.array([0.0, 0.0, 1.0]), torch.linspace(1 / depth_range[0], 1 / depth_range[1], D,
                                                           dtype=torch.float64))]
    R, t = ref.pose[:3, :3], ref.pose[:3, 3]
    seen = sparse[_project(ref, sparse)[2]] if len(sparse) else sparse
    ranked = sorted(planes, key=lambda p: -_project(ref, p["members"])[2].sum())
    for plane in ranked[:config.sweep_planes]:
        if _project(ref, plane["members"])[2].sum() < config.min_sparse_points:
            break
        normal = R @ plane["normal"]
        d = plane["offset"] - plane["normal"] @ R.T @ t  # the plane in camera coordinates: normal . X + d = 0
        if abs(d) < 1e-9 or len(seen) < config.min_sparse_points:
            continue
        n = -normal / d  # n . X = 1 on the plane itself; n . r > 0 where it is ahead
        value = (seen @ R.T + t) @ n  # each sparse point's parallel plane is n . X = value
        value = value[value > 1e-9]
        if len(value) < config.min_sparse_points:
            continue
        low, high = np.percentile(1 / value, [2, 98])
        families.append((n, torch.linspace(low * 0.8, high * 1.25, D, dtype=torch.float64)))
    return families


def _plane_sweep(ref: _View, sources: list[_View], families: list[tuple[np.ndarray, torch.Tensor]],
                 config: DenseConfig) -> np.ndarray:
    """Winner-take-all depth of each reference pixel over every family's planes (0: none).  # [h, w]"""
    h, w = ref.usable.shape
    size = config.window_px
    I = ref.gray[None, None]
    mean_i = _box(I, size)
    var_i = (_box(I * I, size) - mean_i**2).clamp_min(0)
    rays = torch.from_numpy(_rays(ref).reshape(-1, 3))
    warps = []
    for src in sources:
        R = src.pose[:3, :3] @ ref.pose[:3, :3].T
        t = src.pose[:3, 3] - R @ ref.pose[:3, 3]
        image = torch.stack([src.gray, torch.from_numpy(src.usable.astype(np.float32))])[None]
        # a pixel at depth z lands at z * A + b (homogeneous) in the source
        warps.append((rays @ torch.from_numpy(src.K @ R).T, torch.from_numpy(src.K @ t), image))
    best_depth = torch.zeros(h, w, dtype=torch.float64)
    best_cost = torch.full((h, w), float("inf"))
    for normal, q in families:
        g = rays @ torch.from_numpy(normal)  # [hw]
        agg = torch.empty(len(q), h, w)
        for chunk in torch.split(torch.arange(len(q)), 16):
            depth = 1 / (q[chunk, None] * g[None]).clamp_min(1e-12)  # [d, hw]
            depth = torch.where(g[None] > 1e-6, depth, torch.full_like(depth, -1.0))
            costs = []
            for A, b, image in warps:
                hom = depth[..., None] * A[None] + b  # [d, hw, 3]
                z = hom[..., 2]
                uv = hom[..., :2] / z.clamp_min(1e-12)[..., None]
                hs, ws = image.shape[-2:]
                grid = torch.stack([2 * uv[..., 0] / ws - 1, 2 * uv[..., 1] / hs - 1], -1).float().view(-1, h, w, 2)
                grid = torch.where(((z > 0) & (depth > 0)).view(-1, h, w, 1), grid, torch.full_like(grid, -4.0))
                warped = F.grid_sample(image.expand(len(chunk), -1, -1, -1), grid, align_corners=False)
                J, valid = warped[:, :1], warped[:, 1:]
                mean_j = _box(J, size)
                var_j = (_box(J * J, size) - mean_j**2).clamp_min(0)
                cost = 1 - (_box(I * J, size) - mean_i * mean_j) / torch.sqrt(var_i * var_j + 1e-8)
                ok = (_box(valid, size) > 0.99) & (var_j > config.min_texture**2 / 4)
                costs.append(torch.where(ok, cost, torch.tensor(float("inf")))[:, 0])
            agg[chunk] = _best_k(torch.stack(costs), config.best_k)
        if config.cost_smoothing_px > 1:
            finite = torch.isfinite(agg)
            filled = torch.where(finite, agg, torch.full_like(agg, 2.0))[:, None]
            agg = torch.where(finite, _box(filled, config.cost_smoothing_px)[:, 0], agg)
        inverse, cost, unique = _winner(agg, q, config.max_cost_ratio)
        better = unique & (cost < best_cost)
        best_cost = torch.where(better, cost, best_cost)
        best_depth = torch.where(better, 1 / (inverse * g.view(h, w)).clamp_min(1e-12), best_depth)
    keep = ((best_cost <= config.max_cost) & (var_i[0, 0] > config.min_texture**2) & torch.from_numpy(ref.usable))
    return torch.where(keep, best_depth, torch.zeros((), dtype=torch.float64)).numpy()


def _best_k(costs: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each hypothesis' ``k`` lowest source costs (of those that see it; inf: none).  # [d, h, w]"""
    best = torch.sort(costs, dim=0).values[:min(k, len(costs))]
    seen = torch.isfinite(best)
    mean = torch.where(seen, best, torch.zeros(())).sum(0) / seen.sum(0).clamp_min(1)
    return torch.where(seen.any(0), mean, torch.tensor(float("inf")))


def _winner(agg: torch.Tensor, q: torch.Tensor, max_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Winner-take-all over one family's planes, refined by a parabola fit: its value of q, its cost, and
    whether it is unique (cost at most ``max_ratio`` of the best plane more than two planes away)."""
    D = agg.shape[0]
    cost, idx = agg.min(0)
    far_from_best = (torch.arange(D)[:, None, None] - idx[None]).abs() > 2
    second = torch.where(far_from_best, agg, torch.tensor(float("inf"))).min(0).values
    left = agg.gather(0, (idx - 1).clamp(0, D - 1)[None])[0]
    right = agg.gather(0, (idx + 1).clamp(0, D - 1)[None])[0]
    curvature = left + right - 2 * cost
    offset = torch.where((curvature > 1e-9) & torch.isfinite(curvature), 0.5 * (left - right) / curvature,
                         torch.zeros(()))
    offset = offset.clamp(-0.5, 0.5)
    value = q[0] + (idx.double() + offset.double()) * (q[-1] - q[0]) / (D - 1)
    unique = torch.isfinite(cost) & (idx > 0) & (idx < D - 1) & (cost <= max_ratio * second)
    return value, cost, unique


# ---- fusion -----------------------------------------------------------------------------------------------


def _consistent(i: int, views: list[_View], depths: list[np.ndarray], neighbours: list[int],
                config: DenseConfig) -> np.ndarray:
    """View i's depth map, kept where at least ``min_consistent_views`` neighbour depth maps agree.  # [h, w]"""
    depth = depths[i]
    xyz, idx = _backproject(views[i], depth)
    agree = np.zeros(len(idx), np.int64)
    for j in neighbours:
        uv, z, inside = _project(views[j], xyz)
        other = depths[j]
        cols = np.clip(uv[:, 0].astype(np.int64), 0, other.shape[1] - 1)
        rows = np.clip(uv[:, 1].astype(np.int64), 0, other.shape[0] - 1)
        seen = other[rows, cols]
        agree += inside & (seen > 0) & (np.abs(seen - z) < config.consistency_rel * z)
    out = np.zeros_like(depth)
    need = min(config.min_consistent_views, len(neighbours))
    out.ravel()[idx[agree >= need]] = depth.ravel()[idx[agree >= need]]
    return out


def _fuse(views: list[_View], depths: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Back-projected points of every view's kept depths, with the view's colour.  # [P, 3], [P, 3]"""
    xyz, rgb = [np.zeros((0, 3))], [np.zeros((0, 3))]
    for view, depth in zip(views, depths):
        points, idx = _backproject(view, depth)
        xyz.append(points)
        rgb.append(view.rgb.reshape(-1, 3)[idx])
    return np.concatenate(xyz), np.concatenate(rgb)


def _voxel_merge(xyz: np.ndarray, rgb: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied voxel, at the mean position and colour of its points."""
    keys = np.floor((xyz - xyz.min(0)) / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    sums = np.zeros((len(counts), 6))
    np.add.at(sums, inverse, np.concatenate([xyz, rgb], axis=1))
    merged = sums / counts[:, None]
    return merged[:, :3], merged[:, 3:]


def _downsample_to(xyz: np.ndarray, rgb: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Voxel-merge to about ``target`` points (the voxel size found by a few surface-like updates)."""
    area = float(np.prod(np.sort(np.percentile(xyz, 95, 0) - np.percentile(xyz, 5, 0))[1:]))
    voxel = max(np.sqrt(max(area, 1e-12) / target), 1e-9)
    for _ in range(4):
        merged = _voxel_merge(xyz, rgb, voxel)
        ratio = len(merged[0]) / target
        if 0.85 <= ratio <= 1.0:
            break
        voxel *= np.sqrt(ratio) * (1.03 if ratio > 1 else 1.0)
    return merged[0], merged[1], float(voxel)


def _scene_scale(depths: list[np.ndarray], views: list[_View], sparse: np.ndarray) -> float:
    """A typical viewing distance: the median stereo depth (else the sparse points' median depth)."""
    values = np.concatenate([np.zeros(0)] + [d[d > 0] for d in depths])
    if len(values) >= 100:
        return float(np.median(values))
    if len(sparse):
        z = np.concatenate([_project(v, sparse)[1] for v in views])
        z = z[z > 0]
        if len(z):
            return float(np.median(z))
    centres = np.array([v.centre for v in views])
    return float(np.linalg.norm(centres - centres.mean(0), axis=1).mean() or 1.0)


# ---- plane prior ------------------------------------------------------------------------------------------


def _fit_planes(points: np.ndarray, scale: float, config: DenseConfig) -> list[dict]:
    """Large planes found one after the other by RANSAC on the points not yet explained, refined by SVD."""
    rng = np.random.default_rng(config.seed)
    threshold = config.plane_distance_frac * scale
    minimum = max(100, int(config.plane_min_fraction * len(points)))
    remaining, planes = points, []
    while len(planes) < config.planes and len(remaining) >= minimum:
        probe = remaining[rng.choice(len(remaining), min(len(remaining), 20_000), replace=False)]
        triples = probe[rng.integers(0, len(probe), (config.ransac_iterations, 3))]
        normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
        lengths = np.linalg.norm(normals, axis=1)
        normals, triples = normals[lengths > 1e-12] / lengths[lengths > 1e-12, None], triples[lengths > 1e-12]
        offsets = -(normals * triples[:, 0]).sum(1)
        support = (np.abs(probe @ normals.T + offsets) < threshold).sum(0)
        best = int(np.argmax(support))
        normal, offset = normals[best], offsets[best]
        for _ in range(2):  # refine on the inliers
            inliers = remaining[np.abs(remaining @ normal + offset) < threshold]
            centre = inliers.mean(0)
            normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
            offset = -float(normal @ centre)
        inlier = np.abs(remaining @ normal + offset) < threshold
        if inlier.sum() < minimum:
            break
        planes.append({"normal": normal, "offset": offset, "inliers": int(inlier.sum()), "members": remaining[inlier]})
        remaining = remaining[~inlier]
    return planes


def _agreeing_planes(planes: list[dict], views: list[_View], config: DenseConfig) -> tuple[list[dict], list[dict]]:
    """The fitted planes the views agree on, and those dropped: each plane, over the box its inliers span, is seen
    by every view as a picture (as :func:`_ground_plane` sweeps the floor); where the plane is a real surface the
    textured windows line up between views. RANSAC through points scattered over a large room (a few hundred over
    a dome's far walls) finds planes through the middle of it, which the views see through: their pictures do not
    line up (mean ZNCC under ``plane_min_zncc`` over at least ``plane_min_windows`` textured windows). A plane too
    uniform to tell keeps (its colours are still checked by :func:`_observe`)."""
    kept, dropped = [], []
    picked = [views[i] for i in np.unique(np.linspace(0, len(views) - 1, min(len(views), 8)).round().astype(int))]
    for plane in planes:
        normal = plane["normal"]
        e1 = np.cross(normal, [1.0, 0, 0] if abs(normal[0]) < 0.9 else [0, 1.0, 0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(normal, e1)
        flat = plane["members"] @ np.stack([e1, e2], 1)
        lo, hi = np.percentile(flat, 1, axis=0), np.percentile(flat, 99, axis=0)
        if not (hi - lo > 1e-9).all():
            kept.append(plane)
            continue
        step = float(np.sqrt(np.prod(hi - lo) / 90_000))
        a, b = np.meshgrid(np.arange(lo[0], hi[0], step), np.arange(lo[1], hi[1], step))
        xyz = -plane["offset"] * normal + a.reshape(-1, 1) * e1 + b.reshape(-1, 1) * e2
        plane["agreement"], windows = _sweep_agreement(xyz, a.shape, picked)
        tell = windows >= config.plane_min_windows
        (dropped if tell and plane["agreement"] < config.plane_min_zncc else kept).append(plane)
    return kept, dropped


def _ground_plane(planes: list[dict], support: np.ndarray, views: list[_View], depths: list[np.ndarray],
                  scale: float, config: DenseConfig) -> dict | None:
    """The floor under a level rig, when no fitted plane is one: a plane square to the rig's up direction
    (:func:`_rig_up`), swept from below the lowest set points up to the cameras. At each height the plane inside
    the cameras' ring is sampled on a grid and seen from every view as a picture of it; where the height is right
    the views' pictures line up, so the height whose pictures agree best (the mean ZNCC of textured 7-cell windows,
    over pairs of views) is the floor: a plane sweep for the one plane a set always has, with windows as large as
    the grid, where stereo's small windows on a uniform floor find nothing. None if the rig is not level, a fitted
    plane is the floor already, or no height lines the views up (mean ZNCC under 0.2). The plane's ``members``: its
    grid points inside the ring two views see, for :func:`_plane_grid`."""
    up = _rig_up(views, config.level_rig_deg)
    if up is None:
        return None
    centres = np.array([v.centre for v in views])
    top = float((centres @ up).min())  # the floor is below every camera
    for plane in planes:  # a fitted plane square to up, below every camera, is the floor already
        along = float(plane["normal"] @ up)
        if abs(along) > np.cos(np.radians(20)) and -plane["offset"] / along < top:
            return None
    spatial = require("scipy.spatial", "pip install scipy")
    e1 = np.cross(up, [1.0, 0, 0] if abs(up[0]) < 0.9 else [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    flat = centres @ np.stack([e1, e2], 1)
    lo, hi = flat.min(0), flat.max(0)
    if not (hi - lo > 1e-9).all():
        return None
    step = float(np.sqrt(np.prod(hi - lo) / 90_000))
    a, b = np.meshgrid(np.arange(lo[0], hi[0], step), np.arange(lo[1], hi[1], step))
    cells = np.stack([a.ravel(), b.ravel()], 1)
    ring = spatial.Delaunay(flat).find_simplex(cells) >= 0 if len(flat) >= 3 else np.ones(len(cells), bool)
    heights = support @ up if len(support) >= 20 else np.array([top - scale])
    low = min(float(np.percentile(heights, 0.5)), top) - 0.1 * scale
    picked = [views[i] for i in np.unique(np.linspace(0, len(views) - 1, min(len(views), 8)).round().astype(int))]
    tries = np.linspace(low, top, config.ground_heights)
    scores = np.array([_sweep_agreement(h * up + cells[:, :1] * e1 + cells[:, 1:] * e2, a.shape, picked)[0]
                       for h in tries])
    best = int(np.argmax(scores))
    if scores[best] < config.plane_min_zncc:
        return None
    top_lo = top_hi = best  # the peak is a plateau as wide as the views' pixels: take its middle
    while top_lo > 0 and scores[top_lo - 1] >= 0.85 * scores[best]:
        top_lo -= 1
    while top_hi < len(tries) - 1 and scores[top_hi + 1] >= 0.85 * scores[best]:
        top_hi += 1
    weights = scores[top_lo:top_hi + 1]
    height = float((tries[top_lo:top_hi + 1] * weights).sum() / weights.sum())
    xyz = height * up + cells[:, :1] * e1 + cells[:, 1:] * e2
    seen = sum(_project(v, xyz)[2].astype(int) for v in views) >= 2
    members = xyz[seen & ring]
    if len(members) < 3:
        return None
    return {"normal": up, "offset": -height, "inliers": 0, "members": members, "swept": True,
            "agreement": float(scores[best])}


def _sweep_agreement(xyz: np.ndarray, shape: tuple[int, int], views: list[_View], window: int = 7,
                     min_std: float = 0.02) -> tuple[float, int]:
    """How well ``views`` agree on a grid of plane points (``xyz`` [G, 3], a ``shape`` grid): the mean ZNCC over
    every pair of views and every ``window``-cell window both see whole and both find textured (0: none), and how
    many such windows there were."""
    maps = []
    for view in views:
        uv, _, inside = _project(view, xyz)
        cols = np.clip(uv[:, 0].astype(np.int64), 0, view.usable.shape[1] - 1)
        rows = np.clip(uv[:, 1].astype(np.int64), 0, view.usable.shape[0] - 1)
        seen = inside & view.usable[rows, cols]
        grey = view.gray.numpy()[rows, cols]
        maps.append((torch.as_tensor(np.where(seen, grey, 0).reshape(shape), dtype=torch.float32),
                     torch.as_tensor(seen.reshape(shape), dtype=torch.float32)))
    total, count = 0.0, 0
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            (x, vx_), (y, vy_) = maps[i], maps[j]
            both = vx_ * vy_
            if both.sum() < window * window:
                continue
            stack = torch.stack([both, x * both, y * both, x * x * both, y * y * both, x * y * both])[:, None]
            m, mx, my, xx, yy, xy = F.avg_pool2d(stack, window, 1)[:, 0]
            whole = m > 0.999
            var_x, var_y = (xx - mx * mx).clamp_min(0), (yy - my * my).clamp_min(0)
            textured = whole & (var_x.sqrt() > min_std) & (var_y.sqrt() > min_std)
            zncc = (xy - mx * my) / (var_x * var_y).clamp_min(1e-12).sqrt()
            total += float(zncc[textured].sum())
            count += int(textured.sum())
    return (total / count if count else 0.0), count

def _rig_up(views: list[_View], tolerance_deg: float) -> np.ndarray | None:
    """The world's up direction if the rig is level (cameras tilted up or down but not rolled: each image's
    right direction horizontal), else None. Up is the direction square to the views' right directions (with
    three or more looking different ways), else their mean image-up; it must be within ``tolerance_deg`` of
    square to the right directions of two thirds of the views."""
    rights = np.array([v.pose[0, :3] for v in views])
    downs = np.array([v.pose[1, :3] for v in views])
    if len(views) < 2:
        return None
    _, singular, vt = np.linalg.svd(rights)
    up = vt[-1] if len(views) >= 3 and singular[1] > 0.3 * singular[0] else -downs.mean(0)
    up = up / max(np.linalg.norm(up), 1e-12)
    if up @ -downs.mean(0) < 0:
        up = -up
    level = np.abs(rights @ up) < np.sin(np.radians(tolerance_deg))
    return up if level.mean() >= 2 / 3 and up @ -downs.mean(0) > 0 else None


def _sample_planes(planes: list[dict], support: np.ndarray, views: list[_View], depths: list[np.ndarray],
                   stereo_xyz: np.ndarray, scale: float, config: DenseConfig,
                   progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Grid points over each plane's seen region, coloured by the views that see them un-occluded."""
    spatial = require("scipy.spatial", "pip install scipy")
    spacing = config.plane_spacing_frac * scale
    tree = spatial.cKDTree(stereo_xyz) if len(stereo_xyz) else None
    out_xyz, out_rgb = [np.zeros((0, 3))], [np.zeros((0, 3))]
    for plane in progress(planes, "plane prior"):
        grid = _plane_grid(plane, spacing, config.plane_fill_frac * scale)
        if tree is not None and len(grid):  # fill only where stereo is thin
            near, _ = tree.query(grid, distance_upper_bound=spacing)
            grid = grid[~np.isfinite(near)]
        xyz, rgb, seen_by = _observe(grid, views, depths, config)
        if config.floor_fill and _is_floor(plane, views, config):
            fill_xyz, fill_rgb = _unseen_floor(plane, xyz, seen_by, views, depths, spacing, config.backdrop_margin,
                                               config.plane_occlusion_rel)
            if tree is not None and len(fill_xyz):  # nor where stereo has the floor
                near, _ = tree.query(fill_xyz, distance_upper_bound=1.5 * spacing)
                fill_xyz, fill_rgb = fill_xyz[~np.isfinite(near)], fill_rgb[~np.isfinite(near)]
            for wall in planes:  # not beyond a wall every camera stands in front of
                side = np.array([v.centre for v in views]) @ wall["normal"] + wall["offset"]
                if wall is not plane and ((side > 0).all() or (side < 0).all()):
                    inside = (fill_xyz @ wall["normal"] + wall["offset"]) * np.sign(side[0]) > 0
                    fill_xyz, fill_rgb = fill_xyz[inside], fill_rgb[inside]
            plane["unseen_filled"] = int(len(fill_xyz))
            xyz, rgb = np.concatenate([xyz, fill_xyz]), np.concatenate([rgb, fill_rgb])
        plane["points"] = int(len(xyz))
        out_xyz.append(xyz)
        out_rgb.append(rgb)
    for plane in planes:
        plane.pop("members", None)
    return np.concatenate(out_xyz), np.concatenate(out_rgb)


def _is_floor(plane: dict, views: list[_View], config: DenseConfig) -> bool:
    """Whether ``plane`` is the floor under a level rig: square to its up direction (within 20 degrees), below every
    view."""
    up = _rig_up(views, config.level_rig_deg)
    if up is None:
        return False
    along = float(plane["normal"] @ up)
    top = min(float(v.centre @ up) for v in views)
    return abs(along) > np.cos(np.radians(20)) and -plane["offset"] / along < top


def _unseen_floor(plane: dict, seen_xyz: np.ndarray, seen_by: np.ndarray, views: list[_View],
                  depths: list[np.ndarray], spacing: float, margin: float,
                  tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid points on the floor inside the views' ring (the disc round their centres seen from above, ``margin``
    times as wide as the farthest, as :func:`_backdrop`'s sphere) that no view's picture holds at all, coloured as
    the floor the views see most steeply (:func:`_steepest_colour`; ``seen_by``: each view's colour of the seen
    floor points ``seen_xyz``, NaN where it does not see one): cameras mounted low and level see the floor only far
    off, and the middle of the set, which a camera above sees most, would otherwise be empty (black). Nothing when
    fewer than 20 floor points were seen (no colour to give).
    (:func:`_sample_planes` then drops what lies beyond a wall every camera stands in front of.)"""
    if len(seen_xyz) < 20:
        return np.zeros((0, 3)), np.zeros((0, 3))
    normal = plane["normal"]
    e1 = np.cross(normal, [1.0, 0, 0] if abs(normal[0]) < 0.9 else [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    origin = -plane["offset"] * normal
    flat = (np.array([v.centre for v in views]) - origin) @ np.stack([e1, e2], 1)
    middle = flat.mean(0)
    radius = margin * float(np.linalg.norm(flat - middle, axis=1).max())
    if len(flat) < 3 or radius <= 1e-9:
        return np.zeros((0, 3)), np.zeros((0, 3))
    spacing = max(spacing, float(np.sqrt(np.pi * radius * radius / 4e6)))  # a few million cells at most
    a, b = np.meshgrid(np.arange(-radius, radius, spacing), np.arange(-radius, radius, spacing))
    cells = middle + np.stack([a.ravel(), b.ravel()], 1)
    cells = cells[np.linalg.norm(cells - middle, axis=1) < radius]
    xyz = origin + cells[:, :1] * e1 + cells[:, 1:] * e2
    spatial = require("scipy.spatial", "pip install scipy")
    near, _ = spatial.cKDTree(seen_xyz).query(xyz, distance_upper_bound=1.5 * spacing)
    xyz = xyz[~np.isfinite(near)]  # where the views agree on the floor, their points are there already
    empty = np.zeros(len(xyz), bool)
    for view, depth in zip(views, depths):  # a view whose stereo saw beyond the floor there: no floor (a pit, a hole)
        uv, z, inside = _project(view, xyz)
        cols = np.clip(uv[:, 0].astype(np.int64), 0, depth.shape[1] - 1)
        rows = np.clip(uv[:, 1].astype(np.int64), 0, depth.shape[0] - 1)
        seen = depth[rows, cols]
        empty |= inside & (seen > 0) & (seen > z * (1 + tolerance))
    xyz = xyz[~empty]
    return xyz, np.repeat(_steepest_colour(plane["normal"], seen_xyz, seen_by, views)[None], len(xyz), axis=0)


def _steepest_colour(normal: np.ndarray, xyz: np.ndarray, seen_by: np.ndarray, views: list[_View],
                     share: float = 0.1, least: int = 20) -> np.ndarray:
    """The median colour of the steepest ``share`` (at least ``least``) of the views' observations of the floor
    points ``xyz`` (``seen_by`` [V, P, 3], NaN where view V does not see point P), steepness being the sine of the
    angle between the view's ray and the floor. A floor seen at a grazing angle shows the lights' sheen (lighter,
    and tinted by them; a glossy floor mirrors what stands on it): the steepest views are the nearest to what a camera
    above sees (on CMU Panoptic's dome, the four low cameras' floor is grey-brown just below them, pale far
    off).  # [3]"""
    sine = np.zeros(seen_by.shape[:2], np.float32)  # [V, P]
    for k, view in enumerate(views):
        to_view = view.centre - xyz  # [P, 3]
        sine[k] = np.abs(to_view @ normal) / np.maximum(np.linalg.norm(to_view, axis=-1), 1e-12)
    seen = np.isfinite(seen_by[..., 0])
    sine, colours = sine[seen], seen_by[seen]
    count = min(len(sine), max(least, int(np.ceil(share * len(sine)))))
    steepest = np.argsort(-sine)[:count]
    return np.median(colours[steepest], axis=0)


def _plane_grid(plane: dict, spacing: float, reach: float) -> np.ndarray:
    """A regular grid on the plane, over the places within ``reach`` (or four inlier spacings) of an inlier.

    Returns [G, 3] world points.
    """
    spatial = require("scipy.spatial", "pip install scipy")
    normal = plane["normal"]
    e1 = np.cross(normal, [1.0, 0, 0] if abs(normal[0]) < 0.9 else [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    origin = -plane["offset"] * normal
    flat = (plane["members"] - origin) @ np.stack([e1, e2], 1)  # [M, 2]
    tree = spatial.cKDTree(flat)
    reach = max(reach, 4 * float(np.median(tree.query(flat, k=2)[0][:, 1])))
    low, high = flat.min(0) - reach, flat.max(0) + reach
    if np.prod((high - low) / spacing) > 4e6:  # keep the grid to a few million cells
        spacing = float(np.sqrt(np.prod(high - low) / 4e6))
    a, b = np.meshgrid(np.arange(low[0], high[0], spacing), np.arange(low[1], high[1], spacing))
    cells = np.stack([a.ravel(), b.ravel()], 1)
    distance, _ = tree.query(cells, distance_upper_bound=reach)
    cells = cells[np.isfinite(distance)]
    return origin + cells[:, :1] * e1 + cells[:, 1:] * e2


def _backdrop(views: list[_View], depths: list[np.ndarray], known: np.ndarray, planes: list[dict],
              config: DenseConfig) -> tuple[np.ndarray, np.ndarray]:
    """Points for the set's pixels nothing else explains: each view's usable pixels that no known point (``known``
    [P, 3], stereo and planes) lands on and its stereo left without depth, every ``backdrop_stride``-th, placed where
    the pixel's ray leaves the set and coloured by the pixel. The set's bounds: the fitted planes that no camera
    stands beyond (the floor, a wall behind the rig), where the ray crosses one (within twice the distance below);
    else the sphere round the views' centroid ``backdrop_margin`` times as wide as the farthest view, but never
    nearer than nine in ten of the known points the view sees (a rig looking down sees its floor beyond that
    sphere). Needs three or more views (two do not enclose anything). A point nearer
    to a view it lies in front of than a fifth of the sphere's radius is dropped (it would fill that view)."""
    if len(views) < 3:
        return np.zeros((0, 3)), np.zeros((0, 3))
    centres = np.array([v.centre for v in views])
    middle = centres.mean(0)
    radius = config.backdrop_margin * float(np.linalg.norm(centres - middle, axis=1).max())
    if radius <= 1e-9:
        return np.zeros((0, 3)), np.zeros((0, 3))
    bounds = []  # (normal, offset) with every camera on the positive side
    for plane in planes:
        side = centres @ plane["normal"] + plane["offset"]
        if (side > 0).all() or (side < 0).all():
            sign = 1.0 if side[0] > 0 else -1.0
            bounds.append((sign * plane["normal"], sign * plane["offset"]))
    out_xyz, out_rgb = [np.zeros((0, 3))], [np.zeros((0, 3))]
    step = max(1, config.backdrop_stride)
    for view, depth in zip(views, depths):
        h, w = view.usable.shape
        hit = (depth > 0).astype(np.float32)
        far = float(np.percentile(depth[depth > 0], 90)) if (depth > 0).any() else 0.0
        if len(known):
            uv, z, inside = _project(view, known)
            hit[uv[inside, 1].astype(np.int64), uv[inside, 0].astype(np.int64)] = 1.0
            far = max(far, float(np.percentile(z[inside], 90)) if inside.any() else 0.0)
        grow = 2 * (config.backdrop_hole_px // 2) + 1  # holes in what stereo and the planes cover are not backdrop
        covered = F.max_pool2d(torch.from_numpy(hit)[None, None], grow, 1, grow // 2)[0, 0].numpy() > 0
        pick = view.usable & ~covered
        sparse = np.zeros_like(pick)
        sparse[step // 2::step, step // 2::step] = True
        rows, cols = np.nonzero(pick & sparse)
        if not len(rows):
            continue
        rays = _rays(view)[rows, cols]
        far_along = far * np.linalg.norm(rays, axis=1)  # the view's z depth as a distance along each ray
        direction = rays @ view.pose[:3, :3]  # world directions (camera to world: R^T)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        origin = view.centre
        offset = origin - middle  # ray leaves the sphere at the larger root of |o + t d - m|^2 = r^2
        b = direction @ offset
        c = float(offset @ offset) - radius * radius
        guess = np.maximum(-b + np.sqrt(np.maximum(b * b - c, 0.0)), far_along)  # never nearer than most it sees
        reach = np.full(len(guess), np.inf)
        for normal, plane_offset in bounds:  # the set ends where the ray crosses a bounding plane (the floor) ...
            towards = direction @ normal
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = -(origin @ normal + plane_offset) / towards
            reach = np.where((towards < 0) & (cross > 0) & (cross < reach), cross, reach)
        reach = np.where(reach < 2 * guess, reach, guess)  # ... else (or at a grazing crossing far off) the sphere
        xyz = origin + reach[:, None] * direction
        near = np.zeros(len(xyz), bool)
        for other in views:
            _, z, inside = _project(other, xyz)
            near |= inside & (z < 0.2 * radius)
        out_xyz.append(xyz[~near])
        out_rgb.append(view.rgb[rows, cols][~near])
    xyz, rgb = np.concatenate(out_xyz), np.concatenate(out_rgb)
    if len(xyz) > config.backdrop_points:
        xyz, rgb, _ = _downsample_to(xyz, rgb, config.backdrop_points)
    return xyz, rgb


def _observe(xyz: np.ndarray, views: list[_View], depths: list[np.ndarray],
             config: DenseConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep points some view sees un-occluded (and no view sees through); colour: the median of those views.

    Returns the kept points [K, 3], their colours [K, 3], and each view's colour of them [V, K, 3] (NaN where the
    view does not see the point)."""
    colours = np.full((len(views), len(xyz), 3), np.nan, np.float32)
    empty = np.zeros(len(xyz), bool)
    tol = config.plane_occlusion_rel
    for k, (view, depth) in enumerate(zip(views, depths)):
        uv, z, inside = _project(view, xyz)
        cols = np.clip(uv[:, 0].astype(np.int64), 0, depth.shape[1] - 1)
        rows = np.clip(uv[:, 1].astype(np.int64), 0, depth.shape[0] - 1)
        seen_depth = depth[rows, cols]
        known = inside & (seen_depth > 0)
        empty |= known & (seen_depth > z * (1 + tol))
        visible = inside & view.usable[rows, cols] & ~(known & (seen_depth < z * (1 - tol)))
        colours[k, visible] = view.rgb[rows[visible], cols[visible]]
    count = np.isfinite(colours[..., 0]).sum(0)
    several = (count >= 2) & ~empty
    if not several.any():
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((len(views), 0, 3), np.float32)
    median = np.nanmedian(colours[:, several], axis=0)
    spread = np.nanmedian(np.abs(colours[:, several] - median).mean(-1), axis=0)
    agree = np.zeros(len(xyz), bool)
    agree[several] = spread <= config.plane_max_colour_spread
    if agree[several].mean() < config.plane_min_agreement:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((len(views), 0, 3), np.float32)
    keep = (count >= config.plane_min_views) & ~empty & (agree | (count < 2))
    return xyz[keep], np.nanmedian(colours[:, keep], axis=0), colours[:, keep]
