"""Tests for reshoot.calibration: each reader round trips, grouping, dispatch, matching, real caliscope data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_same_cameras
from reshoot.calibration import (
    Calibration, match_cameras, read_caliscope, read_calibration, read_colmap_model, read_transforms,
)
from reshoot.cameras import Cameras

pycolmap = pytest.importorskip("pycolmap")

TOL = 1e-9
CALISCOPE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "caliscope_4cam"
needs_caliscope = pytest.mark.skipif(
    not (CALISCOPE / "post_optimization" / "camera_array.toml").is_file(),
    reason=f"real caliscope data not found at {CALISCOPE} (see datasets/ for where to get it)",
)


# ---- helpers ------------------------------------------------------------------------------------


def rotation_from_rvec(rvec: np.ndarray) -> np.ndarray:
    """Rotation of axis-angle ``rvec`` via its quaternion (independent of the reader's Rodrigues formula)."""
    angle = np.linalg.norm(rvec)
    w, (x, y, z) = np.cos(angle / 2), np.sin(angle / 2) * rvec / angle
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def make_rig(seed: int = 5) -> tuple[Cameras, np.ndarray]:
    """Three cameras (no distortion / k1..p2 / all five terms) with random poses; also their rvecs."""
    rng = np.random.default_rng(seed)
    ids = ("cam_0", "cam_1", "cam_2")
    n = len(ids)
    rvecs = rng.normal(size=(n, 3))
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        poses[i, :3, :3] = rotation_from_rvec(rvecs[i])
        poses[i, :3, 3] = rng.normal(scale=2.0, size=3)
    dist = np.zeros((n, 5))
    dist[1, :4] = rng.uniform(-0.1, 0.1, size=4)
    dist[2] = rng.uniform(-0.1, 0.1, size=5)
    sizes = np.array([[1280, 720], [1920, 1080], [640, 480]])
    fx = rng.uniform(500, 1500, size=n)
    cams = Cameras.create(ids, fx, fx * rng.uniform(0.98, 1.02, size=n), sizes[:, 0] / 2 + rng.uniform(-9, 9, n),
                          sizes[:, 1] / 2 + rng.uniform(-9, 9, n), poses, sizes, dist)
    return cams, rvecs


def caliscope_toml(cams: Cameras, rvecs: np.ndarray | None = None, extra: dict[int, str] | None = None) -> str:
    """A camera_array.toml as caliscope writes it (``cam_id =0``, K with OpenCV's pixel-centre origin)."""
    extra = extra or {}
    out = []
    for i, cam in enumerate(cams.to_opencv()):  # to_opencv: K[:2, 2] - 0.5, R, t world-to-camera
        rotation = rvecs[i].tolist() if rvecs is not None else cam["R"].tolist()
        out += [
            f"[cameras.{i}]", f"cam_id ={i}", extra.get(i, "rotation_count = 0"), "error = 0.4", "exposure = -6",
            "grid_count = 30", "ignore = false", f"size = {cam['size'].tolist()}", f"matrix = {cam['K'].tolist()}",
            f"distortions = {cam['dist'].tolist()}", f"translation = {cam['t'].tolist()}", f"rotation = {rotation}", "",
        ]
    return "\n".join(out)


def rig_layout_colmap(cams: Cameras, frames: int = 4, seed: int = 0):
    """A COLMAP model with one COLMAP camera per physical camera and ``frames`` images each, interleaved."""
    rec = pycolmap.Reconstruction()
    colmap_cams = cams.to_colmap()  # reuse its camera models/params
    for i in range(len(cams)):
        rec.add_camera_with_trivial_rig(colmap_cams.cameras[i + 1])
    image_id = 1
    for k in range(frames):
        for i, camera_id in enumerate(cams.camera_ids):
            pose = cams.world_to_camera[i]
            image = pycolmap.Image(name=f"{camera_id}/{k:06d}.png", camera_id=i + 1, image_id=image_id)
            rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(pose[:3, :3]), pose[:3, 3]))
            image_id += 1
    return rec


def turned(pose: np.ndarray, angle_deg: float) -> np.ndarray:
    """``pose`` turned by ``angle_deg`` about the camera's optical axis."""
    a = np.radians(angle_deg)
    spin = np.eye(4)
    spin[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return spin @ pose


@pytest.fixture(scope="module")
def rig() -> tuple[Cameras, np.ndarray]:
    return make_rig()


# ---- caliscope ----------------------------------------------------------------------------------


def test_caliscope_round_trip(rig, tmp_path):
    cams, _ = rig
    path = tmp_path / "camera_array.toml"
    path.write_text(caliscope_toml(cams))
    assert "cam_id =0\n" in path.read_text()
    calibration = read_caliscope(path)
    assert isinstance(calibration, Calibration)
    assert calibration.kind == "caliscope" and calibration.source == str(path.resolve())
    assert_same_cameras(cams, calibration.cameras)
    assert any("metres" in note for note in calibration.notes)
    assert not any("ignore" in note or "rotation_count" in note for note in calibration.notes)


def test_caliscope_rodrigues_rotation_as_newer_caliscope_writes(rig, tmp_path):
    cams, rvecs = rig
    path = tmp_path / "camera_array.toml"
    path.write_text(caliscope_toml(cams, rvecs=rvecs))
    assert "rotation = [[" not in path.read_text()
    assert_same_cameras(cams, read_caliscope(path).cameras)


def test_caliscope_legacy_top_level_tables_with_port(rig, tmp_path):
    cams, _ = rig
    text = caliscope_toml(cams).replace("[cameras.", "[cam_").replace("cam_id =", "port =")
    (tmp_path / "config.toml").write_text("[charuco]\ncolumns = 4\n\n" + text)
    assert_same_cameras(cams, read_caliscope(tmp_path / "config.toml").cameras)


def test_caliscope_ignored_camera_left_out_and_rotation_count_noted(rig, tmp_path):
    cams, _ = rig
    text = caliscope_toml(cams, extra={0: "rotation_count = 1"}).replace(
        "cam_id =2\nrotation_count = 0\nerror = 0.4\nexposure = -6\ngrid_count = 30\nignore = false",
        "cam_id =2\nrotation_count = 0\nerror = 0.4\nexposure = -6\ngrid_count = 30\nignore = true")
    (tmp_path / "camera_array.toml").write_text(text)
    calibration = read_caliscope(tmp_path)  # the folder holding it
    assert calibration.cameras.camera_ids == ("cam_0", "cam_1")
    assert_same_cameras(cams.select(["cam_0", "cam_1"]), calibration.cameras)
    ignored = [note for note in calibration.notes if "ignore" in note]
    assert len(ignored) == 1 and "cam_2" in ignored[0]
    rotated = [note for note in calibration.notes if "rotation_count" in note]
    assert len(rotated) == 1 and "cam_0 (1 x 90 deg, calibrated at 1280x720)" in rotated[0]
    assert "cam_1" not in rotated[0]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("translation = [", "# translation = [", 1), r"'cam_0'.*no rotation/translation"),
    (lambda t: t.replace("ignore = false", "ignore = false\nfisheye = true", 1), r"'cam_0'.*fisheye"),
    (lambda t: re.sub(r"rotation = \[\[.*\]\]", "rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]", t, count=1),
     r"'cam_0'.*rotation must be \[3, 3\].*got shape \[2, 3\]"),
    (lambda t: t.replace("ignore = false", "ignore = true"), "every camera is marked ignore"),
])
def test_caliscope_errors_name_the_camera(rig, tmp_path, edit, message):
    cams, _ = rig
    (tmp_path / "camera_array.toml").write_text(edit(caliscope_toml(cams)))
    with pytest.raises(ValueError, match=message):
        read_caliscope(tmp_path / "camera_array.toml")


def test_caliscope_non_rotation_matrix_rejected(rig, tmp_path):
    cams, _ = rig
    text = caliscope_toml(cams)
    R = cams.world_to_camera[1, :3, :3]
    text = text.replace(f"rotation = {R.tolist()}", f"rotation = {(1.01 * R).tolist()}")
    (tmp_path / "camera_array.toml").write_text(text)
    with pytest.raises(ValueError, match=r"'cam_1'.*is not a rotation"):
        read_caliscope(tmp_path / "camera_array.toml")


# ---- COLMAP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["binary", "text"])
def test_colmap_round_trip(rig, tmp_path, form):
    cams, _ = rig
    rec = cams.to_colmap()
    rec.write(tmp_path) if form == "binary" else rec.write_text(tmp_path)
    calibration = read_colmap_model(tmp_path)
    assert calibration.kind == "colmap" and calibration.source == str(tmp_path.resolve())
    assert_same_cameras(cams, calibration.cameras)
    assert not any("several images" in note for note in calibration.notes)


def test_colmap_rig_layout_gives_one_camera_per_folder(rig, tmp_path):
    cams, _ = rig
    rig_layout_colmap(cams, frames=4).write(tmp_path)
    reread = pycolmap.Reconstruction(tmp_path)
    assert reread.num_images() == 12 and reread.num_cameras() == 3
    calibration = read_colmap_model(tmp_path)
    assert_same_cameras(cams, calibration.cameras)
    grouped = [note for note in calibration.notes if "several images" in note]
    assert len(grouped) == 1 and "cam_0 (4), cam_1 (4), cam_2 (4)" in grouped[0]


@pytest.mark.parametrize("change, allowed", [("turn_0.1deg", False), ("turn_0.001deg", True),
                                             ("move_1e-4_extent", False), ("move_1e-8_extent", True)])
def test_colmap_one_camera_must_keep_one_pose(rig, tmp_path, change, allowed):
    cams, _ = rig
    rec = rig_layout_colmap(cams, frames=3)
    image = next(im for im in rec.images.values() if im.name == "cam_1/000002.png")
    pose = cams.world_to_camera[1].copy()
    extent = np.linalg.norm(np.ptp(cams.centers, axis=0))
    if change.startswith("turn"):
        pose = turned(pose, float(change.split("_")[1][:-3]))
    else:
        pose[:3, 3] -= pose[:3, :3] @ np.array([1.0, 0.0, 0.0]) * float(change.split("_")[1]) * extent
    image.frame.rig_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(pose[:3, :3]), pose[:3, 3])
    np.testing.assert_allclose(image.cam_from_world().matrix(), pose[:3], atol=1e-12)
    rec.write(tmp_path)
    if allowed:
        assert_same_cameras(cams, read_colmap_model(tmp_path).cameras)
    else:
        with pytest.raises(ValueError, match=r"camera 'cam_1' has 3 images whose poses differ.*cam_1/000002.*moving"):
            read_colmap_model(tmp_path)


def test_colmap_one_camera_must_keep_one_intrinsics(rig, tmp_path):
    cams, _ = rig
    rec = rig_layout_colmap(cams, frames=2)
    other = pycolmap.Camera(model="PINHOLE", width=1920, height=1080, params=[900, 900, 960, 540], camera_id=9)
    rec.add_camera_with_trivial_rig(other)
    pose = cams.world_to_camera[1]
    image = pycolmap.Image(name="cam_1/000009.png", camera_id=9, image_id=99)
    rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(pose[:3, :3]), pose[:3, 3]))
    rec.write(tmp_path)
    with pytest.raises(ValueError, match=r"camera 'cam_1'.*other intrinsics"):
        read_colmap_model(tmp_path)


def test_colmap_project_folder_with_sparse_0(rig, tmp_path):
    cams, _ = rig
    model = tmp_path / "project" / "sparse" / "0"
    model.mkdir(parents=True)
    cams.to_colmap().write(model)
    (tmp_path / "project" / "database.db").write_bytes(b"")
    for read in (read_colmap_model, read_calibration):
        calibration = read(tmp_path / "project")
        assert calibration.kind == "colmap" and calibration.source == str(model.resolve())
        assert_same_cameras(cams, calibration.cameras)
        assert any("sparse/0" in note for note in calibration.notes)


# ---- nerfstudio and reshoot JSON ----------------------------------------------------------------


def test_transforms_round_trip(rig, tmp_path):
    cams, _ = rig
    applied = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]])
    data = cams.to_nerfstudio(file_paths=[f"images/{c}/000001.png" for c in cams.camera_ids], applied_transform=applied)
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    calibration = read_transforms(tmp_path / "transforms.json")
    assert calibration.kind == "nerfstudio"
    assert_same_cameras(cams, calibration.cameras)
    assert any("applied_transform" in note for note in calibration.notes)


def test_transforms_rig_layout_groups_by_folder_and_checks_poses(rig, tmp_path):
    cams, _ = rig
    frames = []
    for k in range(3):
        data = cams.to_nerfstudio(file_paths=[f"./images/{c.replace('_', '')}/{k:06d}.png" for c in cams.camera_ids])
        frames += [{key: v for key, v in f.items() if key != "reshoot_camera_id"} for f in data["frames"]]
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({"camera_model": "OPENCV", "frames": frames}))
    calibration = read_transforms(path)
    assert calibration.cameras.camera_ids == ("cam0", "cam1", "cam2")
    assert np.abs(calibration.cameras.world_to_camera - cams.world_to_camera).max() <= TOL
    c2w = np.array(frames[4]["transform_matrix"])  # frame 4: cam1's second image, turned by 1 deg
    frames[4]["transform_matrix"] = (c2w @ np.linalg.inv(turned(np.eye(4), 1.0))).tolist()
    path.write_text(json.dumps({"camera_model": "OPENCV", "frames": frames}))
    with pytest.raises(ValueError, match=r"camera 'cam1' has 3 images whose poses differ.*images/cam1/000001.png"):
        read_transforms(path)


@pytest.mark.parametrize("file_path, camera_id", [
    ("images/cam0.png", "cam0"), ("cam0.png", "cam0"), ("images_2/cam_3/000001.jpg", "cam_3"),
    ("cam0/000012.png", "cam0"), ("/data/shoot/images/cam5/0001.png", "cam5"), ("/data/cam7/0001.png", "cam7"),
])
def test_transforms_camera_id_from_file_path(rig, tmp_path, file_path, camera_id):
    cams = rig[0].select(["cam_1"])
    data = cams.to_nerfstudio(file_paths=[file_path])
    del data["frames"][0]["reshoot_camera_id"]
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    calibration = read_transforms(tmp_path)
    assert calibration.cameras.camera_ids == (camera_id,)
    np.testing.assert_allclose(calibration.cameras.world_to_camera, cams.world_to_camera, atol=TOL)


def test_reshoot_cameras_json_round_trip(rig, tmp_path):
    cams, _ = rig
    (tmp_path / "cameras.json").write_text(json.dumps(cams.to_json()))
    calibration = read_calibration(tmp_path / "cameras.json")
    assert calibration.kind == "reshoot" and calibration.notes == ()
    assert_same_cameras(cams, calibration.cameras)


# ---- dispatch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["caliscope", "colmap", "nerfstudio", "reshoot"])
@pytest.mark.parametrize("as_folder", [False, True])
def test_read_calibration_dispatches_each_kind(rig, tmp_path, kind, as_folder):
    cams, _ = rig
    if kind == "caliscope":
        path = tmp_path / "camera_array.toml"
        path.write_text(caliscope_toml(cams))
    elif kind == "colmap":
        path = tmp_path
        cams.to_colmap().write_text(tmp_path)
    elif kind == "nerfstudio":
        path = tmp_path / "transforms.json"
        path.write_text(json.dumps(cams.to_nerfstudio()))
    else:
        path = tmp_path / "cameras.json"
        path.write_text(json.dumps(cams.to_json()))
    calibration = read_calibration(tmp_path if as_folder else path)
    assert calibration.kind == kind
    assert_same_cameras(cams, calibration.cameras)


@pytest.mark.parametrize("name, content", [
    ("notes.txt", "hello"), ("other.json", '{"cameras": [{"name": "a"}]}'), ("empty", None),
])
def test_read_calibration_unknown_input_lists_kinds(tmp_path, name, content):
    path = tmp_path / name
    path.mkdir() if content is None else path.write_text(content)
    with pytest.raises(ValueError) as err:
        read_calibration(path)
    message = str(err.value)
    assert str(path) in message
    for kind in ("caliscope", "colmap", "nerfstudio", "reshoot"):
        assert kind in message


def test_read_calibration_refuses_a_folder_with_two_calibrations(rig, tmp_path):
    cams, _ = rig
    (tmp_path / "camera_array.toml").write_text(caliscope_toml(cams))
    (tmp_path / "cameras.json").write_text(json.dumps(cams.to_json()))
    with pytest.raises(ValueError, match="several calibrations.*camera_array.toml.*cameras.json"):
        read_calibration(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing is there"):
        read_calibration(tmp_path / "missing.toml")


# ---- matching to the footage --------------------------------------------------------------------


def calibration_of(cams: Cameras) -> Calibration:
    return Calibration(cams, "/calib/camera_array.toml", "caliscope", ())


def test_match_cameras_exact_and_normalised(rig):
    cams, _ = rig
    calibration = calibration_of(cams)
    exact = match_cameras(calibration, ["cam_2", "cam_0"])
    assert_same_cameras(cams.select(["cam_2", "cam_0"]), exact)
    loose = match_cameras(calibration, ["CAM-1", "cam0", "Cam 2"])  # footage names kept, calibrated values
    assert loose.camera_ids == ("CAM-1", "cam0", "Cam 2")
    np.testing.assert_array_equal(loose.K, cams.K[[1, 0, 2]])
    np.testing.assert_array_equal(loose.world_to_camera, cams.world_to_camera[[1, 0, 2]])
    np.testing.assert_array_equal(loose.distortion, cams.distortion[[1, 0, 2]])


def test_match_cameras_missing_lists_the_calibrated_ids(rig):
    calibration = calibration_of(rig[0])
    with pytest.raises(ValueError, match=r"\['cam9', 'gopro'\].*\['cam_0', 'cam_1', 'cam_2'\].*ingest --names"):
        match_cameras(calibration, ["cam0", "cam9", "gopro"])


def test_match_cameras_ambiguous_or_shared_is_an_error(rig):
    cams, _ = rig
    twins = Cameras(("cam_0", "cam0", "cam_1"), cams.K, cams.distortion, cams.world_to_camera, cams.image_size)
    assert match_cameras(calibration_of(twins), ["cam0"]).camera_ids == ("cam0",)  # exact wins
    with pytest.raises(ValueError, match=r"'CAM-0' matches several calibrated cameras \['cam_0', 'cam0'\]"):
        match_cameras(calibration_of(twins), ["CAM-0"])
    with pytest.raises(ValueError, match=r"\['cam1', 'CAM_1'\] all match calibrated camera 'cam_1'"):
        match_cameras(calibration_of(cams), ["cam1", "CAM_1"])


# ---- real data: caliscope's own sample sessions (mprib/caliscope tests/sessions) ------------------


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def observations(xy: dict[str, np.ndarray], points: dict[tuple[int, int, int], np.ndarray], camera: int):
    """xy.csv rows of ``camera`` joined with ``points`` on (sync_index, object_id, keypoint_id)."""
    keys = zip(xy["sync_index"].astype(int), xy["object_id"].astype(int), xy["keypoint_id"].astype(int))
    rows = [i for i, key in enumerate(keys) if int(xy["cam_id"][i]) == camera and key in points]
    sync, obj, kp = (xy[k][rows].astype(int) for k in ("sync_index", "object_id", "keypoint_id"))
    world = np.array([points[key] for key in zip(sync, obj, kp)])
    pixels = np.column_stack([xy["img_loc_x"][rows], xy["img_loc_y"][rows]]).astype(float)
    return world, pixels


@needs_caliscope
def test_caliscope_real_camera_array():
    calibration = read_calibration(CALISCOPE / "post_optimization" / "camera_array.toml")
    cams = calibration.cameras
    assert calibration.kind == "caliscope"
    assert cams.camera_ids == ("cam_0", "cam_1", "cam_2", "cam_3")
    np.testing.assert_array_equal(cams.image_size, [[1280, 720]] * 4)
    assert cams.K[0, 0, 0] == 903.550124089999
    assert cams.K[0, 0, 2] == pytest.approx(618.3086297620227 + 0.5, abs=1e-12)
    np.testing.assert_array_equal(cams.distortion[0], [-0.3320992998866297, 0.04641968621160267, -0.004295771569519648,
                                                        0.004113240100199701, 0.0665682301495769])
    R = cams.world_to_camera[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-6)
    centres = cams.centers
    print("caliscope camera centres (m):", dict(zip(cams.camera_ids, np.round(centres, 3).tolist())))
    spread = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    assert 0.3 < spread[spread > 0].min() and spread.max() < 3.0  # webcams around one room
    # the legacy config.toml of the same session holds the same calibration in [cam_N] tables
    assert_same_cameras(cams, read_caliscope(CALISCOPE / "post_optimization" / "config.toml").cameras, tol=0.0)


@needs_caliscope
def test_caliscope_real_reprojection_of_its_bundle_adjusted_points():
    """xy.csv holds OpenCV (pixel-centre) coordinates: project, then compare with xy + 0.5."""
    cams = read_caliscope(CALISCOPE / "post_optimization" / "camera_array.toml").cameras
    ext = CALISCOPE / "post_optimization" / "calibration" / "extrinsic"
    xy, xyz = read_csv(ext / "xy.csv"), read_csv(ext / "CHARUCO" / "xyz_CHARUCO.csv")
    points = {(int(s), int(o), int(k)): np.array([x, y, z], dtype=float)
              for s, o, k, x, y, z in zip(*(xyz[c] for c in ("sync_index", "object_id", "keypoint_id",
                                                            "x_coord", "y_coord", "z_coord")))}
    medians, residuals = {}, []
    for i, camera_id in enumerate(cams.camera_ids):
        world, pixels = observations(xy, points, i)
        assert len(world) > 300
        projected, depth = cams.project(i, world)
        assert (depth > 0).all()
        residual = projected - (pixels + 0.5)
        medians[camera_id] = float(np.median(np.linalg.norm(residual, axis=1)))
        residuals.append(residual)
    print("median reprojection error (px) against xyz_CHARUCO:", {k: round(v, 3) for k, v in medians.items()})
    assert all(m < 2.0 for m in medians.values())
    # the 0.5 px origin: bundle adjustment leaves no mean offset in the convention it worked in
    mean = np.concatenate(residuals).mean(axis=0)
    assert np.abs(mean).max() < 0.2  # xy.csv read as pixel-centre coordinates
    assert (mean + 0.5).min() > 0.3  # read as pixel-corner coordinates, both axes would be off by ~0.5


@needs_caliscope
def test_caliscope_real_stereotriangulated_points_live_in_camera_2s_frame():
    """stereotriangulated_points.csv is caliscope's initial stereo estimate, in its anchor camera's frame."""
    cams = read_caliscope(CALISCOPE / "post_optimization" / "camera_array.toml").cameras
    ext = CALISCOPE / "post_optimization" / "calibration" / "extrinsic"
    xy, stereo = read_csv(ext / "xy.csv"), read_csv(ext / "stereotriangulated_points.csv")
    by_point: dict[tuple[int, int, int], list[np.ndarray]] = {}
    columns = ("sync_index", "object_id", "keypoint_id", "x_pos", "y_pos", "z_pos")
    for s, o, k, x, y, z in zip(*(stereo[c] for c in columns)):
        by_point.setdefault((int(s), int(o), int(k)), []).append(np.array([x, y, z], dtype=float))
    local = {key: np.mean(v, axis=0) for key, v in by_point.items()}  # one per point: the mean over camera pairs

    def medians(frame_to_world: np.ndarray) -> list[float]:
        out = []
        for i in range(len(cams)):
            world, pixels = observations(xy, local, i)
            projected, _ = cams.project(i, world @ frame_to_world[:3, :3].T + frame_to_world[:3, 3])
            out.append(float(np.median(np.linalg.norm(projected - (pixels + 0.5), axis=1))))
        return out

    as_world = medians(np.eye(4))
    in_cam_2 = medians(cams.camera_to_world[cams.index("cam_2")])
    print("stereotriangulated points, median error (px) read as world:", np.round(as_world, 1),
          "read in cam_2's frame:", np.round(in_cam_2, 3))
    assert min(as_world) > 100  # not the calibration's world
    assert max(in_cam_2) < 3.0


@needs_caliscope
def test_caliscope_real_rotation_count_is_noted():
    calibration = read_calibration(CALISCOPE / "4_cam_recording" / "camera_array.toml")
    assert calibration.cameras.camera_ids == ("cam_0", "cam_1", "cam_2", "cam_3")
    (note,) = [n for n in calibration.notes if "rotation_count" in n]
    assert "cam_1 (-1 x 90 deg, calibrated at 1280x720)" in note and "cam_2 (1 x 90 deg" in note
    assert "cam_0" not in note and "cam_3" not in note
    # this session's world is cam_1's frame, before caliscope moved the origin to the board
    np.testing.assert_allclose(calibration.cameras.world_to_camera[1], np.eye(4), atol=0.01)
