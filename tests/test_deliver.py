"""Deliverables: PNG and EXR sequences, H.264 / ProRes movies and the USD camera, read back with other readers.

Conventions are checked against the formats' own documentation, written out here rather than by
calling reshoot's conversions: OpenEXR's worldToCamera is a row-vector matrix into RenderMan camera
space (x right, y up, z forward); USD's camera looks down -Z with +Y up and row-vector matrices.
"""

from __future__ import annotations

import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest

from reshoot.cameras import look_at
from reshoot.deliver import write_exr_sequence, write_png_sequence, write_shot_video, write_usd_camera
from reshoot.sync import parse_timecode

OpenEXR = pytest.importorskip("OpenEXR")
av = pytest.importorskip("av")

W, H, F = 64, 36, 5


@pytest.fixture(scope="module")
def shot():
    """5 seeded frames with alpha and depth, and a dolly of 5 poses with slightly varying intrinsics."""
    rng = np.random.default_rng(7)
    frames = [rng.random((H, W, 3)).astype(np.float32) for _ in range(F)]
    alpha = [rng.random((H, W)).astype(np.float32) for _ in range(F)]
    depth = [rng.uniform(0.5, 20.0, (H, W)).astype(np.float32) for _ in range(F)]
    poses = np.stack([look_at([4.0 - 0.5 * k, -3.0, 1.6 + 0.1 * k], [0.0, 0.5 * k, 0.8]) for k in range(F)])
    K = np.array([[[55.0 + k, 0.0, 31.0 + 0.5 * k], [0.0, 57.0 + k, 17.5 - 0.25 * k], [0.0, 0.0, 1.0]]
                  for k in range(F)])
    return {"frames": frames, "alpha": alpha, "depth": depth, "poses": poses, "K": K}


def _project(pose, K, points):  # pixels [P, 2], pixel-corner origin, from reshoot's (OpenCV) convention
    cam = points @ pose[:3, :3].T + pose[:3, 3]
    return (cam @ K.T)[:, :2] / cam[:, 2:]


def _points_in_view(pose, K, n=20, seed=0):
    """World points that project inside the image at depths 1-10."""
    rng = np.random.default_rng(seed)
    pixels = rng.uniform([0, 0], [W, H], (n, 2))
    depth = rng.uniform(1, 10, (n, 1))
    cam = np.hstack([(pixels - K[:2, 2]) / [K[0, 0], K[1, 1]], np.ones((n, 1))]) * depth
    return (cam - pose[:3, 3]) @ pose[:3, :3]  # R^T (x - t)


# ---- PNG ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_sequence_reads_back_within_quantisation(tmp_path, shot, bit_depth):
    paths = write_png_sequence(tmp_path, shot["frames"], bit_depth=bit_depth, alpha=shot["alpha"])
    assert [p.name for p in paths] == [f"shot.{1001 + k}.png" for k in range(F)]
    top, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    for path, frame, alpha in zip(paths, shot["frames"], shot["alpha"]):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.dtype == dtype and image.shape == (H, W, 4)
        rgba = image[..., [2, 1, 0, 3]].astype(np.float64) / top  # OpenCV reads BGRA
        assert np.abs(rgba[..., :3] - frame).max() <= 0.5 / top + 1e-7
        assert np.abs(rgba[..., 3] - alpha).max() <= 0.5 / top + 1e-7
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_png_sequence_rgb_uint8_and_frame_number_padding(tmp_path):
    frame = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    paths = write_png_sequence(tmp_path / "a", [frame, frame], first_frame=7, name="plate")
    assert [p.name for p in paths] == ["plate.0007.png", "plate.0008.png"]
    np.testing.assert_array_equal(cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED)[..., ::-1], frame)
    assert write_png_sequence(tmp_path / "b", [frame], first_frame=12345)[0].name == "shot.12345.png"


# ---- EXR ----------------------------------------------------------------------------------------


def _srgb_decode(v):  # IEC 61966-2-1
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def test_exr_channels_pixels_and_camera_header(tmp_path, shot):
    paths = write_exr_sequence(
        tmp_path, shot["frames"], alpha=shot["alpha"], depth=shot["depth"], world_to_camera=shot["poses"],
        K=shot["K"], image_size=(W, H), fps=Fraction(24000, 1001), start_timecode="00:59:59:22",
        colourspace="lin_rec709")  # the sRGB EOTF alone (ACEScg and the rest: test_colour.py)
    assert [p.name for p in paths] == [f"shot.{1001 + k}.exr" for k in range(F)]
    for k, path in enumerate(paths):
        exr = OpenEXR.File(str(path), separate_channels=True)
        channels, header = exr.channels(), exr.header()
        assert sorted(channels) == ["A", "B", "G", "R", "Z"]
        assert all(channels[c].type() == OpenEXR.HALF for c in "RGBA")
        assert channels["Z"].type() == OpenEXR.FLOAT
        rgb = np.stack([channels[c].pixels for c in "RGB"], axis=-1).astype(np.float64)
        alpha = shot["alpha"][k].astype(np.float64)
        expected = _srgb_decode(shot["frames"][k].astype(np.float64)) * alpha[..., None]  # linear, premultiplied
        np.testing.assert_allclose(rgb, expected, rtol=1e-3, atol=1e-4)  # half: 11-bit mantissa
        np.testing.assert_allclose(channels["A"].pixels, alpha, rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(channels["Z"].pixels, shot["depth"][k])

        # worldToCamera: row vectors into RenderMan camera space (x right, y up, z forward).
        M = np.asarray(header["worldToCamera"], dtype=np.float64)
        pose_opencv = np.diag([1.0, -1.0, 1.0, 1.0]) @ M.T  # flip y back down, columns again
        np.testing.assert_allclose(pose_opencv, shot["poses"][k], atol=1e-5)
        points = _points_in_view(shot["poses"][k], shot["K"][k], seed=k)
        in_camera = np.hstack([points, np.ones((len(points), 1))]) @ M
        assert (in_camera[:, 2] > 0).all(), "points in view are at +z in OpenEXR camera space"
        above = np.hstack([points + [0, 0, 1.0], np.ones((len(points), 1))]) @ M  # world +Z is up
        assert (above[:, 1] > in_camera[:, 1]).all(), "world up is camera +y for an upright camera"
        # worldToNDC: (0, 0) top-left, (1, 1) bottom-right, after dividing by w.
        ndc = np.hstack([points, np.ones((len(points), 1))]) @ np.asarray(header["worldToNDC"], dtype=np.float64)
        np.testing.assert_allclose(ndc[:, :2] / ndc[:, 3:] * [W, H], _project(shot["poses"][k], shot["K"][k], points),
                                   atol=2e-3)

        timecode = header["timeCode"]
        start = (59 * 60 + 59) * 24 + 22  # 00:59:59:22 at 24 fps nominal
        seconds, frame = divmod(start + k, 24)
        assert (timecode.hours, timecode.minutes, timecode.seconds, timecode.frame) == (
            seconds // 3600, seconds // 60 % 60, seconds % 60, frame)
        assert not timecode.dropFrame
        assert header["framesPerSecond"] == Fraction(24000, 1001)
        assert header["reshoot/frame"] == 1001 + k
        np.testing.assert_array_equal(header["reshoot/world_to_camera_opencv"], shot["poses"][k])
        np.testing.assert_array_equal(header["reshoot/K"], shot["K"][k])
        assert header["reshoot/colorspace"] == "Linear Rec.709 (sRGB)" and "scene-linear" in header["reshoot/colour"]
        np.testing.assert_allclose(header["chromaticities"], (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
                                   atol=1e-6)  # Rec.709 primaries, D65
    assert OpenEXR.File(str(paths[2]), header_only=True).header()["reshoot/timecode"] == "01:00:00:00"


def test_exr_as_given_without_linearising(tmp_path, shot):
    path = write_exr_sequence(tmp_path, shot["frames"][:1], world_to_camera=shot["poses"][:1], K=shot["K"][:1],
                              image_size=(W, H), fps=25, colourspace="sRGB")[0]
    exr = OpenEXR.File(str(path))
    assert sorted(exr.channels()) == ["RGB"]  # read back interleaved: R, G, B only, no alpha or depth
    np.testing.assert_allclose(exr.channels()["RGB"].pixels, shot["frames"][0], rtol=1e-3, atol=1e-4)
    assert exr.header()["reshoot/colorspace"] == "sRGB Encoded Rec.709 (sRGB)"
    assert "not linear" in exr.header()["reshoot/colour"]
    assert "timeCode" not in exr.header()

    # Fortran-ordered inputs (the OpenEXR binding reads memory in C order whatever the strides) give the same file.
    path = write_exr_sequence(tmp_path / "f", [np.asfortranarray(shot["frames"][0])],
                              world_to_camera=np.asfortranarray(shot["poses"][:1]), K=np.asfortranarray(shot["K"][:1]),
                              image_size=(W, H), fps=25, colourspace="sRGB")[0]
    other = OpenEXR.File(str(path))
    np.testing.assert_array_equal(other.channels()["RGB"].pixels, exr.channels()["RGB"].pixels)
    for key in ("worldToCamera", "worldToNDC", "reshoot/world_to_camera_opencv", "reshoot/K"):
        np.testing.assert_array_equal(other.header()[key], exr.header()[key])


def test_exr_timecode_above_30_fps_counts_frame_pairs(tmp_path, shot):
    paths = write_exr_sequence(tmp_path, shot["frames"][:3], world_to_camera=shot["poses"][:3], K=shot["K"][:3],
                               image_size=(W, H), fps=50, start_timecode="10:00:00:48")
    headers = [OpenEXR.File(str(p), header_only=True).header() for p in paths]
    assert [h["reshoot/timecode"] for h in headers] == ["10:00:00:48", "10:00:00:49", "10:00:01:00"]
    fields = [(h["timeCode"].seconds, h["timeCode"].frame, h["timeCode"].fieldPhase) for h in headers]
    assert fields == [(0, 24, False), (0, 24, True), (1, 0, False)]  # SMPTE ST 12-1 frame pairs above 30 fps


def test_exr_drop_frame_timecode_counts_across_the_minute(tmp_path, shot):
    rate = Fraction(30000, 1001)
    paths = write_exr_sequence(tmp_path, shot["frames"], world_to_camera=shot["poses"], K=shot["K"],
                               image_size=(W, H), fps=rate, start_timecode="00:00:59;28")
    headers = [OpenEXR.File(str(p), header_only=True).header() for p in paths]
    labels = [h["reshoot/timecode"] for h in headers]
    assert labels == ["00:00:59;28", "00:00:59;29", "00:01:00;02", "00:01:00;03", "00:01:00;04"]
    start = parse_timecode(labels[0], rate)
    for k, (label, header) in enumerate(zip(labels, headers)):
        assert parse_timecode(label, rate) == pytest.approx(start + k / rate, abs=1e-9)
        tc = header["timeCode"]
        assert tc.dropFrame and f"00:{tc.minutes:02d}:{tc.seconds:02d};{tc.frame:02d}" == label


def test_exr_bad_inputs_name_the_frame_and_leave_the_folder_alone(tmp_path, shot):
    kwargs = dict(world_to_camera=shot["poses"], K=shot["K"], image_size=(W, H), fps=24)
    good = write_exr_sequence(tmp_path, shot["frames"], **kwargs)
    before = {p: p.read_bytes() for p in good}
    broken = [f.copy() for f in shot["frames"]]
    broken[2][5, 7, 1] = np.nan
    with pytest.raises(ValueError, match=r"pixels of frame 1003 \(index 2\) has 1 non-finite .*x=7, y=5"):
        write_exr_sequence(tmp_path, broken, **kwargs)
    assert {p: p.read_bytes() for p in good} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in good)  # no partial files

    with pytest.raises(ValueError, match="4 frames for 5 poses"):
        write_exr_sequence(tmp_path / "short", shot["frames"][:4], **kwargs)
    with pytest.raises(ValueError, match=r"more frames than the 5 poses.*1006"):
        write_exr_sequence(tmp_path / "long", shot["frames"] + shot["frames"][:1], **kwargs)
    with pytest.raises(ValueError, match=r"alpha ran out at frame 1004"):
        write_exr_sequence(tmp_path / "alpha", shot["frames"], alpha=shot["alpha"][:3], **kwargs)
    depth = [d.copy() for d in shot["depth"]]
    depth[1][3, 2] = -np.inf
    with pytest.raises(ValueError, match=r"depth of frame 1002 \(index 1\) has 1 non-finite"):
        write_exr_sequence(tmp_path / "depth", shot["frames"], depth=depth, **kwargs)
    with pytest.raises(ValueError, match=r"expected 64x36.*\[36, 60\]"):
        write_exr_sequence(tmp_path / "size", [f[:, :60] for f in shot["frames"]], **kwargs)
    for name in ("short", "long", "alpha", "depth", "size"):
        assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())

    skewed = shot["K"].copy()
    skewed[3, 0, 1] = 0.5
    with pytest.raises(ValueError, match=r"K of frame 1004"):
        write_exr_sequence(tmp_path, shot["frames"], **{**kwargs, "K": skewed})
    scaled = shot["poses"].copy()
    scaled[1, :3, :3] *= 2
    with pytest.raises(ValueError, match=r"world_to_camera of frame 1002 .*not a rigid"):
        write_exr_sequence(tmp_path, shot["frames"], **{**kwargs, "world_to_camera": scaled})
    with pytest.raises(ValueError, match="float"):
        write_exr_sequence(tmp_path, shot["frames"], **{**kwargs, "fps": 23.976})
    with pytest.raises(ValueError, match="drop-frame"):
        write_exr_sequence(tmp_path, shot["frames"], **kwargs, start_timecode="01:00:00;00")


def test_exr_depth_may_be_infinite_where_nothing_was_hit(tmp_path, shot):
    depth = shot["depth"][0].copy()
    depth[:4] = np.inf
    path = write_exr_sequence(tmp_path, shot["frames"][:1], depth=[depth], world_to_camera=shot["poses"][:1],
                              K=shot["K"][:1], image_size=(W, H), fps=24)[0]
    np.testing.assert_array_equal(OpenEXR.File(str(path), separate_channels=True).channels()["Z"].pixels, depth)


# ---- movies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec, suffix, decoder", [("h264", ".mp4", "h264"), ("prores", ".mov", "prores")])
def test_movie_decodes_with_rate_codec_timecode_and_colour(tmp_path, codec, suffix, decoder):
    rate = Fraction(24000, 1001)
    colours = [(200, 60, 30), (30, 160, 220), (128, 128, 128), (240, 230, 40), (10, 20, 30)]
    frames = [np.broadcast_to(np.array(c, np.float32) / 255, (H, W, 3)) for c in colours]
    path = tmp_path / f"shot{suffix}"
    assert write_shot_video(path, frames, rate, codec=codec, start_timecode="01:00:00:00") == F
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == decoder
        assert video.average_rate == rate
        assert (video.width, video.height) == (W, H)
        assert video.metadata.get("timecode") == "01:00:00:00"
        context = video.codec_context  # tagged BT.709 (FFmpeg's AVCOL_*_BT709 = 1), limited range (MPEG = 1)
        assert (context.color_primaries, context.color_trc, context.colorspace, context.color_range) == (1, 1, 1, 1)
        assert [s.metadata.get("timecode") for s in container.streams.data] == ["01:00:00:00"]  # the tmcd track
        if codec == "prores":
            assert video.codec_context.pix_fmt == "yuv422p10le" and video.codec_context.profile == "Standard"
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert b"tmcd" in path.read_bytes()
    assert len(decoded) == F
    for image, colour in zip(decoded, colours):  # BT.709 matrix both ways: saturated colours come back
        assert np.abs(image[H // 2, W // 2].astype(int) - colour).max() <= 3


def test_movie_drop_frame_timecode_and_uint8_frames(tmp_path):
    path = tmp_path / "ntsc.mov"
    frames = [np.full((H, W, 3), 16 * k, np.uint8) for k in range(3)]
    assert write_shot_video(path, frames, Fraction(30000, 1001), start_timecode="00:59:59;29") == 3
    with av.open(str(path)) as container:
        assert container.streams.video[0].metadata["timecode"] == "00:59:59;29"
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_movie_bad_inputs_raise_clearly_and_leave_no_file(tmp_path):
    even = [np.zeros((H, W, 3), np.uint8)] * 3
    with pytest.raises(ValueError, match=r"63x36.*even width and height"):
        write_shot_video(tmp_path / "odd.mp4", [np.zeros((H, 63, 3), np.uint8)], 24)
    with pytest.raises(ValueError, match=r"\.mov"):
        write_shot_video(tmp_path / "a.mp4", even, 24, codec="prores")
    with pytest.raises(ValueError, match="codec 'dnxhd'"):
        write_shot_video(tmp_path / "a.mov", even, 24, codec="dnxhd")
    nan = [f.astype(np.float32) for f in even]
    nan[1] = nan[1].copy()
    nan[1][0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"pixels of frame index 1 has 1 non-finite"):
        write_shot_video(tmp_path / "nan.mp4", nan, 24)
    with pytest.raises(ValueError, match=r"index 2: expected 64x36"):
        write_shot_video(tmp_path / "size.mp4", even[:2] + [np.zeros((H + 2, W, 3), np.uint8)], 24)
    with pytest.raises(ValueError, match="no frames"):
        write_shot_video(tmp_path / "empty.mp4", [], 24)
    from reshoot.media import write_video

    with pytest.raises(ValueError, match="cannot write a.mkv: the FFmpeg inside PyAV .* has no 'libnotacodec' encoder"):
        write_video(tmp_path / "a.mkv", even, 24, codec="libnotacodec")
    assert list(tmp_path.iterdir()) == []


# ---- USD ----------------------------------------------------------------------------------------


def test_usd_camera_gives_back_poses_and_intrinsics(tmp_path, shot):
    pytest.importorskip("pxr")
    from pxr import Usd, UsdGeom

    path = write_usd_camera(tmp_path / "camera.usda", shot["poses"], shot["K"], (W, H), Fraction(24000, 1001))
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert stage.GetTimeCodesPerSecond() == pytest.approx(24000 / 1001)
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1001, 1005)
    prim = stage.GetDefaultPrim()
    assert prim.GetPath() == "/reshootCamera" and prim.IsA(UsdGeom.Camera)
    camera = UsdGeom.Camera(prim)
    assert camera.GetOrderedXformOps()[0].GetAttr().GetTimeSamples() == [1001.0 + k for k in range(F)]
    for k in range(F):
        time = Usd.TimeCode(1001 + k)
        pose, K = shot["poses"][k], shot["K"][k]
        # USD: row vectors, the camera looks down its -Z axis with +Y up.
        c2w = np.array(camera.ComputeLocalToWorldTransform(time))
        centre = -pose[:3, :3].T @ pose[:3, 3]
        np.testing.assert_allclose(c2w[3, :3], centre, atol=1e-9)
        np.testing.assert_allclose(-c2w[2, :3], pose[2, :3], atol=1e-9)  # viewing direction: OpenCV's +z row
        np.testing.assert_allclose(c2w[1, :3], -pose[1, :3], atol=1e-9)  # up: OpenCV's -y
        focal = camera.GetFocalLengthAttr().Get(time)
        assert focal / camera.GetHorizontalApertureAttr().Get(time) * W == pytest.approx(K[0, 0], rel=1e-6)
        assert focal / camera.GetVerticalApertureAttr().Get(time) * H == pytest.approx(K[1, 1], rel=1e-6)
        assert camera.GetHorizontalApertureAttr().Get(time) == pytest.approx(0.36)  # 36 mm in tenths of a metre
        # Gf's own frustum (apertures, offsets, transform) projects points where K does.
        frustum = camera.GetCamera(time).frustum
        view_projection = np.array(frustum.ComputeViewMatrix()) @ np.array(frustum.ComputeProjectionMatrix())
        points = _points_in_view(pose, K, seed=k)
        clip = np.hstack([points, np.ones((len(points), 1))]) @ view_projection
        ndc = clip[:, :2] / clip[:, 3:]
        pixels = np.stack([(ndc[:, 0] + 1) / 2 * W, (1 - ndc[:, 1]) / 2 * H], axis=1)
        np.testing.assert_allclose(pixels, _project(pose, K, points), atol=1e-3)


def test_usd_camera_y_up_and_bad_inputs(tmp_path, shot, monkeypatch):
    pytest.importorskip("pxr")
    from pxr import Usd, UsdGeom

    path = write_usd_camera(tmp_path / "y.usda", shot["poses"], shot["K"], (W, H), 24, up_axis="Y", first_frame=1)
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    camera = UsdGeom.Camera(stage.GetDefaultPrim())
    c2w = np.array(camera.ComputeLocalToWorldTransform(Usd.TimeCode(1)))
    x, y, z = -shot["poses"][0, :3, :3].T @ shot["poses"][0, :3, 3]
    np.testing.assert_allclose(c2w[3, :3], [x, z, -y], atol=1e-9)  # Z-up (x, y, z) is Y-up (x, z, -y)

    with pytest.raises(ValueError, match=r"K: expected shape \[5, 3, 3\]"):
        write_usd_camera(tmp_path / "c.usda", shot["poses"], shot["K"][:4], (W, H), 24)
    bad = shot["poses"].copy()
    bad[4, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"world_to_camera of frame 1005 \(index 4\) is not finite"):
        write_usd_camera(tmp_path / "c.usda", bad, shot["K"], (W, H), 24)
    with pytest.raises(ValueError, match=r"\.usda"):
        write_usd_camera(tmp_path / "c.abc", shot["poses"], shot["K"], (W, H), 24)
    assert not (tmp_path / "c.usda").exists()

    monkeypatch.setitem(sys.modules, "pxr", None)  # as if usd-core were not installed
    with pytest.raises(ImportError, match="pip install usd-core"):
        write_usd_camera(tmp_path / "c.usda", shot["poses"], shot["K"], (W, H), 24)
