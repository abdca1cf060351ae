"""Ingest: a synced, frame-accurate shoot from unsynced camera files, checked against ground truth."""

from __future__ import annotations

import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import TINY, shared_data
from reshoot.cameras import Cameras
from reshoot.footage import FootageError, probe_source, read_image
from reshoot.media import read_video_frames, write_video
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.sync import SyncError
from reshoot.workspace import Workspace


def _truth(shoot) -> dict[str, float]:
    return {c["camera_id"]: c["start_offset_s"] for c in shoot.ground_truth["cameras"] if c["role"] == "set"}


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def audio_ingest(tiny_shoot, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("ws") / "ws")
    return run_ingest(ws, list(tiny_shoot.videos.values()), IngestConfig(sync="audio"))


def test_frame_n_of_every_camera_shows_the_same_instant(tiny_shoot, audio_ingest):
    footage = json.loads((audio_ingest.path / "footage.json").read_text())
    truth = _truth(tiny_shoot)
    timeline = footage["timeline"]
    assert timeline["frame_count"] > 0
    decoded = {c: list(read_video_frames(p)) for c, p in tiny_shoot.videos.items()}
    for n in range(timeline["frame_count"]):
        instants = {c: truth[c] + timeline["source_frames"][c][n] / TINY.fps for c in truth}
        assert max(instants.values()) - min(instants.values()) < 1e-9, (n, instants)  # the same instant, exactly
        for c in truth:  # and the extracted file is that source frame, losslessly
            extracted = _png(audio_ingest.path / "frames" / c / f"{n:06d}.png")
            np.testing.assert_array_equal(extracted, decoded[c][timeline["source_frames"][c][n]])
    # the default range is exactly the overlap: it starts with the last camera to roll, ends with the first to stop
    starts = {c: truth[c] - truth["cam0"] for c in truth}
    assert timeline["overlap_s"][0] == pytest.approx(max(starts.values()), abs=1e-3)


def test_audio_offsets_match_the_ground_truth_within_a_millisecond(tiny_shoot, audio_ingest):
    summary = audio_ingest.manifest["summary"]
    truth = _truth(tiny_shoot)
    for camera_id, found in summary["offsets_s"].items():
        assert found == pytest.approx(truth[camera_id] - truth["cam0"], abs=1e-3)
        info = summary["sync"]["cameras"][camera_id]
        assert info["confidence"] == "audio"
        assert camera_id == "cam0" or info["peak_ratio"] > 2.0


def test_outputs_contact_sheet_and_manifest(tiny_shoot, audio_ingest):
    sheet = _png(audio_ingest.path / "contact_sheet.png")
    assert sheet.shape[0] > 3 * TINY.height and sheet.std() > 30
    manifest = audio_ingest.manifest
    assert set(manifest["timings_s"]) >= {"probe", "sync", "extract", "total"}
    assert set(manifest["inputs"]) == {str(p.resolve()) for p in tiny_shoot.videos.values()}
    footage = json.loads((audio_ingest.path / "footage.json").read_text())
    cam = footage["cameras"][0]
    assert (cam["fps"], cam["width"], cam["height"], cam["audio_rate_hz"]) == ("24/1", 96, 54, 48000)
    assert cam["start_timecode"] == tiny_shoot.ground_truth["cameras"][0]["start_timecode"]


def test_timecode_manual_and_audio_sync_agree(tiny_shoot, audio_ingest, tmp_path):
    truth = _truth(tiny_shoot)
    videos = list(tiny_shoot.videos.values())
    by_timecode = run_ingest(Workspace(tmp_path / "tc"), videos, IngestConfig(sync="timecode", max_frames=2))
    frames = {c: round((truth[c] - truth["cam0"]) * TINY.fps) for c in truth}
    manual = IngestConfig(sync="manual", offsets=tuple(f"{c}={f}f" for c, f in frames.items()), max_frames=2)
    by_hand = run_ingest(Workspace(tmp_path / "manual"), videos, manual)
    audio_frames = audio_ingest.manifest["summary"]["offsets_s"]
    for c in truth:
        expected = truth[c] - truth["cam0"]
        assert by_timecode.manifest["summary"]["offsets_s"][c] == pytest.approx(expected, abs=1e-9)
        assert by_hand.manifest["summary"]["offsets_s"][c] == pytest.approx(expected, abs=1e-9)
        assert round(audio_frames[c] * TINY.fps) == frames[c]


def test_rerun_is_skipped_force_reruns_and_sources_are_untouched(tiny_shoot, tmp_path):
    videos = list(tiny_shoot.videos.values())
    before = {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in videos}
    ws = Workspace(tmp_path / "ws")
    config = IngestConfig(sync="timecode", max_frames=3, image_format="jpg", scale=0.5, step=2)
    first = run_ingest(ws, videos, config)
    assert run_ingest(ws, videos, config).skipped
    assert not run_ingest(ws, videos, config, force=True).skipped
    assert after_hash(videos) == before
    footage = json.loads((first.path / "footage.json").read_text())
    assert footage["timeline"]["frame_count"] == 3
    np.testing.assert_allclose(np.diff(footage["timeline"]["times_s"]), 2 / TINY.fps)
    image = np.asarray(Image.open(first.path / "frames" / "cam1" / "000002.jpg"))
    assert image.shape == (27, 48, 3)


def after_hash(paths):
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


def test_image_sequence_and_other_frame_rates(tiny_shoot, tmp_path):
    """A PNG sequence beside a 29.97 fps re-timing of a camera: rates are exact, frames map by time."""
    cam1 = list(read_video_frames(tiny_shoot.videos["cam1"]))
    folder = tmp_path / "cam1_plates"
    folder.mkdir()
    for k, frame in enumerate(cam1):
        Image.fromarray(frame).save(folder / f"plate.{k + 1001:04d}.png")
    ntsc = tmp_path / "cam0_ntsc.mov"
    write_video(ntsc, list(read_video_frames(tiny_shoot.videos["cam0"])), Fraction(30000, 1001))
    source = probe_source(ntsc)
    assert source.fps == Fraction(30000, 1001) and not source.variable_frame_rate
    result = run_ingest(Workspace(tmp_path / "ws"), [ntsc, folder],
                        IngestConfig(sync="none", names=("cam0", "cam1"), sequence_fps="24"))
    footage = json.loads((result.path / "footage.json").read_text())
    assert footage["cameras"][1]["kind"] == "sequence" and footage["cameras"][1]["frame_count"] == len(cam1)
    assert footage["timeline"]["fps"] == "30000/1001"
    times = np.array(footage["timeline"]["times_s"])
    np.testing.assert_array_equal(footage["timeline"]["source_frames"]["cam1"], np.round(times * 24 - 1e-9))
    np.testing.assert_array_equal(_png(result.path / "frames" / "cam1" / "000000.png"), cam1[0])


def test_display_rotation_is_applied(tmp_path):
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for k in range(6):
            image = np.zeros((32, 64, 3), np.uint8)
            image[:8, :8] = 255  # a white square in the top-left corner, as stored
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = run_ingest(Workspace(tmp_path / "ws"), [path], IngestConfig(sync="none"))
    frame = _png(result.path / "frames" / "phone" / "000000.png")
    assert frame.shape == (64, 32, 3)
    assert frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50  # rotated 90 degrees counter-clockwise


def test_variable_frame_rate_is_mapped_by_timestamps_with_a_warning(tmp_path):
    path = tmp_path / "vfr.mkv"
    times_ms = [0, 40, 80, 150, 190, 260, 300, 340]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * k, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        container.mux(stream.encode(None))
    source = probe_source(path)
    assert source.variable_frame_rate
    np.testing.assert_allclose(source.frame_times_s, np.array(times_ms) / 1000, atol=1e-3)
    with pytest.warns(UserWarning, match="variable frame rate"):
        result = run_ingest(Workspace(tmp_path / "ws"), [path], IngestConfig(sync="none", fps="25"))
    footage = json.loads((result.path / "footage.json").read_text())
    assert any("variable frame rate" in w and "vfr.mkv" in w for w in footage["warnings"])
    times = np.array(footage["timeline"]["times_s"])
    nearest = [int(np.argmin(np.abs(np.array(times_ms) / 1000 - t))) for t in times]
    assert footage["timeline"]["source_frames"]["vfr"] == nearest


# ---- bad input: a clear error naming the file or camera, and nothing half-written ---------------------------

def _assert_nothing_written(ws: Workspace):
    assert not (ws.root / "ingest").exists()
    assert list((ws.root / ".reshoot" / "tmp").glob("*")) == [] if (ws.root / ".reshoot" / "tmp").exists() else True


def test_corrupt_and_truncated_files_are_named(tiny_shoot, tmp_path):
    junk = tmp_path / "cam9.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    cut = tmp_path / "cam8.mov"
    cut.write_bytes(tiny_shoot.videos["cam0"].read_bytes()[:3000])
    for bad in (junk, cut):
        ws = Workspace(tmp_path / f"ws-{bad.stem}")
        with pytest.raises(FootageError, match=bad.name) as err:
            run_ingest(ws, [tiny_shoot.videos["cam1"], bad], IngestConfig(sync="none"))
        assert "copy it again" in str(err.value).lower() or "damaged" in str(err.value)
        _assert_nothing_written(ws)


def test_audio_sync_of_a_camera_without_audio_names_it(tiny_shoot, tmp_path):
    silent_film = tmp_path / "camB.mov"
    write_video(silent_film, list(read_video_frames(tiny_shoot.videos["cam1"])), 24)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(FootageError, match=r"'camB'.*no audio.*--sync timecode"):
        run_ingest(ws, [tiny_shoot.videos["cam0"], silent_film], IngestConfig(sync="audio"))
    _assert_nothing_written(ws)


def test_audio_that_does_not_match_is_refused_naming_the_camera(tiny_shoot, tmp_path):
    other_take = tmp_path / "camC.mov"
    noise = (np.random.default_rng(3).standard_normal(48000 * 2) * 3000).astype(np.int16)
    write_video(other_take, list(read_video_frames(tiny_shoot.videos["cam1"])), 24, noise, 48000)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(SyncError, match="camC"):
        run_ingest(ws, [tiny_shoot.videos["cam0"], other_take], IngestConfig(sync="audio"))
    _assert_nothing_written(ws)


def test_no_overlap_lists_every_camera_span(tiny_shoot, tmp_path):
    ws = Workspace(tmp_path / "ws")
    videos = list(tiny_shoot.videos.values())[:2]
    with pytest.raises(SyncError, match=r"cam0.*cam1|cam1.*cam0"):
        run_ingest(ws, videos, IngestConfig(sync="manual", offsets=("cam1=60s",)))
    _assert_nothing_written(ws)


def test_mismatched_durations_warn_naming_the_file(tiny_shoot, tmp_path):
    frames = list(read_video_frames(tiny_shoot.videos["cam1"]))
    long_take, short = tmp_path / "cam_long.mov", tmp_path / "cam_short.mov"
    write_video(long_take, [frames[k % len(frames)] for k in range(24 * 4)], 24)  # 4 s
    write_video(short, [frames[k % len(frames)] for k in range(24)], 24)  # 1 s
    with pytest.warns(UserWarning, match="cam_short.mov.*less than half"):
        result = run_ingest(Workspace(tmp_path / "ws"), [long_take, short], IngestConfig(sync="none", max_frames=2))
    assert any("cam_short.mov" in w for w in result.manifest["summary"]["warnings"])
    footage = json.loads((result.path / "footage.json").read_text())
    assert footage["timeline"]["overlap_s"] == pytest.approx([0.0, 1.0])


def test_other_bad_requests_are_explained(tiny_shoot, tmp_path):
    videos = list(tiny_shoot.videos.values())
    ws = Workspace(tmp_path / "ws")
    cases = [
        ((videos[0], videos[0]), IngestConfig(sync="none"), "both be camera 'cam0'.*--names"),
        ((videos[0], tmp_path / "nope.mov"), IngestConfig(sync="none"), "nope.mov does not exist"),
        ((videos[0],), IngestConfig(sync="none", names=("a", "b")), "2 names for 1 sources"),
        ((videos[0], videos[1]), IngestConfig(sync="manual", offsets=("camX=1s",)), "camX=1s"),
        ((videos[0],), IngestConfig(sync="none", fps="fast"), "not a frame rate"),
        ((videos[0],), IngestConfig(sync="none", reference="camZ"), "camZ"),
    ]
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    cases.append(((empty,), IngestConfig(sync="none"), "no numbered images"))
    for sources, config, message in cases:
        with pytest.raises((FootageError, SyncError, ValueError, Exception), match=message):
            run_ingest(ws, sources, config)
    _assert_nothing_written(ws)
    with pytest.raises(ValueError, match="scale"):
        IngestConfig(scale=2.0)


def test_calibration_import_matches_and_scales_with_the_frames(tiny_shoot, tmp_path):
    truth = tiny_shoot.cameras
    calibration = tmp_path / "cameras.json"
    calibration.write_text(json.dumps(truth.to_json()))
    result = run_ingest(Workspace(tmp_path / "ws"), list(tiny_shoot.videos.values()),
                        IngestConfig(sync="timecode", max_frames=1, scale=0.5, calibration=calibration))
    imported = Cameras.from_json(json.loads((result.path / "calibration" / "cameras.json").read_text()))
    assert imported.camera_ids == truth.camera_ids
    np.testing.assert_allclose(imported.world_to_camera, truth.world_to_camera, atol=1e-12)
    np.testing.assert_allclose(imported.K[:, :2], truth.K[:, :2] * 0.5, atol=1e-12)  # pixel-corner origin: K scales
    np.testing.assert_array_equal(imported.image_size, [[48, 27]] * 3)
    # a 3D point projects to the same place, in half-size pixels
    point = np.array([[0.3, -0.2, 1.0]])
    np.testing.assert_allclose(imported.project(1, point)[0], truth.project(1, point)[0] * 0.5, atol=1e-9)


def test_caliscope_footage_ingests_with_its_calibration(tmp_path):
    folder = shared_data("caliscope_4cam")
    clips = folder / "post_optimization" / "calibration" / "extrinsic"
    videos = sorted(clips.glob("cam_*.mp4"))
    config = IngestConfig(sync="none", max_frames=5, image_format="jpg",
                          calibration=folder / "post_optimization" / "camera_array.toml")
    result = run_ingest(Workspace(tmp_path / "ws"), videos, config)
    footage = json.loads((result.path / "footage.json").read_text())
    assert [c["camera_id"] for c in footage["cameras"]] == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert all(c["fps"] == "6/1" and c["frame_count"] == 57 for c in footage["cameras"])
    for k in range(4):
        names = sorted(p.name for p in (result.path / "frames" / f"cam_{k}").iterdir())
        assert names == [f"{i:06d}.jpg" for i in range(5)]
    cams = Cameras.from_json(json.loads((result.path / "calibration" / "cameras.json").read_text()))
    assert cams.camera_ids == ("cam_0", "cam_1", "cam_2", "cam_3")
    assert cams.K[0, 0, 0] == pytest.approx(903.550124089999)
    shutil.rmtree(tmp_path / "ws")


def test_blend_resampling_mixes_the_two_frames_around_each_instant(tmp_path):
    """A 10 fps camera ingested at 25 fps: each output frame is the time-weighted mix of its two neighbours."""
    levels = np.arange(0, 200, 20)  # frame k is a flat grey of level 20 k
    clip = tmp_path / "slow.mov"
    write_video(clip, [np.full((32, 32, 3), v, np.uint8) for v in levels], 10, crf=0)
    result = run_ingest(Workspace(tmp_path / "ws"), [clip], IngestConfig(sync="none", fps="25", resample="blend"))
    times = json.loads((result.path / "footage.json").read_text())["timeline"]["times_s"]
    for n, t in enumerate(times):
        expected = np.interp(t * 10, np.arange(len(levels)), levels)  # linear in time between frames
        assert _png(result.path / "frames" / "slow" / f"{n:06d}.png").mean() == pytest.approx(expected, abs=1.5), t


def _ocio(rgb: np.ndarray, source: str, target: str) -> np.ndarray:
    """OpenColorIO's own conversion, from its built-in config, with nothing of reshoot in between."""
    OCIO = pytest.importorskip("PyOpenColorIO")
    config = OCIO.Config.CreateFromBuiltinConfig("studio-config-v2.2.0_aces-v1.3_ocio-v2.4")
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    config.getProcessor(source, target).getDefaultCPUProcessor().applyRGB(out)
    return out


def test_log_and_linear_footage_is_converted_to_srgb_and_recorded(tmp_path):
    """Three 2-frame sequences: sRGB (left alone), S-Log3 PNGs and ACEScg EXRs, each converted as OCIO does."""
    import OpenEXR

    rng = np.random.default_rng(11)
    plates = {"plain": rng.integers(0, 256, (2, 12, 16, 3), dtype=np.uint8),
              "slog": rng.integers(60, 160, (2, 12, 16, 3), dtype=np.uint8),  # S-Log3 code values around grey
              "linear": rng.uniform(0.01, 0.9, (2, 12, 16, 3)).astype(np.float32)}  # ACEScg scene-linear
    for camera_id, frames in plates.items():
        (tmp_path / camera_id).mkdir()
        for k, frame in enumerate(frames):
            if camera_id == "linear":
                OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGB": frame}).write(
                    str(tmp_path / camera_id / f"plate.{k:04d}.exr"))
            else:
                Image.fromarray(frame).save(tmp_path / camera_id / f"plate.{k:04d}.png")
    config = IngestConfig(sync="none", camera_colourspace=("slog=slog3_sgamut3cine", "linear=ACEScg"))
    result = run_ingest(Workspace(tmp_path / "ws"), [tmp_path / c for c in plates], config)

    footage = json.loads((result.path / "footage.json").read_text())
    assert [c["colourspace"] for c in footage["cameras"]] == [
        "sRGB Encoded Rec.709 (sRGB)", "S-Log3 S-Gamut3.Cine", "ACEScg"]
    assert footage["colour"]["frames"] == "sRGB Encoded Rec.709 (sRGB)" and footage["colour"]["converted"] == [
        "slog", "linear"]
    assert result.manifest["config"]["camera_colourspace"] == ["slog=slog3_sgamut3cine", "linear=ACEScg"]
    for k in range(2):
        frames = {c: _png(result.path / "frames" / c / f"{k:06d}.png").astype(np.float64) for c in plates}
        np.testing.assert_array_equal(frames["plain"], plates["plain"][k])  # sRGB footage: bit for bit
        slog = np.clip(_ocio(plates["slog"][k] / 255.0, "S-Log3 S-Gamut3.Cine", "sRGB Encoded Rec.709 (sRGB)"), 0, 1)
        assert np.abs(frames["slog"] - slog * 255).max() <= 0.51
        # An EXR is read as 8-bit sRGB codes of its values (docs/ingest.md); those are decoded, then converted.
        codes = read_image(tmp_path / "linear" / f"plate.{k:04d}.exr")
        np.testing.assert_allclose(codes, _ocio(plates["linear"][k], "Linear Rec.709 (sRGB)",
                                                "sRGB Encoded Rec.709 (sRGB)") * 255, atol=1.01)
        read = _ocio(codes / 255, "sRGB Encoded Rec.709 (sRGB)", "Linear Rec.709 (sRGB)")
        linear = np.clip(_ocio(read, "ACEScg", "sRGB Encoded Rec.709 (sRGB)"), 0, 1)
        assert np.abs(frames["linear"] - linear * 255).max() <= 0.51  # rounding, and OCIO's faster default path


def test_bad_colourspaces_name_the_camera_and_list_the_names(tmp_path):
    from reshoot.colour import ColourError

    with pytest.raises(ColourError, match=r"^--colourspace: 'SLog3' is not a colourspace .*'S-Log3 S-Gamut3'"):
        IngestConfig(colourspace="SLog3")
    with pytest.raises(ColourError, match=r"^--camera-colourspace: camera 'B': 'logc9' is not .*'ARRI LogC4'"):
        IngestConfig(camera_colourspace=("B=logc9",))
    with pytest.raises(ColourError, match=r"camera 'B': 'Rec.1886 Rec.709 - Display' .* is a display or data space"):
        IngestConfig(camera_colourspace=("B=Rec.1886 Rec.709 - Display",))
    with pytest.raises(ValueError, match="expected CAMERA=COLOURSPACE"):
        IngestConfig(camera_colourspace=("S-Log3 S-Gamut3",))
    (tmp_path / "A").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "A" / "f.0001.png")
    with pytest.raises(FootageError, match=r"--camera-colourspace 'Z=ACEScg': there is no camera 'Z'.*\['A'\]"):
        run_ingest(Workspace(tmp_path / "ws"), [tmp_path / "A"], IngestConfig(sync="none",
                                                                              camera_colourspace=("Z=ACEScg",)))
    assert not (tmp_path / "ws" / "ingest").exists()
