"""The Alembic camera, read back with the Alembic library's reader (not reshoot's writer) and reprojected to the pixel.

The reader is PyAlembic's ``IArchive`` (the ``alembic3d`` wheel of the Alembic extra): every sample's time,
transform, focal length, apertures and film offsets. The pixels are computed from those values alone with
Alembic's camera model (Maya's): the screen window from the apertures and film offsets, the focal length over
half the horizontal aperture, in Alembic's +Y-up world. The expected pixels are reshoot's ``K @ [R | t]``.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from reshoot.alembic_camera import alembic_available, alembic_name, write_alembic_camera
from reshoot.cameras import look_at

W, H, F = 160, 90, 12
SKIP_REASON = "the Alembic extra is not installed: pip install 'reshoot[alembic]' (the alembic3d wheel)"


def _project(pose, K, points):  # pixels [P, 2], pixel-corner origin: reshoot's K @ [R | t]
    cam = points @ pose[:3, :3].T + pose[:3, 3]
    return (cam @ K.T)[:, :2] / cam[:, 2:]


def _points_in_view(pose, K, n=12, seed=0):  # [n, 3] world points that land inside the image at depths 1-10
    rng = np.random.default_rng(seed)
    pixels = rng.uniform([0, 0], [W, H], (n, 2))
    depth = rng.uniform(1, 10, (n, 1))
    cam = np.hstack([(pixels - K[:2, 2]) / [K[0, 0], K[1, 1]], np.ones((n, 1))]) * depth
    return (cam - pose[:3, 3]) @ pose[:3, :3]


def _shot(zoom: bool):
    """A crane move with an off-centre principal point; with ``zoom`` the focal length changes every frame."""
    poses = np.stack([look_at([4.0 - 0.4 * k, -3.0 + 0.2 * k, 1.6 + 0.15 * k], [0.0, 0.3 * k, 0.8]) for k in range(F)])
    focal = 120.0 + (6.0 * np.arange(F) if zoom else 0.0)
    K = np.array([[[f, 0.0, 83.5], [0.0, f, 41.25], [0.0, 0.0, 1.0]] for f in np.broadcast_to(focal, F)])
    return poses, K


def _read_back(path: Path) -> dict:
    """Everything the camera file says, through PyAlembic's reader only."""
    alembic = pytest.importorskip("alembic3d", reason=SKIP_REASON)
    Abc, AbcGeom = alembic.Abc, alembic.AbcGeom
    archive = Abc.IArchive(str(path))
    (xform,) = archive.getTop().children
    (camera,) = xform.children
    xform_schema = AbcGeom.IXform(xform, Abc.WrapExistingFlag.kWrapExisting).getSchema()
    camera_schema = AbcGeom.ICamera(camera, Abc.WrapExistingFlag.kWrapExisting).getSchema()
    times, matrices, lenses, windows = [], [], [], []
    for idx in range(camera_schema.getNumSamples()):
        time = camera_schema.getTimeSampling().getSampleTime(idx)
        select = Abc.ISampleSelector(time)  # by time: ISampleSelector(int) is taken as seconds, not as an index
        lens = camera_schema.getValue(select)
        times.append(time)
        matrices.append([list(row) for row in xform_schema.getValue(select).getMatrix()])
        lenses.append([lens.getFocalLength(), lens.getHorizontalAperture(), lens.getVerticalAperture(),
                       lens.getHorizontalFilmOffset(), lens.getVerticalFilmOffset(), lens.getLensSqueezeRatio(),
                       lens.getNearClippingPlane(), lens.getFarClippingPlane()])
        window = lens.getScreenWindow()
        windows.append([window["top"], window["bottom"], window["left"], window["right"]])
    xform_sampling, xform_samples = xform_schema.getTimeSampling(), xform_schema.getNumSamples()
    return {"names": [xform.getName(), camera.getName()], "times": np.array(times), "matrices": np.array(matrices),
            "lens": np.array(lenses), "library_windows": np.array(windows),
            "xform_samples": xform_samples, "camera_samples": camera_schema.getNumSamples(),
            "xform_times": [xform_sampling.getSampleTime(idx) for idx in range(xform_samples)],
            "info": Abc.GetArchiveInfo(archive)}


def _alembic_pixels(camera_to_world_imath, lens, points_yup):  # pixels [P, 2], screen window [4]
    """Pixels of world points from the values in the file only, by Alembic's (Maya's) camera model: the screen
    window spans the horizontal aperture as [-1, 1], shifted by the film offsets (in units of half the horizontal
    aperture); a camera point (x, y, z) lands at focal / (half the aperture) * (x, y) / -z on it."""
    focal_mm, h_aperture_cm, v_aperture_cm, h_offset_cm, v_offset_cm = lens[:5]
    half_width_cm = h_aperture_cm / 2
    left, right = -1 + h_offset_cm / half_width_cm, 1 + h_offset_cm / half_width_cm
    top, bottom = (v_aperture_cm / 2 + v_offset_cm) / half_width_cm, (-v_aperture_cm / 2 + v_offset_cm) / half_width_cm
    # Imath matrices act on row vectors (p' = p M): camera-to-world, the translation in the last row
    cam = np.hstack([points_yup, np.ones((len(points_yup), 1))]) @ np.linalg.inv(camera_to_world_imath)
    scale = focal_mm / (half_width_cm * 10)
    x, y = scale * cam[:, 0] / -cam[:, 2], scale * cam[:, 1] / -cam[:, 2]
    pixels = np.stack([(x - left) / (right - left) * W, (top - y) / (top - bottom) * H], axis=1)
    return pixels, [top, bottom, left, right]


@pytest.mark.parametrize("fps, zoom", [(Fraction(24), False), (Fraction(30000, 1001), True)])
def test_alembic_library_reads_every_sample_to_the_pixel(tmp_path, fps, zoom):
    pytest.importorskip("alembic3d", reason=SKIP_REASON)
    poses, K = _shot(zoom)
    path = write_alembic_camera(tmp_path / "shot.abc", poses, K, (W, H), fps, first_frame=1001, sensor_width_mm=24.0,
                                name="shot", clipping_range=(0.1, 500.0))
    assert path == tmp_path / "shot.abc" and [p.name for p in tmp_path.iterdir()] == ["shot.abc"], "no temporary files"
    read = _read_back(path)
    assert read["names"] == ["shot", "shotShape"]
    assert read["xform_samples"] == read["camera_samples"] == F
    expected_times = [float(Fraction(1001 + k) / fps) for k in range(F)]  # (first_frame + k) / fps seconds
    np.testing.assert_allclose(read["times"], expected_times, rtol=1e-13, atol=0)
    np.testing.assert_allclose(read["xform_times"], expected_times, rtol=1e-13, atol=0)
    assert read["info"]["appName"].startswith("reshoot ") and read["info"]["dccFPS"] == pytest.approx(float(fps))

    focal_mm, h_aperture_cm, v_aperture_cm, h_offset_cm, v_offset_cm, squeeze, near, far = read["lens"].T
    np.testing.assert_allclose(focal_mm, K[:, 0, 0] * 24.0 / W, rtol=1e-12)  # fx * sensor width / image width, mm
    np.testing.assert_allclose(h_aperture_cm, 2.4, rtol=1e-12)
    np.testing.assert_allclose(v_aperture_cm, 2.4 * H / W, rtol=1e-12)
    np.testing.assert_allclose(h_offset_cm, (W / 2 - 83.5) * 2.4 / W, rtol=1e-12)
    np.testing.assert_allclose(v_offset_cm, (41.25 - H / 2) * 2.4 / W, rtol=1e-12)
    assert (squeeze == 1).all() and (near == 0.1).all() and (far == 500.0).all()
    if zoom:
        assert len(np.unique(focal_mm)) == F, "a zoom: one focal length per frame"

    zup_to_yup = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # (x, y, z) -> (x, z, -y): the file's world is +Y up
    for k in range(F):
        camera_to_world = np.linalg.inv(poses[k])  # OpenCV axes: the file's camera looks down -Z with +Y up
        expected = (zup_to_yup @ camera_to_world[:3, :3] * [1, -1, -1], zup_to_yup @ camera_to_world[:3, 3])
        np.testing.assert_allclose(read["matrices"][k][:3, :3].T, expected[0], atol=1e-12)
        np.testing.assert_allclose(read["matrices"][k][3, :3], expected[1], atol=1e-12)
        points = _points_in_view(poses[k], K[k], seed=k)
        pixels, window = _alembic_pixels(read["matrices"][k], read["lens"][k], points @ zup_to_yup.T)
        np.testing.assert_allclose(window, read["library_windows"][k], atol=1e-12)  # the library's own screen window
        assert np.abs(pixels - _project(poses[k], K[k], points)).max() < 0.01


def test_rewrites_a_file_whole(tmp_path):
    pytest.importorskip("alembic3d", reason=SKIP_REASON)
    poses, K = _shot(zoom=False)
    path = tmp_path / "out" / "shot.abc"
    write_alembic_camera(path, poses, K[0], (W, H), 24, first_frame=1)
    write_alembic_camera(path, poses[:3], K[0], (W, H), 24, first_frame=1)  # shorter: nothing of the first is left
    read = _read_back(path)
    assert read["camera_samples"] == 3 and read["names"] == ["reshootCamera", "reshootCameraShape"]
    np.testing.assert_allclose(read["times"], [1 / 24, 2 / 24, 3 / 24], rtol=1e-13)
    assert [p.name for p in path.parent.iterdir()] == ["shot.abc"]


def test_refuses_non_square_pixels_and_names_the_frame(tmp_path):
    poses, K = _shot(zoom=False)
    K[3, 1, 1] += 1.0
    with pytest.raises(ValueError, match="frame 1004 has fx = 120.0 != fy = 121.0"):
        write_alembic_camera(tmp_path / "shot.abc", poses, K, (W, H), 24)
    assert not list(tmp_path.iterdir())


def test_one_K_for_all_frames_and_clear_errors(tmp_path):
    poses, K = _shot(zoom=False)
    with pytest.raises(ValueError, match=r"\.abc file"):
        write_alembic_camera(tmp_path / "shot.usda", poses, K[0], (W, H), 24)
    with pytest.raises(ValueError, match="name 'my shot'"):
        write_alembic_camera(tmp_path / "shot.abc", poses, K[0], (W, H), 24, name="my shot")
    with pytest.raises(ValueError, match=r"fps 29\.97 is a float"):
        write_alembic_camera(tmp_path / "shot.abc", poses, K[0], (W, H), 29.97)
    with pytest.raises(ValueError, match=r"K: expected shape \[12, 3, 3\]"):
        write_alembic_camera(tmp_path / "shot.abc", poses, K[:2], (W, H), 24)
    assert [alembic_name(s) for s in ("my shot", "010_new", "shöt.v2")] == ["my_shot", "camera_010_new", "sh_t_v2"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("installed", ["nothing", "the 0.0.1 placeholder"])
def test_missing_extra_names_the_extra(tmp_path, monkeypatch, installed):
    for module in [m for m in sys.modules if m.startswith("alembic3d.")]:
        monkeypatch.delitem(sys.modules, module)
    if installed == "nothing":
        monkeypatch.setitem(sys.modules, "alembic3d", None)  # None in sys.modules: `import` raises ImportError
    else:  # alembic3d 0.0.1 on PyPI only reserves the name: a package without Abc, AbcGeom, ...
        placeholder = ModuleType("alembic3d")
        placeholder.__path__ = []
        monkeypatch.setitem(sys.modules, "alembic3d", placeholder)
    assert not alembic_available()
    poses, K = _shot(zoom=False)
    with pytest.raises(ImportError, match=r"shot\.abc: format 'abc' needs the Alembic extra: "
                                          r"pip install 'reshoot\[alembic\]'"):
        write_alembic_camera(tmp_path / "shot.abc", poses, K, (W, H), 24)
    assert not list(tmp_path.iterdir())
