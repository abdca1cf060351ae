"""Colour management: names, conversions and colour-managed EXRs, checked against OpenColorIO's own transforms.

The expected values come from OpenColorIO processors built here, straight from the built-in config, and the
chromaticities and ACES container rules from the standards (SMPTE ST 2065-1, S-2014-004, ST 2065-4), written out
rather than taken from reshoot.colour.
"""

from __future__ import annotations

import numpy as np
import pytest

from reshoot import colour
from reshoot.cameras import look_at
from reshoot.deliver import write_exr_sequence
from reshoot.stages.export import ExportConfig

OCIO = pytest.importorskip("PyOpenColorIO")
OpenEXR = pytest.importorskip("OpenEXR")

W, H = 24, 16
AP1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)  # ACEScg primaries and white (S-2014-004)
AP0 = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.0770, 0.32168, 0.33767)  # ACES2065-1 (SMPTE ST 2065-1)
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)


def _ocio(rgb: np.ndarray, source: str, target: str) -> np.ndarray:
    """OpenColorIO's own answer, from the built-in config, with nothing of reshoot in between."""
    config = OCIO.Config.CreateFromBuiltinConfig("studio-config-v2.2.0_aces-v1.3_ocio-v2.4")
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    config.getProcessor(source, target).getDefaultCPUProcessor().applyRGB(out)
    return out


@pytest.fixture(scope="module")
def srgb_frames():
    """Two seeded sRGB frames: a grey ramp, the primaries and secondaries, and noise."""
    rng = np.random.default_rng(3)
    frames = [rng.random((H, W, 3)).astype(np.float32) for _ in range(2)]
    frames[0][0] = np.linspace(0, 1, W, dtype=np.float32)[:, None]
    frames[0][1, :8] = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 0]]
    return frames


def _cameras(n: int = 2):
    poses = np.stack([look_at([4.0, -3.0 + k, 1.6], [0.0, 0.0, 0.8]) for k in range(n)])
    K = np.array([[[20.0, 0.0, W / 2], [0.0, 20.0, H / 2], [0.0, 0.0, 1.0]]] * n)
    return {"world_to_camera": poses, "K": K, "image_size": (W, H), "fps": 24}


def _rgb(path) -> np.ndarray:
    channels = OpenEXR.File(str(path), separate_channels=True).channels()
    return np.stack([channels[c].pixels for c in "RGB"], axis=-1).astype(np.float64)


def _attributes(path) -> list[tuple[str, str]]:
    """(name, type) of every attribute in the file's header, as stored."""
    data, position, found = path.read_bytes(), 8, []
    while data[position] != 0:
        name_end = data.index(b"\0", position)
        type_end = data.index(b"\0", name_end + 1)
        found.append((data[position:name_end].decode(), data[name_end + 1:type_end].decode()))
        position = type_end + 5 + int.from_bytes(data[type_end + 1:type_end + 5], "little")
    return found


# ---- names and conversions ------------------------------------------------------------------------


def test_names_and_aliases_resolve_to_the_configs_names():
    assert colour.colourspace_name("acescg") == "ACEScg"
    assert colour.colourspace_name("sRGB") == colour.SRGB == "sRGB Encoded Rec.709 (sRGB)"
    assert colour.colourspace_name("slog3_sgamut3cine") == "S-Log3 S-Gamut3.Cine"
    assert colour.footage_colourspace("ARRI LogC3 (EI800)") == "ARRI LogC3 (EI800)"
    assert colour.footage_colourspace("vlog_vgamut") == "V-Log V-Gamut"
    spaces = colour.footage_colourspaces()
    assert {"ACEScg", "S-Log3 S-Gamut3", "ARRI LogC4", colour.SRGB, colour.LINEAR_REC709} <= set(spaces)
    assert "Raw" not in spaces and not any(s.endswith("- Display") for s in spaces)


def test_bad_names_are_refused_naming_the_value_and_listing_the_names():
    with pytest.raises(colour.ColourError, match=r"^camera 'B': 'SLog3' is not a colourspace .*did you mean "
                                                 r"'S-Log3 S-Gamut3'.*'ACEScg'.*'V-Log V-Gamut'"):
        colour.footage_colourspace("SLog3", "camera 'B'")
    with pytest.raises(colour.ColourError, match=r"'sRGB - Display' .* is a display or data space.*'ACEScg'"):
        colour.footage_colourspace("sRGB - Display")
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\].*\[4, 4\]"):
        colour.convert(np.zeros((4, 4)), "sRGB", "ACEScg")


@pytest.mark.parametrize("target", ["ACEScg", "ACES2065-1", "Linear Rec.709 (sRGB)", "S-Log3 S-Gamut3.Cine"])
def test_convert_matches_opencolorio_and_comes_back(srgb_frames, target):
    frame = srgb_frames[0]
    converted = colour.convert(frame, "sRGB", target)
    assert converted.dtype == np.float32 and converted.shape == frame.shape
    np.testing.assert_allclose(converted, _ocio(frame, "sRGB Encoded Rec.709 (sRGB)", target), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(colour.convert(converted, target, "sRGB"), frame, atol=1e-4)
    assert not np.shares_memory(converted, frame)


def test_footage_to_srgb_leaves_srgb_alone_and_converts_log_as_opencolorio_does():
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert colour.footage_to_srgb(frame, colour.SRGB) is frame  # the default: bit for bit, no conversion
    assert colour.footage_to_srgb(frame, colour.LINEAR_REC709, srgb_encoded=True) is frame  # an EXR of linear 709
    log = colour.footage_to_srgb(frame, "S-Log3 S-Gamut3.Cine")
    expected = np.clip(_ocio(frame / 255.0, "S-Log3 S-Gamut3.Cine", "sRGB Encoded Rec.709 (sRGB)"), 0, 1) * 255
    assert log.dtype == np.uint8 and np.abs(log.astype(float) - expected).max() <= 0.51  # rounding; OCIO fast path


# ---- EXR ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("space, ocio_name, chromaticities", [("ACEScg", "ACEScg", AP1),
                                                              ("ACES2065-1", "ACES2065-1", AP0),
                                                              ("lin_rec709", "Linear Rec.709 (sRGB)", REC709)])
def test_exr_holds_the_space_opencolorio_gives_and_names_it(tmp_path, srgb_frames, space, ocio_name, chromaticities):
    paths = write_exr_sequence(tmp_path, srgb_frames, colourspace=space, **_cameras())
    for path, frame in zip(paths, srgb_frames):
        expected = _ocio(frame, "sRGB Encoded Rec.709 (sRGB)", ocio_name)
        np.testing.assert_allclose(_rgb(path), expected, rtol=1e-3, atol=1e-4)  # half: 11-bit mantissa
        header = OpenEXR.File(str(path), header_only=True).header()
        np.testing.assert_allclose(header["chromaticities"], chromaticities, atol=1e-6)
        assert header["reshoot/colorspace"] == header["oiio:ColorSpace"] == ocio_name
        assert ocio_name in header["reshoot/colour"] and "acesImageContainerFlag" not in header
        assert header["compression"] == OpenEXR.ZIP_COMPRESSION


def test_exr_acescg_white_is_one_and_alpha_is_premultiplied_after_the_conversion(tmp_path, srgb_frames):
    alpha = [np.full((H, W), 0.25, np.float32), np.linspace(0, 1, W * H, dtype=np.float32).reshape(H, W)]
    paths = write_exr_sequence(tmp_path, srgb_frames, alpha=alpha, **_cameras())
    exr = OpenEXR.File(str(paths[0]), separate_channels=True).channels()
    assert exr["R"].pixels[1, 6] == exr["G"].pixels[1, 6] == exr["B"].pixels[1, 6] == np.float16(0.25)  # white
    for path, frame, a in zip(paths, srgb_frames, alpha):
        expected = _ocio(frame, "sRGB Encoded Rec.709 (sRGB)", "ACEScg") * a[..., None]
        np.testing.assert_allclose(_rgb(path), expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("compression", ["zip", "piz", "dwab", "none"])
def test_exr_compression_is_as_asked(tmp_path, srgb_frames, compression):
    depth = [np.random.default_rng(k).uniform(0.5, 9, (H, W)).astype(np.float32) for k in range(2)]
    path = write_exr_sequence(tmp_path, srgb_frames, depth=depth, compression=compression, **_cameras())[0]
    exr = OpenEXR.File(str(path), separate_channels=True)
    assert exr.header()["compression"] == getattr(OpenEXR, f"{compression.upper()}_COMPRESSION"
                                                  if compression != "none" else "NO_COMPRESSION")
    expected = _ocio(srgb_frames[0], "sRGB Encoded Rec.709 (sRGB)", "ACEScg")
    lossy = compression == "dwab"  # DWA is lossy on R, G, B (a few per cent), lossless on other channels
    np.testing.assert_allclose(_rgb(path), expected, rtol=0.1 if lossy else 1e-3, atol=0.02 if lossy else 1e-4)
    np.testing.assert_array_equal(exr.channels()["Z"].pixels, depth[0])


def test_aces_container_follows_st_2065_4(tmp_path, srgb_frames):
    alpha = [np.full((H, W), 0.5, np.float32)] * 2
    paths = write_exr_sequence(tmp_path, srgb_frames, alpha=alpha, colourspace="ACES2065-1", compression="none",
                               aces_container=True, start_timecode="01:00:00:00", **_cameras())
    for path, frame in zip(paths, srgb_frames):
        data = path.read_bytes()
        assert data[:4] == b"\x76\x2f\x31\x01" and int.from_bytes(data[4:8], "little") == 2  # single-part scanline
        attributes = dict(_attributes(path))
        assert "type" not in attributes  # OpenEXR 2's attribute: ST 2065-4 is the OpenEXR 1.x layout
        assert all(len(name) <= 31 for name in attributes)  # version 2: short names only
        allowed = {"box2i", "chlist", "chromaticities", "compression", "double", "float", "half", "int", "lineOrder",
                   "keycode", "rational", "short", "string", "stringVector", "timecode", "unsignedChar",
                   "unsignedInt", "unsignedLong", "unsignedShort", "v2f", "v3f"}  # ST 2065-4's attribute types
        assert set(attributes.values()) <= allowed, attributes
        assert {"acesImageContainerFlag", "adoptedNeutral", "channels", "chromaticities", "compression", "dataWindow",
                "displayWindow", "lineOrder", "pixelAspectRatio", "screenWindowCenter",
                "screenWindowWidth"} <= set(attributes)
        exr = OpenEXR.File(str(path), separate_channels=True)
        header, channels = exr.header(), exr.channels()
        assert header["acesImageContainerFlag"] == 1
        np.testing.assert_allclose(header["adoptedNeutral"], [0.32168, 0.33767], atol=1e-6)
        np.testing.assert_allclose(header["chromaticities"], AP0, atol=1e-6)
        assert header["compression"] == OpenEXR.NO_COMPRESSION and header["lineOrder"] == OpenEXR.INCREASING_Y
        assert sorted(channels) == ["A", "B", "G", "R"] and all(c.type() == OpenEXR.HALF for c in channels.values())
        assert header["oiio:ColorSpace"] == "ACES2065-1" and header["reshoot/timecode"].startswith("01:00:00:")
        expected = _ocio(frame, "sRGB Encoded Rec.709 (sRGB)", "ACES2065-1") * 0.5
        np.testing.assert_allclose(_rgb(path), expected, rtol=1e-3, atol=1e-4)


def test_aces_container_refuses_what_st_2065_4_does_not_allow(tmp_path, srgb_frames):
    cameras = _cameras()
    with pytest.raises(ValueError, match="ACES2065-1 and uncompressed.*'ACEScg'"):
        write_exr_sequence(tmp_path, srgb_frames, aces_container=True, compression="none", **cameras)
    with pytest.raises(ValueError, match="ACES2065-1 and uncompressed.*'zip'"):
        write_exr_sequence(tmp_path, srgb_frames, colourspace="ACES2065-1", aces_container=True, **cameras)
    with pytest.raises(ValueError, match="only R, G, B and A; leave depth out"):
        write_exr_sequence(tmp_path, srgb_frames, depth=[np.ones((H, W))] * 2, colourspace="ACES2065-1",
                           compression="none", aces_container=True, **cameras)
    with pytest.raises(ValueError, match=r"colourspace 'ACEScc' is not one .*\['ACEScg', 'ACES2065-1'"):
        write_exr_sequence(tmp_path, srgb_frames, colourspace="ACEScc", **cameras)
    with pytest.raises(ValueError, match=r"compression 'b44' is not one of \['zip', 'piz', 'dwab', 'none'\]"):
        write_exr_sequence(tmp_path, srgb_frames, compression="b44", **cameras)
    assert not list(tmp_path.iterdir())


def test_export_config_chooses_acescg_zip_by_default_and_checks_the_container():
    assert ExportConfig().exr_settings() == ("ACEScg", "zip")
    assert ExportConfig(exr_colourspace="lin_rec709", exr_compression="piz").exr_settings() == ("lin_rec709", "piz")
    assert ExportConfig(aces_container=True).exr_settings() == ("ACES2065-1", "none")
    with pytest.raises(ValueError, match="--aces-container writes ACES2065-1 .*not --exr-colourspace ACEScg"):
        ExportConfig(aces_container=True, exr_colourspace="ACEScg")
    with pytest.raises(ValueError, match="--aces-container files are uncompressed .*not --exr-compression dwab"):
        ExportConfig(aces_container=True, exr_compression="dwab")
    with pytest.raises(ValueError, match=r"--exr-colourspace 'sRGB' is not one of \['auto', 'ACEScg'"):
        ExportConfig(exr_colourspace="sRGB")


def test_log_footage_comes_back_to_opencolorios_acescg_through_reshoots_srgb(tmp_path):
    """Ingest's conversion (S-Log3 to 8-bit sRGB), then export's (sRGB to ACEScg EXR): OCIO's S-Log3 to ACEScg,
    up to 8-bit precision, wherever nothing clipped."""
    rng = np.random.default_rng(9)
    grey = rng.integers(330, 580, (H, W, 1))  # 10-bit S-Log3 codes about mid grey, with a little colour
    log = (grey + rng.integers(-25, 26, (H, W, 3))).astype(np.float32) / 1023
    srgb = colour.footage_to_srgb(np.round(log * 255).astype(np.uint8), "S-Log3 S-Gamut3.Cine")
    path = write_exr_sequence(tmp_path, [srgb], **_cameras(1))[0]
    truth = _ocio(np.round(log * 255) / 255, "S-Log3 S-Gamut3.Cine", "ACEScg")
    inside = ((srgb > 30) & (srgb < 250)).all(axis=-1)  # not clipped, and away from the steep dark end
    assert inside.mean() > 0.5
    np.testing.assert_allclose(_rgb(path)[inside], truth[inside], rtol=0.03, atol=2e-3)
