"""Dense set geometry: plane-sweep stereo, consistency fusion and the plane prior on a textured floor."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from reshoot.cameras import look_at
from reshoot.splat.dense import DenseConfig, DenseView, dense_set_points

W, H, FOCAL_PX = 96, 72, 80.0
K = np.array([[FOCAL_PX, 0, W / 2], [0, FOCAL_PX, H / 2], [0, 0, 1.0]])
#: small and quick: every view at its full 96x72, a coarse sweep
CONFIG = DenseConfig(max_side_px=96, depth_planes=48, neighbours=3, target_points=20_000)


def _texture(rng: np.random.Generator, blank: tuple[float, float, float, float] | None = None):
    """A random smooth colour texture on the floor z = 0 over [-2, 2]^2 (cells of 12.5 cm), optionally flat grey
    inside ``blank`` = (xmin, xmax, ymin, ymax)."""
    cells = rng.uniform(0.1, 0.9, (3, 33, 33))

    def colour(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # [..., 3] in [0, 1]
        coords = np.stack([(y + 2) * 8, (x + 2) * 8])
        rgb = np.stack([map_coordinates(c, coords, order=1, mode="nearest") for c in cells], -1)
        if blank is not None:
            inside = (x > blank[0]) & (x < blank[1]) & (y > blank[2]) & (y < blank[3])
            rgb[inside] = 0.5
        return rgb
    return colour


def _render(pose: np.ndarray, colour) -> tuple[np.ndarray, np.ndarray]:
    """The floor seen by a pinhole camera (pixel centres at +0.5): image [H, W, 3] uint8 and depth [H, W]."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    R, t = pose[:3, :3], pose[:3, 3]
    centre = -R.T @ t
    rays = rays_cam @ R  # world directions (R^T r)
    depth = -centre[2] / rays[..., 2]  # along the optical axis, since rays_cam has z = 1
    points = centre + rays * depth[..., None]
    image = (colour(points[..., 0], points[..., 1]) * 255).round().astype(np.uint8)
    return image, depth


def _floor_views(seed: int = 0, blank=None, count: int = 4) -> tuple[list[DenseView], list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    colour = _texture(rng, blank)
    views, depths = [], []
    for k in range(count):
        angle = 2 * np.pi * k / count
        pose = look_at((1.0 * np.cos(angle), 1.0 * np.sin(angle), 2.5), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
        image, depth = _render(pose, colour)
        views.append(DenseView(f"cam{k}", image, K, pose))
        depths.append(depth)
    sparse = np.concatenate([rng.uniform(-1, 1, (60, 2)), np.zeros((60, 1))], axis=1)
    return views, depths, sparse


@pytest.mark.parametrize("with_sparse", [True, False])
def test_stereo_depth_matches_the_plane(with_sparse):
    views, truth, sparse = _floor_views()
    # without sparse points the range comes from the camera layout (0.3x-3x): wider, so more planes
    config = replace(CONFIG, planes=0, depth_planes=48 if with_sparse else 160, backdrop=False)
    dense = dense_set_points(views, sparse if with_sparse else np.zeros((0, 3)), config)
    for view, true_depth in zip(views, truth):
        depth = dense.depths[view.name]
        assert depth.shape == (H, W)
        found = depth > 0
        assert found.mean() > 0.4, f"{view.name}: only {found.mean():.0%} of pixels got a depth"
        error = np.abs(depth[found] - true_depth[found]) / true_depth[found]
        assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.03, (view.name, np.median(error))
    assert (dense.source == 0).all() and len(dense.xyz) > 1000
    assert np.percentile(np.abs(dense.xyz[:, 2]), 95) < 0.05  # every stereo point near the floor
    assert dense.rgb.min() >= 0 and dense.rgb.max() <= 1
    assert set(dense.report["seconds"]) == {"prepare", "stereo", "fusion", "planes", "backdrop"}


def test_plane_prior_recovers_the_floor_and_fills_a_textureless_patch():
    blank = (0.1, 0.7, -0.3, 0.3)  # flat grey: stereo finds nothing there
    views, _, sparse = _floor_views(seed=1, blank=blank)
    dense = dense_set_points(views, sparse, replace(CONFIG, planes=2))
    plane = dense.report["planes"][0]
    normal = np.array(plane["normal"])
    assert abs(abs(normal[2]) - 1) < 1e-3 and abs(plane["offset"]) < 0.01, plane
    stereo, filled = dense.xyz[dense.source == 0], dense.xyz[dense.source == 1]
    inside = lambda p: (p[:, 0] > blank[0] + 0.05) & (p[:, 0] < blank[1] - 0.05) & (p[:, 1] > blank[2] + 0.05) & (
        p[:, 1] < blank[3] - 0.05)
    assert inside(stereo).sum() < 0.2 * inside(filled).sum()  # stereo is thin in the patch ...
    assert inside(filled).sum() > 500 and np.abs(filled[:, 2]).max() < 0.01  # ... and the plane fills it
    grey = dense.rgb[dense.source == 1][inside(filled)]
    assert np.abs(grey - 0.5).max() < 0.05  # coloured by the views


def test_masked_pixels_get_no_depth():
    views, _, sparse = _floor_views(seed=2)
    mask = np.ones((H, W), bool)
    mask[20:50, 30:70] = False  # "the actor"
    views[0] = replace(views[0], mask=mask)
    dense = dense_set_points(views, sparse, replace(CONFIG, planes=0))
    depth = dense.depths["cam0"]
    assert (depth[20:50, 30:70] == 0).all()
    assert (depth[mask] > 0).mean() > 0.4


def test_bad_inputs_name_the_view_and_the_problem():
    views, _, sparse = _floor_views(count=3)
    with pytest.raises(ValueError, match=r"'cam1'.*\[H, W, 3\] uint8.*\[72, 96\]"):
        dense_set_points([views[0], replace(views[1], image=views[1].image[..., 0])], sparse)
    with pytest.raises(ValueError, match=r"'cam0'.*mask must be \[H, W\] = \[72, 96\] bool, got \[10, 10\]"):
        dense_set_points([replace(views[0], mask=np.ones((10, 10), bool))] + views[1:], sparse)
    with pytest.raises(ValueError, match=r"'cam2'.*not a rotation"):
        dense_set_points(views[:2] + [replace(views[2], world_to_camera=np.diag([2.0, 1, 1, 1]))], sparse)
    with pytest.raises(ValueError, match=r"'cam0'.*K must be"):
        dense_set_points([replace(views[0], K=np.eye(2))] + views[1:], sparse)
    with pytest.raises(ValueError, match="unique"):
        dense_set_points([views[0], views[0]], sparse)
    with pytest.raises(ValueError, match="2 or more views"):
        dense_set_points(views[:1], sparse)
    with pytest.raises(ValueError, match=r"sparse_xyz must be \[N, 3\]"):
        dense_set_points(views, np.zeros((5, 2)))


def _level_rig(height: float, seed: int = 3, sheen: float = 0.0) -> list[DenseView]:
    """Four level cameras 1 m above a textured floor at z = ``height``, 2.5 m out, looking down 25 degrees at the
    middle; above the floor's edge (3 m out) they see a far backdrop. ``sheen``: a glossy floor, lighter by
    ``sheen * (1 - sin(elevation))**2`` where a camera sees it at a grazing angle (none seen straight down)."""
    colour = _texture(np.random.default_rng(seed))
    views = []
    for k in range(4):
        angle = 2 * np.pi * k / 4 + 0.3
        eye = np.array([2.5 * np.cos(angle), 2.5 * np.sin(angle), height + 1.0])
        pose = look_at(eye, (0.0, 0.0, height + 1.0 - 2.5 * np.tan(np.radians(25))), up=(0.0, 0.0, 1.0))
        u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ pose[:3, :3]
        with np.errstate(divide="ignore", invalid="ignore"):
            along = (height - eye[2]) / rays[..., 2]
        points = eye + rays * along[..., None]
        floor = (along > 0) & (np.hypot(points[..., 0], points[..., 1]) < 3.0)
        backdrop = np.stack([0.5 + 0.4 * np.sin(9 * np.arctan2(rays[..., 1], rays[..., 0]))] * 3, -1)
        sine = np.abs(rays[..., 2]) / np.linalg.norm(rays, axis=-1)
        seen = colour(np.nan_to_num(points[..., 0]), np.nan_to_num(points[..., 1])) + sheen * (1 - sine[..., None]) ** 2
        image = np.where(floor[..., None], np.clip(seen, 0, 1), backdrop)
        views.append(DenseView(f"cam{k}", (image * 255).round().astype(np.uint8), K, pose))
    return views


def test_the_floor_under_a_level_rig_is_found_by_sweeping_it_when_stereo_and_ransac_miss_it():
    from reshoot.splat.dense import _ground_plane, _rig_up, _working_view

    for height in (0.0, -0.4):
        views = [_working_view(v, 96) for v in _level_rig(height)]
        up = _rig_up(views, 20.0)
        assert up is not None and up[2] > 0.999
        sparse = np.concatenate([np.random.default_rng(0).uniform(-1, 1, (40, 2)), np.full((40, 1), height)], 1)
        depths = [np.zeros((H, W)) for _ in views]  # stereo found nothing
        ground = _ground_plane([], sparse, views, depths, 2.5, CONFIG)
        assert ground is not None and ground["swept"]
        assert abs(-ground["offset"] - height) < 0.03, (height, ground["offset"], ground["agreement"])
        assert ground["agreement"] > 0.5 and len(ground["members"]) > 1000
        fitted = {"normal": np.array([0.0, 0.0, -1.0]), "offset": height}  # RANSAC found the floor already
        assert _ground_plane([fitted], sparse, views, depths, 2.5, CONFIG) is None
    rolled = _level_rig(0.0)
    turn = np.array([[np.cos(0.6), -np.sin(0.6), 0, 0], [np.sin(0.6), np.cos(0.6), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    rolled = [replace(v, world_to_camera=turn @ v.world_to_camera) if k % 2 else v for k, v in enumerate(rolled)]
    assert _rig_up([_working_view(v, 96) for v in rolled], 20.0) is None  # cameras rolled 34 degrees: no sweep


def test_the_swept_floor_is_reported_and_fills_the_dense_set():
    views = _level_rig(0.0)
    blind = replace(CONFIG, planes=2, min_texture=1.0)  # stereo finds nothing, no sparse points: nothing to fit
    dense = dense_set_points(views, np.zeros((0, 3)), blind)
    assert dense.report["stereo_points"] == 0
    (swept,) = dense.report["planes"]
    assert swept["swept"] and abs(swept["offset"]) < 0.03 and swept["points"] > 500
    floor = dense.xyz[dense.source == 1]
    assert len(floor) == swept["points"] and np.abs(floor[:, 2]).max() < 0.03
    assert not dense_set_points(views, np.zeros((0, 3)), replace(blind, ground=False)).report["planes"]


def test_what_nothing_explains_starts_on_the_backdrop_beyond_the_rig_never_in_the_middle():
    views = _level_rig(0.0)  # the floor out to 3 m; above its edge, a backdrop no stereo finds (uniform rows)
    blind = replace(CONFIG, min_texture=1.0)  # stereo finds nothing: the swept floor, then the backdrop
    dense = dense_set_points(views, np.zeros((0, 3)), blind)
    back, colour = dense.xyz[dense.source == 2], dense.rgb[dense.source == 2]
    assert dense.report["backdrop_points"] == len(back) > 500
    middle = np.array([0.0, 0.0, 1.0])  # the cameras' centroid; the farthest camera 2.5 m from it
    distance = np.linalg.norm(back - middle, axis=1)
    assert distance.min() > 2.5 * 1.1 - 1e-6 and back[:, 2].min() > -0.03  # beyond the rig, never under the floor
    assert np.abs(colour - colour.mean(1, keepdims=True)).max() < 0.02  # the grey backdrop's pixels, not the floor's
    floor_only = dense_set_points(views, np.zeros((0, 3)), replace(blind, backdrop=False))
    assert floor_only.report["backdrop_points"] == 0 and (floor_only.source < 2).all()


def test_a_rig_looking_down_puts_its_unexplained_pixels_on_the_floor_not_in_front_of_it():
    views, _, sparse = _floor_views()  # four cameras 2.5 m up, 1 m out: the sphere round them ends 1.1 m away
    dense = dense_set_points(views, sparse, CONFIG)
    back = dense.xyz[dense.source == 2]
    assert len(back) and np.abs(back[:, 2]).max() < 0.02  # the image edges no other view sees: on the floor plane
    no_plane = dense_set_points(views, sparse, replace(CONFIG, planes=0)).xyz
    assert np.percentile(no_plane[:, 2], 1) > -0.05 and no_plane[:, 2].max() < 0.5  # no plane: near it, not at 1.4 m


def test_the_floor_no_view_pictures_inside_the_ring_is_filled_with_the_floor_colour_seen():
    views = _level_rig(0.0)  # the cameras look down 25 degrees: the floor under and behind each one is unseen
    blind = replace(CONFIG, min_texture=1.0)
    dense = dense_set_points(views, np.zeros((0, 3)), blind)
    (floor,) = dense.report["planes"]
    assert floor["swept"] and floor["unseen_filled"] > 100
    points = dense.xyz[dense.source == 1]
    assert np.abs(points[:, 2]).max() < 0.03
    from scipy.spatial import cKDTree
    ring = np.stack(np.meshgrid(np.linspace(-2.7, 2.7, 28), np.linspace(-2.7, 2.7, 28)), -1).reshape(-1, 2)
    ring = ring[np.hypot(ring[:, 0], ring[:, 1]) < 2.7]  # the cameras' ring (2.5 m) and a tenth beyond
    gap, _ = cKDTree(points[:, :2]).query(ring)
    assert gap.max() < 0.1  # the whole ring has floor, seen or not
    unfilled = dense_set_points(views, np.zeros((0, 3)), replace(blind, floor_fill=False))
    gap, _ = cKDTree(unfilled.xyz[unfilled.source == 1][:, :2]).query(ring)
    assert gap.max() > 0.3 and "unseen_filled" not in unfilled.report["planes"][0]


def test_the_unseen_floor_takes_the_colour_the_views_see_most_steeply_not_the_sheen_far_off():
    blind = replace(CONFIG, min_texture=1.0, backdrop=False)

    def floor_colours(sheen: float) -> tuple[np.ndarray, np.ndarray]:
        dense = dense_set_points(_level_rig(0.0, sheen=sheen), np.zeros((0, 3)), blind)
        rgb = dense.rgb[dense.source == 1]
        rows, counts = np.unique(rgb.round(5), axis=0, return_counts=True)
        fill = rows[np.argmax(counts)]  # every filled point has the one colour
        assert counts.max() > 100
        return fill, np.median(rgb[np.abs(rgb - fill).max(1) > 1e-4], axis=0)  # the fill, the floor seen

    matte_fill, matte_seen = floor_colours(0.0)
    glossy_fill, glossy_seen = floor_colours(0.35)
    paler = (glossy_seen - matte_seen).mean()
    assert paler > 0.12  # the floor the low cameras see is pale with sheen (measured 0.18)...
    assert np.abs(glossy_fill - matte_fill).max() < 0.5 * paler  # ...the fill, from the steepest views, less (0.07)
