"""The synthetic shoot: files decode as stated, the actor moves, ground truth matches the renders."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from reshoot.cameras import Cameras, look_at
from reshoot.media import probe_video, read_audio, read_video_frames
from reshoot.sample import PRESETS, SampleConfig, load_sample_shoot, make_sample_shoot
from reshoot.sample.render import MeshRenderer
from reshoot.sample.scene import ActorMotion, TexturedMesh, build_set, ellipsoid

from conftest import TINY


@pytest.fixture(scope="module")
def shoot(tiny_shoot):
    return tiny_shoot


def _textured_fraction(image: np.ndarray, block: int = 8) -> float:
    """Share of 8x8 blocks with visible detail (grey-level std > 6)."""
    grey = image.astype(np.float32).mean(axis=-1)
    h, w = (s // block * block for s in grey.shape)
    blocks = grey[:h, :w].reshape(h // block, block, w // block, block).std(axis=(1, 3))
    return float((blocks > 6).mean())


def _unpack(masks: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(masks, axis=-1)[..., :width].astype(bool)


def test_every_set_camera_decodes_to_its_stated_frames_size_and_timecode(shoot):
    gt = shoot.ground_truth
    set_cams = [c for c in gt["cameras"] if c["role"] == "set"]
    assert [c["camera_id"] for c in set_cams] == ["cam0", "cam1", "cam2"]
    for cam in set_cams:
        frames = list(read_video_frames(shoot.videos[cam["camera_id"]]))
        assert len(frames) == cam["frame_count"] == round(-cam["start_offset_s"] * TINY.fps) + TINY.frame_count + (
            cam["frame_count"] - TINY.frame_count - round(-cam["start_offset_s"] * TINY.fps))
        assert frames[0].shape == (TINY.height, TINY.width, 3)
        info = probe_video(shoot.videos[cam["camera_id"]])
        assert info["fps"] == 24 and info["frame_count"] == cam["frame_count"]
        assert info["start_timecode"] == cam["start_timecode"]
        assert info["audio_sample_rate_hz"] == cam["sample_rate_hz"]
        # the camera's start timecode is the shot's, moved back by its (whole-frame) lead
        lead_frames = round(-cam["start_offset_s"] * TINY.fps)
        hh, mm, ss, ff = (int(x) for x in cam["start_timecode"].split(":"))
        assert ((hh * 60 + mm) * 60 + ss) * 24 + ff == 3600 * 24 - lead_frames
        # frames show a lit set with texture everywhere, not a black, dark or flat image
        assert 80 < frames[0].mean() < 200, frames[0].mean()
        assert _textured_fraction(frames[0]) > 0.75


def test_cameras_start_at_different_known_offsets_and_cover_the_shot(shoot):
    set_cams = [c for c in shoot.ground_truth["cameras"] if c["role"] == "set"]
    offsets = [c["start_offset_s"] for c in set_cams]
    assert len(set(offsets)) == len(offsets) and all(o < 0 for o in offsets)
    for cam in set_cams:
        end_s = cam["start_offset_s"] + cam["frame_count"] / TINY.fps
        assert end_s >= TINY.frame_count / TINY.fps - 1e-9


def test_audio_clap_lands_where_the_start_offsets_say(shoot):
    clap_s = shoot.ground_truth["clap_time_s"]
    for cam in (c for c in shoot.ground_truth["cameras"] if c["role"] == "set"):
        audio, rate = read_audio(shoot.videos[cam["camera_id"]])
        assert rate == cam["sample_rate_hz"]
        assert abs(len(audio) / rate - cam["frame_count"] / TINY.fps) < 1 / TINY.fps
        # the clap is the sharpest broadband transient: find it in the high-passed signal
        onset_s = np.argmax(np.abs(np.diff(audio))) / rate
        assert onset_s == pytest.approx(clap_s - cam["start_offset_s"], abs=0.005)


def test_actor_moves_non_rigidly_and_changes_pixels(shoot):
    masks = np.load(shoot.root / "ground_truth" / "actor_masks.npz")
    motion = ActorMotion()
    for camera_id in shoot.videos:
        mask = _unpack(masks[camera_id], TINY.width)
        frames = np.stack(list(read_video_frames(shoot.videos[camera_id]))).astype(np.float32)
        assert mask.shape == frames.shape[:3]
        assert mask.any(axis=(1, 2)).mean() > 0.8  # the actor is in (nearly) every frame
        first, last = 0, len(frames) - 1
        moved = mask[first] ^ mask[last]
        still = ~(mask[first] | mask[last])
        diff = np.abs(frames[first] - frames[last]).mean(axis=-1)
        assert moved.sum() > 10
        assert diff[moved].mean() > 4 * diff[still].mean() + 5  # the actor changes, the set does not
    # non-rigid: the distances between body segments change over the shot
    before, waving = motion.segment_poses(0.0), motion.segment_poses(1.1)
    elbow_to_head = [np.linalg.norm(p["right_forearm"][:3, 3] - p["head"][:3, 3]) for p in (before, waving)]
    assert elbow_to_head[0] - elbow_to_head[1] > 0.2  # the raised arm brings the elbow up beside the head


def test_actor_head_projects_onto_the_rendered_actor(shoot):
    masks = np.load(shoot.root / "ground_truth" / "actor_masks.npz")
    cameras = shoot.cameras
    motion = ActorMotion()
    hits = total = 0
    for idx, cam in enumerate(c for c in shoot.ground_truth["cameras"] if c["role"] == "set"):
        mask = _unpack(masks[cam["camera_id"]], TINY.width)
        for k in range(cam["frame_count"]):
            head = motion.segment_poses(cam["start_offset_s"] + k / TINY.fps)["head"][:3, 3]
            (u, v), = cameras.project(idx, head[None])[0]
            if 0 <= u < TINY.width and 0 <= v < TINY.height:
                total += 1
                hits += mask[k, int(v), int(u)]
    assert total > 20 and hits / total > 0.9


def test_overhead_ground_truth_frames_depth_and_landmarks(shoot):
    gt = shoot.ground_truth
    frames = sorted((shoot.root / "ground_truth" / "overhead").glob("*.png"))
    assert len(frames) == TINY.frame_count == gt["shot"]["frame_count"]
    assert np.asarray(Image.open(frames[0])).shape == (TINY.height, TINY.width, 3)
    depth = np.load(shoot.root / "ground_truth" / "overhead_depth.npz")["depth_m"].astype(np.float32)
    assert depth.shape == (TINY.frame_count, TINY.height, TINY.width)
    overhead = shoot.overhead
    checked = 0
    for name, point in gt["landmarks_m"].items():
        (u, v), z = (a[0] for a in overhead.project(0, np.array([point])))
        if not (2 <= u < TINY.width - 2 and 2 <= v < TINY.height - 2):
            continue
        rendered = depth[:, int(v), int(u)]
        unoccluded = np.abs(rendered - z) < 0.05 * z
        assert unoccluded.mean() > 0.5, f"landmark {name}: rendered depth {rendered} vs projected {z:.3f}"
        checked += 1
    assert checked >= 2


def test_renderer_matches_camera_projection_with_distortion():
    """A small ball rendered near the image corner lands where Cameras.project puts it (to a pixel)."""
    rng = np.random.default_rng(1)
    ball = TexturedMesh("ball", *ellipsoid((0.06, 0.06, 0.06)), np.full((8, 8, 3), 255, np.uint8), np.eye(4))
    renderer = MeshRenderer(build_set(rng, texture_px=64), [ball], supersample=2)
    eye, target = np.array([0.0, -3.0, 1.5]), np.array([0.0, 0.0, 1.0])
    for dist in ([0.0, 0, 0, 0, 0], [-0.2, 0.03, 0.002, -0.001, 0.0]):
        cams = Cameras.create(["c"], [220.0], [220.0], [161.0], [89.0], look_at(eye, target)[None], [[320, 180]],
                              np.array([dist]))
        # a point near the top-right corner: normalised (0.6, -0.3) at 2.5 m
        point = cams.camera_to_world[0] @ np.array([0.6 * 2.5, -0.3 * 2.5, 2.5, 1.0])
        point = point[:3]
        pose = np.eye(4)
        pose[:3, 3] = point
        renderer.set_actor({"ball": pose})
        view = renderer.render(cams, 0)
        vs, us = np.nonzero(view.actor_mask)
        assert len(us) > 20
        (u, v), = cams.project(0, point[None])[0]
        centroid = np.array([us.mean() + 0.5, vs.mean() + 0.5])  # pixel centres, pixel-corner origin
        assert np.abs(centroid - [u, v]).max() < 0.6, (dist, centroid, (u, v))
        if dist[0]:
            undistorted = Cameras.create(["c"], [220.0], [220.0], [161.0], [89.0], look_at(eye, target)[None],
                                         [[320, 180]]).project(0, point[None])[0][0]
            assert np.abs(undistorted - [u, v]).max() > 5  # the distortion is large enough to matter
    renderer.close()


def test_same_config_gives_the_same_shoot_and_is_skipped(shoot, tmp_path):
    again = make_sample_shoot(tmp_path / "again", TINY)
    assert again.ground_truth == shoot.ground_truth
    for camera_id in shoot.videos:
        a = next(read_video_frames(shoot.videos[camera_id]))
        b = next(read_video_frames(again.videos[camera_id]))
        np.testing.assert_array_equal(a, b)
    mtime = again.videos["cam0"].stat().st_mtime_ns
    skipped = make_sample_shoot(tmp_path / "again", TINY)
    assert skipped.skipped and again.videos["cam0"].stat().st_mtime_ns == mtime
    other = make_sample_shoot(tmp_path / "again", replace(TINY, seed=5, n_cameras=2))
    assert not other.skipped and not (tmp_path / "again" / "cam2.mov").exists()
    assert other.cameras.world_to_camera[0].tolist() != shoot.cameras.world_to_camera[0].tolist()
    assert not list(tmp_path.glob(".again*"))  # no temporary or trash folders left


def test_a_folder_that_is_not_a_sample_is_never_touched(tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "footage.mov").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not a reshoot sample"):
        make_sample_shoot(keep, TINY, force=True)
    assert (keep / "footage.mov").read_bytes() == b"precious" and len(list(keep.iterdir())) == 1


def test_contact_sheet_shows_every_camera(shoot):
    sheet = np.asarray(Image.open(shoot.root / "contact_sheet.png"))
    assert sheet.shape[0] > 4 * TINY.height and sheet.shape[1] > 4 * TINY.width
    assert sheet.std() > 30


def test_ground_truth_round_trips_through_load_and_cameras_json(shoot):
    loaded = load_sample_shoot(shoot.root)
    assert loaded.ground_truth == json.loads((shoot.root / "ground_truth.json").read_text())
    cams = loaded.cameras
    assert cams.camera_ids == ("cam0", "cam1", "cam2") and len(loaded.overhead) == 1
    assert np.all(cams.distortion[:, 0] != 0)  # distortion on by default, recorded
    assert len(set(np.round(cams.K[:, 0, 0], 3))) == 3  # different lenses
    assert len(set(np.round(cams.centers[:, 2], 3))) == 3  # different heights


def test_bad_config_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="width must be even"):
        SampleConfig(width=33)
    with pytest.raises(ValueError, match="n_cameras"):
        SampleConfig(n_cameras=0)
    with pytest.raises(ValueError, match="max_lead_s = 0.1 s holds 2 whole frames, too few for 4 cameras"):
        SampleConfig(max_lead_s=0.1)
    for timecode in ("1:00:00:00", "01:00:00:24", "01:00:00"):
        with pytest.raises(ValueError, match="shot_start_timecode"):
            SampleConfig(shot_start_timecode=timecode)


def test_start_offsets_stay_within_max_lead_and_subframe_offsets_stay_distinct():
    from reshoot.sample.shoot import _lead_frames

    for seed in range(20):
        for subframe in (False, True):
            config = replace(TINY, seed=seed, subframe_offsets=subframe, max_lead_s=0.2, n_cameras=4)
            leads = _lead_frames(config, np.random.default_rng(seed))
            assert len(set(leads)) == 4 and all(0 < lead <= 0.2 * 24 for lead in leads)
            assert all((lead == int(lead)) != subframe for lead in leads)


def test_a_deleted_video_makes_the_shoot_render_again(tmp_path):
    config = replace(TINY, n_cameras=2, frame_count=4)
    shoot = make_sample_shoot(tmp_path / "s", config)
    shoot.videos["cam1"].unlink()
    again = make_sample_shoot(tmp_path / "s", config)
    assert not again.skipped and again.videos["cam1"].is_file()


@pytest.mark.slow
def test_default_sample_matches_the_issue(tmp_path):
    shoot = make_sample_shoot(tmp_path / "default")
    gt = shoot.ground_truth
    assert len(shoot.videos) == 4 and len(shoot.overhead) == 1
    assert gt["shot"]["frame_count"] == 48 and gt["fps"] == 24
    for path in shoot.videos.values():
        info = probe_video(path)
        assert (info["width"], info["height"]) == (320, 180) and info["frame_count"] >= 48


def test_a_render_that_fails_part_way_leaves_nothing_behind(tmp_path, monkeypatch):
    import reshoot.sample.shoot as shoot_module

    calls = []

    def failing_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while writing the second camera
        return real_write(path, *args, **kwargs)

    real_write = shoot_module.write_video
    monkeypatch.setattr(shoot_module, "write_video", failing_write)
    config = replace(TINY, n_cameras=2, frame_count=4)
    with pytest.raises(KeyboardInterrupt):
        make_sample_shoot(tmp_path / "s", config)
    assert list(tmp_path.iterdir()) == []  # no half-written shoot, no temporary folder
