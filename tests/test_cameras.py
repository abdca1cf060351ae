"""Tests for reshoot.cameras: round trips through every convention, convention facts, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_same_cameras
from reshoot.cameras import OPENCV_TO_OPENGL, Cameras, look_at

pycolmap = pytest.importorskip("pycolmap")

TOL = 1e-9

#: A COLMAP-to-nerfstudio world axis swap, (x, y, z) -> (y, x, -z), as a [3, 4] applied_transform.
NERFSTUDIO_COLMAP_SWAP = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
#: The swap recent nerfstudio ``colmap_to_json`` records: (x, y, z) -> (x, z, -y).
NERFSTUDIO_COLMAP_SWAP_XZY = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0]])


# ---- helpers ------------------------------------------------------------------------------------


def quat_to_rot(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion (normalised here)."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def random_rigid(rng: np.random.Generator) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quat_to_rot(rng.normal(size=4))
    T[:3, 3] = rng.normal(scale=3.0, size=3)
    return T


def make_cameras(seed: int = 1234) -> Cameras:
    """Five cameras, distinct intrinsics and sizes, random poses; distortion: none, k1..p2, with k3."""
    rng = np.random.default_rng(seed)
    n = 5
    poses = np.stack([random_rigid(rng) for _ in range(n)])
    dist = np.zeros((n, 5))
    dist[1, :4] = rng.uniform(-0.05, 0.05, size=4)  # k1, k2, p1, p2 only
    dist[2, :4] = rng.uniform(-0.05, 0.05, size=4)
    dist[3, :] = rng.uniform(-0.05, 0.05, size=5)  # k3 != 0
    dist[3, 4] = 0.0123
    # cameras 0 and 4: no distortion
    sizes = np.array([[640, 480], [1920, 1080], [800, 600], [1280, 720], [333, 777]])
    fx = rng.uniform(300, 1500, size=n)
    fy = fx * rng.uniform(0.95, 1.05, size=n)
    cx = sizes[:, 0] / 2 + rng.uniform(-20, 20, size=n)
    cy = sizes[:, 1] / 2 + rng.uniform(-20, 20, size=n)
    return Cameras.create([f"cam{i}" for i in range(n)], fx, fy, cx, cy, poses, sizes, dist)


def colmap_with_one_camera(model: str, params: list[float], width: int = 640, height: int = 480):
    """A pycolmap.Reconstruction with one camera of ``model`` and one posed image ``img.jpg``."""
    rec = pycolmap.Reconstruction()
    camera = pycolmap.Camera(model=model, width=width, height=height, params=params, camera_id=1)
    rec.add_camera_with_trivial_rig(camera)
    image = pycolmap.Image(name="img.jpg", camera_id=1, image_id=1)
    R = quat_to_rot(np.array([0.9, 0.1, -0.2, 0.3]))
    t = np.array([0.5, -1.0, 2.0])
    rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(R), t))
    return rec, R, t


@pytest.fixture(scope="module")
def cams() -> Cameras:
    return make_cameras()


# ---- the test data itself -----------------------------------------------------------------------


def test_fixture_covers_the_distortion_cases(cams):
    d = cams.distortion
    assert not d[0].any() and not d[4].any()
    assert d[1, :4].all() and d[1, 4] == 0
    assert d[3, 4] == pytest.approx(0.0123)
    assert len({tuple(k.ravel()) for k in cams.K}) == 5
    R = cams.world_to_camera[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)


# ---- round trips --------------------------------------------------------------------------------


def test_opencv_round_trip(cams):
    back = Cameras.from_opencv(cams.camera_ids, cams.to_opencv())
    assert_same_cameras(cams, back)


def test_opencv_accepts_4_and_8_term_distortion(cams):
    ocv = cams.to_opencv()
    ocv[1]["dist"] = ocv[1]["dist"][:4]  # camera 1 has k3 == 0
    ocv[3]["dist"] = np.concatenate([ocv[3]["dist"], np.zeros(3)])
    assert_same_cameras(cams, Cameras.from_opencv(cams.camera_ids, ocv))
    ocv[3]["dist"][6] = 1e-3
    with pytest.raises(ValueError, match="cam3"):
        Cameras.from_opencv(cams.camera_ids, ocv)


@pytest.mark.parametrize("transform", ["none", "nerfstudio_colmap_swap", "swap_xzy", "random_rigid"])
@pytest.mark.parametrize("through_json", [False, True])
def test_nerfstudio_round_trip(cams, transform, through_json):
    applied = {
        "none": None,
        "nerfstudio_colmap_swap": NERFSTUDIO_COLMAP_SWAP,
        "swap_xzy": NERFSTUDIO_COLMAP_SWAP_XZY,
        "random_rigid": random_rigid(np.random.default_rng(7)),
    }[transform]
    data = cams.to_nerfstudio(applied_transform=applied)
    if through_json:
        data = json.loads(json.dumps(data))
    if applied is None:
        assert "applied_transform" not in data
    else:
        np.testing.assert_array_equal(np.array(data["applied_transform"]), np.asarray(applied)[:3])
    assert [f["file_path"] for f in data["frames"]] == [f"images/cam{i}.png" for i in range(5)]
    assert_same_cameras(cams, Cameras.from_nerfstudio(data))


def test_nerfstudio_applies_the_world_transform(cams):
    T = np.vstack([NERFSTUDIO_COLMAP_SWAP, [0, 0, 0, 1]])
    data = cams.to_nerfstudio(applied_transform=NERFSTUDIO_COLMAP_SWAP)
    for i, frame in enumerate(data["frames"]):
        m = np.array(frame["transform_matrix"])
        # camera centre moved by the swap: (x, y, z) -> (y, x, -z)
        c = cams.centers[i]
        np.testing.assert_allclose(m[:3, 3], [c[1], c[0], -c[2]], atol=1e-12)
        np.testing.assert_allclose(m, T @ cams.camera_to_world_opengl()[i], atol=1e-12)
        assert frame["cx"] == cams.K[i, 0, 2] and frame["fl_y"] == cams.K[i, 1, 1]
        assert (frame["w"], frame["h"]) == tuple(cams.image_size[i])


def test_nerfstudio_global_intrinsics_and_ids_from_file_names():
    w2c = look_at((0, -4, 1), (0, 0, 0))
    c2w_gl = np.linalg.inv(w2c) @ OPENCV_TO_OPENGL
    data = {
        "camera_model": "OPENCV", "fl_x": 500.0, "fl_y": 501.0, "cx": 320.0, "cy": 240.0,
        "w": 640, "h": 480, "k1": 0.01,
        "frames": [{"file_path": "images/frame_0007.jpg", "transform_matrix": c2w_gl.tolist()}],
    }
    cams = Cameras.from_nerfstudio(data)
    assert cams.camera_ids == ("frame_0007",)
    np.testing.assert_array_equal(cams.K[0], [[500, 0, 320], [0, 501, 240], [0, 0, 1]])
    np.testing.assert_array_equal(cams.distortion[0], [0.01, 0, 0, 0, 0])
    np.testing.assert_allclose(cams.world_to_camera[0], w2c, atol=1e-12)
    with pytest.raises(ValueError, match="fl_x"):
        Cameras.from_nerfstudio({"frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]})
    with pytest.raises(ValueError, match="OPENCV_FISHEYE"):
        Cameras.from_nerfstudio({**data, "camera_model": "OPENCV_FISHEYE"})


def test_colmap_round_trip_in_memory(cams):
    rec = cams.to_colmap()
    assert rec.num_cameras() == 5 and rec.num_images() == 5
    models = [rec.cameras[i + 1].model.name for i in range(5)]
    assert models == ["PINHOLE", "OPENCV", "OPENCV", "FULL_OPENCV", "PINHOLE"]
    assert [rec.images[i + 1].name for i in range(5)] == [f"cam{i}.png" for i in range(5)]
    assert_same_cameras(cams, Cameras.from_colmap(rec))


def test_colmap_round_trip_on_disk(cams, tmp_path):
    assert hasattr(pycolmap.Reconstruction, "write") and hasattr(pycolmap.Reconstruction, "write_text")
    binary, text = tmp_path / "bin", tmp_path / "txt"
    binary.mkdir()
    text.mkdir()
    rec = cams.to_colmap()
    rec.write(binary)
    assert (binary / "cameras.bin").is_file() and (binary / "images.bin").is_file()
    assert_same_cameras(cams, Cameras.from_colmap(pycolmap.Reconstruction(binary)))
    # the text format too (pycolmap 4.2.1 prints doubles with full precision)
    rec.write_text(text)
    assert (text / "cameras.txt").is_file()
    reread = pycolmap.Reconstruction()
    reread.read(text)
    assert_same_cameras(cams, Cameras.from_colmap(reread))


def test_json_round_trip(cams):
    data = json.loads(json.dumps(cams.to_json()))
    assert [c["camera_id"] for c in data["cameras"]] == list(cams.camera_ids)
    assert "pixel-corner" in data["convention"]
    assert_same_cameras(cams, Cameras.from_json(data))


def test_select_and_index(cams):
    sub = cams.select(["cam3", "cam1"])
    assert sub.camera_ids == ("cam3", "cam1")
    np.testing.assert_array_equal(sub.K[0], cams.K[3])
    np.testing.assert_array_equal(sub.world_to_camera[1], cams.world_to_camera[1])
    assert cams.index("cam4") == 4
    with pytest.raises(KeyError, match="cam0"):
        cams.index("nope")


# ---- convention facts ---------------------------------------------------------------------------


def test_opencv_principal_point_is_half_a_pixel_less(cams):
    for i, cam in enumerate(cams.to_opencv()):
        assert cam["K"][0, 2] == pytest.approx(cams.K[i, 0, 2] - 0.5, abs=1e-12)
        assert cam["K"][1, 2] == pytest.approx(cams.K[i, 1, 2] - 0.5, abs=1e-12)
        assert cam["K"][0, 0] == cams.K[i, 0, 0] and cam["K"][1, 1] == cams.K[i, 1, 1]
        np.testing.assert_array_equal(cam["R"], cams.world_to_camera[i, :3, :3])
        np.testing.assert_array_equal(cam["t"], cams.world_to_camera[i, :3, 3])


def _level_camera(eye=(0.0, -5.0, 1.0), target=(0.0, 0.0, 1.0)) -> Cameras:
    return Cameras.create(["c"], [800.0], [800.0], [320.0], [240.0], look_at(eye, target)[None], [[640, 480]])


def test_look_at_projection_facts():
    eye, target = np.array([0.0, -5.0, 1.0]), np.array([0.0, 0.0, 1.0])  # looking along +Y (north), Z up
    cam = _level_camera(eye, target)
    np.testing.assert_allclose(cam.centers[0], eye, atol=1e-12)
    px, depth = cam.project(0, np.array([target, target + [0, 0, 1], target + [1, 0, 0]]))
    # the target lands on the principal point, at its distance
    np.testing.assert_allclose(px[0], [320.0, 240.0], atol=1e-9)
    assert depth[0] == pytest.approx(5.0, abs=1e-12)
    # world +Z is up in the image (smaller v); looking north, east (+X) is to the right (larger u)
    assert px[1, 1] == pytest.approx(240.0 - 800.0 * 1 / 5, abs=1e-9)
    assert px[1, 0] == pytest.approx(320.0, abs=1e-9)
    assert px[2, 0] == pytest.approx(320.0 + 800.0 * 1 / 5, abs=1e-9)
    assert px[2, 1] == pytest.approx(240.0, abs=1e-9)


def test_look_at_oblique_camera():
    eye, target = np.array([3.0, -2.0, 2.5]), np.array([0.5, 1.0, 0.0])
    cam = _level_camera(eye, target)
    np.testing.assert_allclose(cam.centers[0], eye, atol=1e-12)
    px, depth = cam.project(0, target[None])
    np.testing.assert_allclose(px[0], [320.0, 240.0], atol=1e-9)
    assert depth[0] == pytest.approx(np.linalg.norm(target - eye), abs=1e-12)
    R = cam.world_to_camera[0, :3, :3]
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    # camera x axis (right) is horizontal for the default up=+Z
    assert R[0, 2] == pytest.approx(0.0, abs=1e-12)
    above, _ = cam.project(0, (target + [0, 0, 0.5])[None])
    assert above[0, 1] < 240.0


def test_camera_to_world_opengl_axes():
    eye, target = np.array([2.0, -4.0, 1.5]), np.array([0.0, 0.0, 1.5])  # level camera
    cam = _level_camera(eye, target)
    c2w_gl = cam.camera_to_world_opengl()[0]
    back = (eye - target) / np.linalg.norm(eye - target)
    np.testing.assert_allclose(c2w_gl[:3, 2], back, atol=1e-12)  # +z_gl points backward
    np.testing.assert_allclose(c2w_gl[:3, 1], [0, 0, 1], atol=1e-12)  # +y_gl is world up
    np.testing.assert_allclose(c2w_gl[:3, 3], eye, atol=1e-12)
    np.testing.assert_allclose(np.cross(c2w_gl[:3, 0], c2w_gl[:3, 1]), c2w_gl[:3, 2], atol=1e-12)


def test_look_at_straight_down_with_explicit_up():
    pose = look_at((0, 0, 10), (0, 0, 0), up=(0, 1, 0))
    cam = Cameras.create(["c"], [500.0], [500.0], [100.0], [50.0], pose[None], [[200, 100]])
    px, depth = cam.project(0, np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(px[0], [100.0, 50.0], atol=1e-9)
    assert depth[0] == pytest.approx(10.0)
    assert px[1, 1] < 50.0  # world +Y (the given up) is up in the image


def test_project_matches_cv2_project_points(cams):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(99)
    for i, ocv in enumerate(cams.to_opencv()):
        # points in front of camera i, within a modest field of view
        cam_pts = np.column_stack([rng.uniform(-0.4, 0.4, 20), rng.uniform(-0.3, 0.3, 20), np.ones(20)])
        cam_pts *= rng.uniform(1.0, 8.0, size=(20, 1))
        c2w = cams.camera_to_world[i]
        world = cam_pts @ c2w[:3, :3].T + c2w[:3, 3]
        px, depth = cams.project(i, world)
        np.testing.assert_allclose(depth, cam_pts[:, 2], atol=1e-9)
        rvec, _ = cv2.Rodrigues(ocv["R"])
        ref, _ = cv2.projectPoints(world, rvec, ocv["t"], ocv["K"], ocv["dist"])
        assert np.abs(px - (ref.reshape(-1, 2) + 0.5)).max() < 1e-6


def test_project_distortion_changes_pixels(cams):
    # sanity: the distorted cameras really differ from their undistorted selves off-axis
    undist = Cameras(cams.camera_ids, cams.K, np.zeros((5, 5)), cams.world_to_camera, cams.image_size)
    c2w = cams.camera_to_world[3]
    point = (c2w[:3, :3] @ [0.3, 0.2, 1.0] + c2w[:3, 3])[None]
    assert np.abs(cams.project(3, point)[0] - undist.project(3, point)[0]).max() > 0.1


# ---- errors -------------------------------------------------------------------------------------


def test_wrong_shaped_K_names_both_shapes():
    with pytest.raises(ValueError) as err:
        Cameras(("a", "b"), np.zeros((2, 3, 4)), np.zeros((2, 5)), np.tile(np.eye(4), (2, 1, 1)), [[4, 4]] * 2)
    msg = str(err.value)
    assert "K" in msg and "[2, 3, 3]" in msg and "[2, 3, 4]" in msg


def test_wrong_number_of_poses_rejected():
    with pytest.raises(ValueError, match=r"world_to_camera.*\[2, 4, 4\].*\[3, 4, 4\]"):
        Cameras(("a", "b"), np.tile(np.eye(3), (2, 1, 1)), np.zeros((2, 5)), np.tile(np.eye(4), (3, 1, 1)),
                [[4, 4]] * 2)


def test_bad_pose_last_row_rejected():
    pose = np.eye(4)
    pose[3, 0] = 1.0
    with pytest.raises(ValueError, match="last row"):
        Cameras.create(["a"], [1.0], [1.0], [0.5], [0.5], pose[None], [[1, 1]])


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="unique"):
        Cameras.create(["a", "a"], [1, 1], [1, 1], [0, 0], [0, 0], np.tile(np.eye(4), (2, 1, 1)), [[2, 2]] * 2)


@pytest.mark.parametrize("up", [(0, 0, 1), (0, 0, -3)])
def test_look_at_up_parallel_to_view_raises(up):
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 5), (0, 0, 0), up=up)


def test_look_at_eye_equal_to_target_raises():
    with pytest.raises(ValueError, match="same point"):
        look_at((1.0, 2.0, 3.0), (1.0, 2.0, 3.0))


def test_skewed_K_is_refused_with_the_camera_named():
    K = np.array([[[100.0, 2.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"'a' has skew"):
        Cameras(("a",), K, np.zeros((1, 5)), np.eye(4)[None], [[100, 80]])


def test_non_finite_pose_is_refused_with_the_camera_named():
    pose = np.eye(4)[None].copy()
    pose[0, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"'a' has non-finite"):
        Cameras(("a",), np.eye(3)[None], np.zeros((1, 5)), pose, [[100, 80]])


@pytest.mark.parametrize(
    "model, params",
    [("FOV", [500.0, 500.0, 320.0, 240.0, 0.9]), ("SIMPLE_RADIAL_FISHEYE", [500.0, 320.0, 240.0, 0.1])],
)
def test_colmap_unsupported_model_raises(model, params):
    rec, _, _ = colmap_with_one_camera(model, params)
    with pytest.raises(ValueError, match=model):
        Cameras.from_colmap(rec)


def test_colmap_simple_radial():
    rec, R, t = colmap_with_one_camera("SIMPLE_RADIAL", [612.5, 321.0, 239.5, -0.042])
    cams = Cameras.from_colmap(rec)
    assert cams.camera_ids == ("img",)
    np.testing.assert_array_equal(cams.K[0], [[612.5, 0, 321.0], [0, 612.5, 239.5], [0, 0, 1]])
    np.testing.assert_array_equal(cams.distortion[0], [-0.042, 0, 0, 0, 0])
    np.testing.assert_allclose(cams.world_to_camera[0, :3, :3], R, atol=1e-12)
    np.testing.assert_allclose(cams.world_to_camera[0, :3, 3], t, atol=1e-12)
    np.testing.assert_array_equal(cams.image_size[0], [640, 480])


def test_colmap_radial_and_simple_pinhole():
    cams = Cameras.from_colmap(colmap_with_one_camera("RADIAL", [400.0, 300.0, 200.0, 0.1, -0.01])[0])
    np.testing.assert_array_equal(cams.K[0], [[400, 0, 300], [0, 400, 200], [0, 0, 1]])
    np.testing.assert_array_equal(cams.distortion[0], [0.1, -0.01, 0, 0, 0])
    cams = Cameras.from_colmap(colmap_with_one_camera("SIMPLE_PINHOLE", [400.0, 300.0, 200.0])[0])
    np.testing.assert_array_equal(cams.distortion[0], np.zeros(5))
    assert cams.K[0, 1, 1] == 400.0


def test_colmap_full_opencv_with_k4_raises():
    params = [500.0, 505.0, 320.0, 240.0, 0.01, 0.002, 0.0, 0.0, 0.003, 0.0, 0.0, 0.0]
    cams = Cameras.from_colmap(colmap_with_one_camera("FULL_OPENCV", params)[0])
    np.testing.assert_array_equal(cams.distortion[0], [0.01, 0.002, 0.0, 0.0, 0.003])
    params[9] = 0.004  # k4
    with pytest.raises(ValueError, match="k4"):
        Cameras.from_colmap(colmap_with_one_camera("FULL_OPENCV", params)[0])


# ---- immutability -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["K", "distortion", "world_to_camera", "image_size"])
def test_arrays_are_read_only(cams, name):
    array = getattr(cams, name)
    assert not array.flags.writeable
    with pytest.raises(ValueError):
        array[0, 0] = 7
    with pytest.raises(ValueError):
        array += 1


def test_cameras_copies_its_inputs():
    ids = ["a", "b"]
    K = np.tile(np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]]), (2, 1, 1))
    dist = np.zeros((2, 5))
    poses = np.tile(np.eye(4), (2, 1, 1))
    sizes = np.array([[100, 80], [100, 80]])
    cams = Cameras(ids, K, dist, poses, sizes)
    K[0, 0, 0] = -1
    dist[0, 0] = 0.5
    poses[0, 0, 3] = 9
    sizes[0, 0] = 1
    ids.append("c")
    assert cams.K[0, 0, 0] == 100.0
    assert cams.distortion[0, 0] == 0.0
    assert cams.world_to_camera[0, 0, 3] == 0.0
    assert cams.image_size[0, 0] == 100
    assert cams.camera_ids == ("a", "b") and len(cams) == 2
    assert not np.shares_memory(cams.K, K)
    assert cams.K.dtype == np.float64 and cams.image_size.dtype == np.int64


def test_to_opencv_returns_writable_copies(cams):
    ocv = cams.to_opencv()
    ocv[0]["R"][0, 0] = 42.0
    ocv[0]["dist"][0] = 42.0
    assert cams.world_to_camera[0, 0, 0] != 42.0
    assert cams.distortion[0, 0] == 0.0


def test_nerfstudio_k4_is_refused_not_dropped():
    cams = Cameras.create(["a"], [100.0], [100.0], [50.0], [40.0], np.eye(4)[None], [[100, 80]])
    data = cams.to_nerfstudio()
    data["frames"][0]["k4"] = 0.01
    with pytest.raises(ValueError, match="k4"):
        Cameras.from_nerfstudio(data)


def test_png_writing_survives_pycolmap_when_reshoot_is_imported_first(tmp_path):
    """pycolmap exports its static zlib; reshoot loads Pillow and OpenCV first so PNG writing is safe."""
    import subprocess
    import sys

    code = (
        "import reshoot, pycolmap, numpy as np, cv2\n"
        "from PIL import Image\n"
        "im = (np.random.default_rng(0).random((360, 640, 3)) * 255).astype(np.uint8)\n"
        f"cv2.imwrite(r'{tmp_path}/a.png', im); Image.fromarray(im).save(r'{tmp_path}/b.png')\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_transform_world_keeps_every_projection(cams):
    rng = np.random.default_rng(7)
    R = random_rigid(rng)[:3, :3]
    S = np.eye(4)
    S[:3, :3], S[:3, 3] = 2.5 * R, [1.0, -2.0, 0.5]
    moved = cams.transform_world(S)
    points = rng.normal(scale=0.5, size=(20, 3)) + cams.centers[0] + 3 * cams.camera_to_world[0, :3, 2]
    moved_points = points @ S[:3, :3].T + S[:3, 3]
    for i in range(len(cams)):
        before, depth = cams.project(i, points)
        after, depth_after = moved.project(i, moved_points)
        np.testing.assert_allclose(after, before, atol=1e-9)
        np.testing.assert_allclose(depth_after, 2.5 * depth, rtol=1e-12)
    np.testing.assert_allclose(moved.centers, cams.centers @ S[:3, :3].T + S[:3, 3], atol=1e-9)
    with pytest.raises(ValueError, match="rotation"):
        cams.transform_world(np.diag([1.0, 2.0, 1.0, 1.0]))
