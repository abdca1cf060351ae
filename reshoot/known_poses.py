"""Matching with a known calibration: features matched along the known epipolar lines, not verified by RANSAC.

With a calibrated rig (``register --calibration triangulate``) the geometry between two cameras is known,
so it need not be estimated. COLMAP's usual route (match every feature by descriptor alone, keep the
matches that pass the ratio test, then estimate a two-view geometry by RANSAC) throws most of a
wide-baseline rig away: across 90 degrees few descriptors are distinctive enough over the whole image,
and with a handful of matches RANSAC finds nothing. Here instead:

1. each feature of image *a* is compared only with the features of image *b* that lie within
   ``max_error_px`` of its epipolar line (Sampson distance, pixels, from the known K and poses, after
   undoing lens distortion); the best of those must beat the second best by the ratio test and be the
   mutual best (*guided matching*);
2. the matches are written to the COLMAP database as *calibrated* two-view geometries (E, F and the
   relative pose from the calibration), so ``pycolmap.triangulate_points`` builds tracks from them.

Locked-off cameras have one registration image each (the clean plate). With ``--dynamic instants``
the features of what moved at each sampled instant are appended to that image, as
:mod:`reshoot.instants` does, and matched only with the other cameras' features *of the same instant*.

Pure core (arrays in, arrays out): :func:`fundamental_matrix`, :func:`sampson_distance_px`,
:func:`epipolar_inliers`, :func:`match_along_epipolar_lines`. The database step:
:func:`match_with_known_poses`. Pixel coordinates use the pixel-corner origin (reshoot's and COLMAP's).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.cameras import Cameras, undistort

#: Sampson distance (pixels) a match may have from the known epipolar geometry. The CMU Panoptic
#: calibration at 640x360 puts the matches that COLMAP's own RANSAC verified at a median of 0.3 px.
MAX_EPIPOLAR_ERROR_PX = 2.0
#: Lowe's ratio test among the candidates near the epipolar line (COLMAP's default, 0.8).
MAX_RATIO = 0.8
#: Largest descriptor distance of a match: the angle between unit SIFT descriptors, radians (COLMAP's 0.7).
MAX_DESCRIPTOR_DISTANCE = 0.7
_CHUNK = 1024  # rows of the [N, M] candidate matrices held at once


# ---- pure core ----------------------------------------------------------------------------------


def fundamental_matrix(
    K_a: np.ndarray,  # [3, 3]
    world_to_camera_a: np.ndarray,  # [4, 4]
    K_b: np.ndarray,  # [3, 3]
    world_to_camera_b: np.ndarray,  # [4, 4]
) -> np.ndarray:  # [3, 3]
    """F with ``x_b^T F x_a = 0`` for the undistorted pixels ``x_a``, ``x_b`` of one world point.

    Poses are world-to-camera (OpenCV axes); F is scaled to unit Frobenius norm.
    """
    b_from_a = np.asarray(world_to_camera_b, np.float64) @ np.linalg.inv(np.asarray(world_to_camera_a, np.float64))
    R, t = b_from_a[:3, :3], b_from_a[:3, 3]
    if np.linalg.norm(t) < 1e-12:
        raise ValueError("fundamental_matrix: the two cameras share a centre; there is no epipolar geometry")
    tx = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    F = np.linalg.inv(K_b).T @ tx @ R @ np.linalg.inv(K_a)
    return F / np.linalg.norm(F)


def sampson_distance_px(
    F: np.ndarray,  # [3, 3]
    points_a: np.ndarray,  # [N, 2]
    points_b: np.ndarray,  # [N, 2]
) -> np.ndarray:  # [N]
    """First-order geometric distance (pixels) of each correspondence ``points_a[i] <-> points_b[i]`` from F."""
    points_a, points_b = _points("points_a", points_a), _points("points_b", points_b)
    if len(points_a) != len(points_b):
        raise ValueError(f"sampson_distance_px: points_a has {len(points_a)} rows, points_b {len(points_b)}")
    xa, xb = _homogeneous(points_a), _homogeneous(points_b)
    Fxa, Ftxb = xa @ F.T, xb @ F
    numerator = np.einsum("ij,ij->i", xb, Fxa) ** 2
    denominator = Fxa[:, 0] ** 2 + Fxa[:, 1] ** 2 + Ftxb[:, 0] ** 2 + Ftxb[:, 1] ** 2
    return np.sqrt(numerator / np.maximum(denominator, 1e-300))


def epipolar_inliers(
    F: np.ndarray,  # [3, 3]
    points_a: np.ndarray,  # [N, 2]
    points_b: np.ndarray,  # [M, 2]
    matches: np.ndarray,  # [K, 2] int: rows of points_a, points_b
    max_error_px: float = MAX_EPIPOLAR_ERROR_PX,
) -> np.ndarray:  # [K] bool
    """Which matches agree with the known geometry F (Sampson distance at most ``max_error_px``)."""
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    return sampson_distance_px(F, np.asarray(points_a)[matches[:, 0]], np.asarray(points_b)[matches[:, 1]]) <= max_error_px


def match_along_epipolar_lines(
    F: np.ndarray,  # [3, 3]
    points_a: np.ndarray,  # [N, 2]
    descriptors_a: np.ndarray,  # [N, D]
    points_b: np.ndarray,  # [M, 2]
    descriptors_b: np.ndarray,  # [M, D]
    max_error_px: float = MAX_EPIPOLAR_ERROR_PX,
    max_ratio: float = MAX_RATIO,
    max_distance: float = MAX_DESCRIPTOR_DISTANCE,
) -> np.ndarray:  # [K, 2] int64
    """Guided matching: mutual best descriptor matches among the features near each other's epipolar line.

    A feature of *a* may only match a feature of *b* whose Sampson distance from F is at most
    ``max_error_px``. Among those candidates, the best must be within ``max_distance`` (angle between
    unit descriptors, radians), *a*'s feature must be *b*'s feature's best candidate in turn, and the pair
    must pass the ratio test (``max_ratio`` times the second best) on at least one side. Swapping a and b
    swaps the result. Returns rows ``(i, j)``: ``points_a[i] <-> points_b[j]``.
    """
    points_a, points_b = _points("points_a", points_a), _points("points_b", points_b)
    desc_a, desc_b = _unit_rows("descriptors_a", descriptors_a, len(points_a)), _unit_rows(
        "descriptors_b", descriptors_b, len(points_b))
    if desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(f"match_along_epipolar_lines: descriptors of {desc_a.shape[1]} and {desc_b.shape[1]} values")
    n, m = len(points_a), len(points_b)
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64)
    xb = _homogeneous(points_b)
    Ftxb = xb @ F
    norm_b = Ftxb[:, 0] ** 2 + Ftxb[:, 1] ** 2  # [M]
    row_top = np.full((n, 2), -np.inf)  # each feature of a: its best and second best similarity (cosine)
    row_arg = np.full(n, -1, np.int64)
    column_top = np.full((2, m), -np.inf)  # the same for each feature of b, over all of a
    column_arg = np.full(m, -1, np.int64)
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(n, start + _CHUNK))
        Fxa = _homogeneous(points_a[rows]) @ F.T  # [n, 3]: a's epipolar lines in b
        error2 = (Fxa @ xb.T) ** 2 / np.maximum(Fxa[:, :1] ** 2 + Fxa[:, 1:2] ** 2 + norm_b[None], 1e-300)
        similarity = desc_a[rows] @ desc_b.T  # [n, M]
        similarity[error2 > max_error_px ** 2] = -np.inf
        row_arg[rows] = np.argmax(similarity, axis=1)
        row_top[rows] = _top2(similarity, axis=1)
        chunk_arg = np.argmax(similarity, axis=0) + start
        merged = np.concatenate([column_top, _top2(similarity, axis=0)])  # [4, M]
        column_arg = np.where(merged[2] > merged[0], chunk_arg, column_arg)
        column_top = -np.sort(-merged, axis=0)[:2]
    # mutual best, and distinct from the runner-up on either side: the same pairs whichever image is a
    i = np.arange(n)
    j = row_arg
    mutual = (j >= 0) & (column_arg[np.maximum(j, 0)] == i) & np.isfinite(row_top[:, 0])
    i, j = i[mutual], j[mutual]
    keep = _passes(row_top[i], max_ratio, max_distance) | _passes(column_top.T[j], max_ratio, max_distance)
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)


def _top2(similarity: np.ndarray, axis: int) -> np.ndarray:
    """The two largest values along ``axis`` (-inf where there are fewer), largest first, stacked on ``axis``."""
    if similarity.shape[axis] < 2:
        pad = np.full_like(similarity, -np.inf)
        similarity = np.concatenate([similarity, pad], axis=axis)
    part = -np.partition(-similarity, 1, axis=axis)
    return np.take(part, [0, 1], axis=axis)


def _passes(top: np.ndarray, max_ratio: float, max_distance: float) -> np.ndarray:  # [K, 2] -> [K] bool
    """The ratio test on angles between unit descriptors, and the largest distance, for best/second-best pairs."""
    best = np.arccos(np.clip(top[:, 0], -1.0, 1.0))
    second = np.where(np.isfinite(top[:, 1]), np.arccos(np.clip(top[:, 1], -1.0, 1.0)), np.inf)
    return np.isfinite(top[:, 0]) & (best <= max_distance) & (best < max_ratio * second)


def triangulate_pairs(
    K_a: np.ndarray,  # [3, 3]
    world_to_camera_a: np.ndarray,  # [4, 4]
    K_b: np.ndarray,  # [3, 3]
    world_to_camera_b: np.ndarray,  # [4, 4]
    points_a: np.ndarray,  # [K, 2]
    points_b: np.ndarray,  # [K, 2]
) -> np.ndarray:  # [K, 3]
    """World points of correspondences in undistorted pixels, by linear triangulation (DLT)."""
    points_a, points_b = _points("points_a", points_a), _points("points_b", points_b)
    P_a, P_b = K_a @ np.asarray(world_to_camera_a)[:3], K_b @ np.asarray(world_to_camera_b)[:3]
    A = np.stack([points_a[:, :1] * P_a[2] - P_a[0], points_a[:, 1:] * P_a[2] - P_a[1],
                  points_b[:, :1] * P_b[2] - P_b[0], points_b[:, 1:] * P_b[2] - P_b[1]], axis=1)  # [K, 4, 4]
    if not len(A):
        return np.zeros((0, 3))
    X = np.linalg.svd(A)[2][:, -1]  # [K, 4]
    with np.errstate(divide="ignore", invalid="ignore"):
        return X[:, :3] / X[:, 3:]


def inside_masks(
    cameras: Cameras,
    points: np.ndarray,  # [K, 3]
    masks: dict[int, np.ndarray],  # camera position -> [H, W] bool, at that camera's image size
) -> np.ndarray:  # [K] bool
    """Whether each world point projects inside every given mask that it falls on (silhouette consistency).

    A point behind a camera or outside its image says nothing about that camera's mask and passes there.
    """
    ok = np.isfinite(points).all(axis=1)
    for idx, mask in masks.items():
        pixels, depth = cameras.project(idx, np.nan_to_num(points))
        u, v = np.floor(pixels[:, 0]).astype(np.int64), np.floor(pixels[:, 1]).astype(np.int64)
        seen = (depth > 0) & (u >= 0) & (v >= 0) & (u < mask.shape[1]) & (v < mask.shape[0])
        ok[seen] &= mask[v[seen], u[seen]]
    return ok


def seen_in_other_views(
    cameras: Cameras,
    points: np.ndarray,  # [K, 3]
    descriptors: np.ndarray,  # [K, D]
    others: dict[int, tuple[np.ndarray, np.ndarray]],  # camera position -> (keypoints [M, 2], descriptors [M, D])
    radius_px: float = MAX_EPIPOLAR_ERROR_PX,
    max_distance: float = MAX_DESCRIPTOR_DISTANCE,
) -> np.ndarray:  # [K] bool
    """Whether each world point has a feature like it (``descriptors``) within ``radius_px`` of where it
    projects in at least one of the ``others`` (keypoints as recorded, distortion included)."""
    desc = _unit_rows("descriptors", descriptors, len(points))
    found = np.zeros(len(points), bool)
    for idx, (keypoints, other_desc) in others.items():
        keypoints = _points("keypoints", keypoints)
        if not len(keypoints) or not len(points):
            continue
        pixels, depth = cameras.project(idx, np.nan_to_num(points))
        unit = _unit_rows("descriptors", other_desc, len(keypoints))
        for start in range(0, len(points), _CHUNK):
            rows = slice(start, start + _CHUNK)
            near = ((pixels[rows, None, :] - keypoints[None]) ** 2).sum(axis=2) <= radius_px ** 2  # [k, M]
            alike = desc[rows] @ unit.T >= np.cos(max_distance)
            found[rows] |= (near & alike).any(axis=1) & (depth[rows] > 0)
    return found


def distinctive_matches(
    descriptors_a: np.ndarray,  # [N, D]
    descriptors_b: np.ndarray,  # [M, D]
    matches: np.ndarray,  # [K, 2] int
    max_ratio: float = MAX_RATIO,
) -> np.ndarray:  # [K] bool
    """Whether each match would pass plain descriptor matching over the *whole* images: each feature is the
    other's best, by ``max_ratio`` over the second best (what COLMAP's matcher keeps, before any geometry)."""
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    desc_a = _unit_rows("descriptors_a", descriptors_a, len(descriptors_a))
    desc_b = _unit_rows("descriptors_b", descriptors_b, len(descriptors_b))
    ok = np.ones(len(matches), bool)
    for one, other, rows, cols in ((desc_a, desc_b, matches[:, 0], matches[:, 1]),
                                   (desc_b, desc_a, matches[:, 1], matches[:, 0])):
        if len(other) < 2:
            continue
        for start in range(0, len(matches), _CHUNK):
            k = slice(start, start + _CHUNK)
            similarity = one[rows[k]] @ other.T  # [k, M]
            top2 = -np.sort(-similarity, axis=1)[:, :2]
            angle = np.arccos(np.clip(top2, -1.0, 1.0))
            mine = np.arccos(np.clip(similarity[np.arange(len(similarity)), cols[k]], -1.0, 1.0))
            ok[k] &= (mine <= angle[:, 0] + 1e-6) & (angle[:, 0] < max_ratio * angle[:, 1])
    return ok


def undistorted_pixels(cameras: Cameras, camera_idx: int, pixels: np.ndarray) -> np.ndarray:  # [N, 2]
    """``pixels`` of camera ``camera_idx`` (pixel-corner origin, as recorded) with its lens distortion undone."""
    pixels = _points("pixels", pixels)
    K, dist = cameras.K[camera_idx], cameras.distortion[camera_idx]
    if not dist.any():
        return pixels
    x = (pixels[:, 0] - K[0, 2]) / K[0, 0]
    y = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    x, y = undistort(x, y, dist)
    return np.stack([K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]], axis=1)


def _points(name: str, points: np.ndarray) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name}: expected shape [N, 2], got {list(array.shape)}")
    return array


def _unit_rows(name: str, descriptors: np.ndarray, count: int) -> np.ndarray:
    array = np.asarray(descriptors, dtype=np.float32)
    if array.ndim != 2 or len(array) != count:
        raise ValueError(f"{name}: expected shape [{count}, D] (one row per point), got {list(array.shape)}")
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def _homogeneous(points: np.ndarray) -> np.ndarray:  # [N, 3]
    return np.concatenate([points, np.ones((len(points), 1))], axis=1)


# ---- the COLMAP database ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Features:
    """One registration image's features: its plate's, then each instant's (rows ``segments[name]``)."""

    image_id: int
    camera_idx: int
    keypoints: np.ndarray  # [N, 2] pixels as recorded
    points: np.ndarray  # [N, 2] the same, lens distortion undone
    descriptors: np.ndarray  # [N, D]
    segments: dict[str, slice]  # "plate", and "<frame>.png" for each instant


def match_with_known_poses(
    pycolmap: Any,
    database: Path,
    cameras: Cameras,
    instants_dir: Path | None = None,
    max_error_px: float = MAX_EPIPOLAR_ERROR_PX,
) -> dict[str, dict[str, int]]:
    """Match the registration images of ``database`` along their known epipolar lines; write the matches.

    ``cameras`` are the known cameras at the size of the registration images, with ids equal to the first
    folder of the image names (``cam0/plate.png``); images of other folders (survey stills) are left out.
    ``instants_dir``: what moved at each instant (``instants.db`` with images ``<camera>/<frame>.png``, and
    ``masks/<camera>/<frame>.png.png``, see :mod:`reshoot.instants`), appended to each camera's image and
    matched only within an instant.

    An epipolar line is a line: along it, a repeated pattern or another person can match by chance. So each
    match is triangulated and must lie in front of both cameras, and

    - a match of two plates (static) must either be distinctive over the whole images (each feature the
      other's best by the ratio test, as COLMAP's matcher requires) or have a similar feature where it
      projects in a third plate: a repeated pattern (the CMU Panoptic dome's dotted panels) is neither;
    - a match at an instant (moving) must project inside what moved at that instant in every other camera
      that sees it (the silhouettes must agree; with two cameras there is nothing to check). On CMU Panoptic (four cameras 70-120 degrees apart) only
      about a fifth of the epipolar matches between moving people are right; this check kept 221 of 960,
      210 of which lie on the people in every view by the dataset's own masks, and it lost none of those.

    Every earlier match and two-view geometry in ``database`` is replaced. Returns, per camera pair
    ``"a|b"``: the matches kept from the plates and from the instants, and those the checks rejected.
    """
    side_database = Path(instants_dir) / "instants.db" if instants_dir else None
    db = pycolmap.Database.open(database)
    side = pycolmap.Database.open(side_database) if side_database else None
    try:
        features = sorted(_read_features(db, side, cameras), key=lambda f: f.image_id)
        masks = _motion_masks(Path(instants_dir), cameras, features) if instants_dir else {}
        db.clear_matches()
        db.clear_two_view_geometries()
        stats = {}
        for a, b in combinations(features, 2):
            if a.camera_idx == b.camera_idx:
                continue  # two images of one locked-off camera: one centre, no epipolar geometry
            F = fundamental_matrix(cameras.K[a.camera_idx], cameras.world_to_camera[a.camera_idx],
                                   cameras.K[b.camera_idx], cameras.world_to_camera[b.camera_idx])
            kept, rejected = {}, 0
            for name in (n for n in a.segments if n in b.segments):
                found, checked = _match_segment(cameras, F, a, b, name, features, masks, max_error_px)
                kept[name], rejected = found[checked], rejected + int((~checked).sum())
            matches = np.concatenate([np.zeros((0, 2), np.int64), *kept.values()])
            plate = len(kept.get("plate", ()))
            key = "|".join(sorted((cameras.camera_ids[a.camera_idx], cameras.camera_ids[b.camera_idx])))
            stats[key] = {"plate_matches": plate, "instant_matches": len(matches) - plate, "rejected": rejected}
            if len(matches):
                db.write_matches(a.image_id, b.image_id, matches.astype(np.uint32))
                db.write_two_view_geometry(a.image_id, b.image_id, _geometry(pycolmap, cameras, a, b, F, matches))
    finally:
        db.close()
        if side is not None:
            side.close()
    return stats


def _read_features(db, side, cameras: Cameras) -> list[_Features]:
    """Each known camera's image in ``db``: its keypoints, descriptors and segments.

    With ``side`` (the instants' features), those are first appended to the images in ``db`` the way
    :mod:`reshoot.instants` pools them, and each instant becomes a segment of its camera's image.
    """
    from reshoot.instants import _append_features  # the one place that pools instants into the plates

    images = [im for im in db.read_all_images() if im.name.split("/")[0] in cameras.camera_ids]
    plate_counts = {im.image_id: int(db.num_keypoints_for_image(im.image_id)) for im in images}
    offsets: dict[str, int] = {}  # "<camera>/<frame>.png" -> its first row in the camera's image
    if side is not None:
        side_names = {image.image_id: image.name for image in side.read_all_images()}
        offsets = _append_features(db, side, {im.name.split("/")[0]: im.image_id for im in images}, side_names)
    features = []
    for image in images:
        camera_id = image.name.split("/")[0]
        idx = cameras.index(camera_id)
        keypoints = db.read_keypoints(image.image_id)[:, :2].astype(np.float64)
        starts = sorted((offset, name.split("/", 1)[1]) for name, offset in offsets.items()
                        if name.split("/")[0] == camera_id)
        ends = [offset for offset, _ in starts[1:]] + [len(keypoints)]
        segments = {"plate": slice(0, plate_counts[image.image_id])}
        segments.update({name: slice(start, end) for (start, name), end in zip(starts, ends)})
        features.append(_Features(image.image_id, idx, keypoints, undistorted_pixels(cameras, idx, keypoints),
                                  db.read_descriptors(image.image_id).data, segments))
    return features


def _motion_masks(instants_dir: Path, cameras: Cameras, features: list[_Features]) -> dict[str, dict[int, np.ndarray]]:
    """Per instant, per camera position: where that camera saw something move (``masks/<camera>/<frame>.png.png``)."""
    from reshoot.footage import read_image

    masks: dict[str, dict[int, np.ndarray]] = {}
    for f in features:
        for name in f.segments:
            path = instants_dir / "masks" / cameras.camera_ids[f.camera_idx] / f"{name}.png"
            if name != "plate" and path.is_file():
                masks.setdefault(name, {})[f.camera_idx] = read_image(path)[..., 0] > 127
    return masks


def _match_segment(cameras: Cameras, F: np.ndarray, a: _Features, b: _Features, name: str,
                   features: list[_Features], masks: dict[str, dict[int, np.ndarray]],
                   max_error_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Guided matches of segment ``name`` of ``a`` and ``b`` (rows of the whole images) and which pass the checks.

    Returns the matches [K, 2] and a bool [K] (see :func:`match_with_known_poses` for the checks).
    """
    sa, sb = a.segments[name], b.segments[name]
    found = match_along_epipolar_lines(F, a.points[sa], a.descriptors[sa], b.points[sb], b.descriptors[sb],
                                       max_error_px=max_error_px) + [sa.start, sb.start]
    ia, ib = a.camera_idx, b.camera_idx
    X = triangulate_pairs(cameras.K[ia], cameras.world_to_camera[ia], cameras.K[ib], cameras.world_to_camera[ib],
                          a.points[found[:, 0]], b.points[found[:, 1]])
    ok = np.isfinite(X).all(axis=1)
    for idx in (ia, ib):
        ok &= (np.nan_to_num(X) @ cameras.world_to_camera[idx, :3, :3].T + cameras.world_to_camera[idx, :3, 3])[:, 2] > 0
    others = [f for f in features if f.camera_idx not in (ia, ib)]
    if name == "plate":
        ok &= distinctive_matches(a.descriptors[sa], b.descriptors[sb], found - [sa.start, sb.start]) | (
            seen_in_other_views(cameras, X, a.descriptors[found[:, 0]], {
                f.camera_idx: (f.keypoints[f.segments["plate"]], f.descriptors[f.segments["plate"]]) for f in others},
                radius_px=max_error_px))
    elif name != "plate":
        ok &= inside_masks(cameras, X, {i: m for i, m in masks.get(name, {}).items() if i not in (ia, ib)})
    return found, ok


def _geometry(pycolmap, cameras: Cameras, a: _Features, b: _Features, F: np.ndarray, matches: np.ndarray):
    """The known geometry of image pair (a, b) as a calibrated ``pycolmap.TwoViewGeometry``."""
    b_from_a = cameras.world_to_camera[b.camera_idx] @ np.linalg.inv(cameras.world_to_camera[a.camera_idx])
    R, t = b_from_a[:3, :3], b_from_a[:3, 3]
    t_unit = t / np.linalg.norm(t)
    tx = np.array([[0.0, -t_unit[2], t_unit[1]], [t_unit[2], 0.0, -t_unit[0]], [-t_unit[1], t_unit[0], 0.0]])
    geometry = pycolmap.TwoViewGeometry()
    geometry.config = pycolmap.TwoViewGeometryConfiguration.CALIBRATED
    geometry.E = tx @ R
    geometry.F = F
    geometry.cam2_from_cam1 = pycolmap.Rigid3d(pycolmap.Rotation3d(R), t_unit)
    geometry.inlier_matches = np.ascontiguousarray(matches, dtype=np.uint32)
    return geometry
