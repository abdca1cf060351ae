"""Tests for reshoot.camera_path, reshoot.path_builders and reshoot.path_io, and the Nuke conventions in cameras."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from reshoot.camera_path import CameraPath, Keyframe, PathError, Timeline, format_timecode
from reshoot.cameras import (ZUP_TO_YUP, Cameras, euler_zxy_deg_from_rotation, focal_mm_from_px, focal_px_from_mm,
                             look_at, nuke_camera_transform, rotation_from_euler_zxy_deg, world_to_camera_from_nuke)
from reshoot.path_builders import (between_path, dolly_path, offset_path, orbit_path, overhead_parameters, roll_pose,
                                   overhead_path, rig_centre, set_camera_focal_mm, smooth_track)
from reshoot.path_io import (nerfstudio_camera_path, read_chan, read_nerfstudio_camera_path, write_chan,
                             write_nerfstudio_camera_path)
from reshoot.sync import parse_timecode

TIMELINE = Timeline(Fraction(24), 12, "01:00:00:00")
SIZE = (320, 180)


def ring_rig(n: int = 4, radius: float = 1.0, height: float = 0.4, centre=(0.1, -0.2, 0.05)) -> Cameras:
    """n cameras on a level ring around ``centre``, all looking at it; cam0 on +X, fx 300 px at 320x180."""
    centre = np.array(centre)
    angles = np.radians(np.arange(n) * 360.0 / n + 10.0)
    eyes = centre + np.stack([radius * np.cos(angles), radius * np.sin(angles), np.full(n, height)], axis=1)
    poses = np.stack([look_at(eye, centre) for eye in eyes])
    return Cameras.create([f"cam{i}" for i in range(n)], [300.0] * n, [300.0] * n, [160.0] * n, [90.0] * n, poses,
                          np.tile(SIZE, (n, 1)))


def front_rig() -> Cameras:
    """Three cameras south of the centre (-Y side), looking north at it: an unbalanced rig like a real set."""
    centre = np.array([0.0, 0.0, 0.0])
    eyes = np.array([[-0.6, -1.0, 0.3], [0.0, -1.1, 0.5], [0.7, -0.9, 0.2]])
    poses = np.stack([look_at(eye, centre) for eye in eyes])
    return Cameras.create(["a", "b", "c"], [250.0, 300.0, 350.0], [250.0, 300.0, 350.0], [160.0] * 3, [90.0] * 3,
                          poses, np.tile(SIZE, (3, 1)))


def forward_axis(pose: np.ndarray) -> np.ndarray:
    return pose[2, :3]


def random_keyframes(seed: int = 0, count: int = 4) -> list[Keyframe]:
    rng = np.random.default_rng(seed)
    frames = [0.0, 7.0, 15.0, 30.0][:count]
    keys = []
    for i, frame in enumerate(frames):
        eye = rng.normal(size=3) + np.array([0, 0, 2.0])
        keys.append(Keyframe(frame, look_at(eye, rng.normal(scale=0.2, size=3)), 20.0 + 10 * i, 2.0 * frame))
    return keys


# ---- Timeline --------------------------------------------------------------------------------


def write_footage(root, *, start_timecode="01:00:00:00", first_s=0.5, fps="24/1"):
    ingest = root / "ingest"
    ingest.mkdir(parents=True)
    footage = {
        "reference": "ref",
        "cameras": [
            {"camera_id": "ref", "fps": fps, "start_timecode": start_timecode},
            {"camera_id": "other", "fps": fps, "start_timecode": "02:00:00:00"},
        ],
        "timeline": {"fps": fps, "frame_count": 5, "times_s": [first_s + i / 24 for i in range(5)],
                     "source_frames": {"ref": [12, 13, 14, 15, 16], "other": [0, 1, 2, 3, 4]}},
    }
    (ingest / "footage.json").write_text(json.dumps(footage))


def test_timeline_from_workspace_timecode_of_frame_0(tmp_path):
    write_footage(tmp_path)
    timeline = Timeline.from_workspace(tmp_path)
    assert timeline.fps == Fraction(24) and timeline.frame_count == 5
    assert timeline.start_timecode == "01:00:00:12"  # the reference's start + round(0.5 s * 24) frames
    assert timeline.timecode(0) == "01:00:00:12"
    assert timeline.timecode(13) == "01:00:01:01"


def test_timeline_without_timecode_and_missing_file(tmp_path):
    write_footage(tmp_path / "ws", start_timecode=None)
    assert Timeline.from_workspace(tmp_path / "ws").start_timecode is None
    assert Timeline.from_workspace(tmp_path / "ws").timecode(3) is None
    with pytest.raises(PathError, match=r"footage\.json.*reshoot ingest"):
        Timeline.from_workspace(tmp_path / "empty")


def test_timeline_shot_time():
    assert TIMELINE.shot_time(0) == 0.0 and TIMELINE.shot_time(11) == 1.0
    np.testing.assert_allclose(TIMELINE.shot_time(np.array([0.0, 5.5, 11.0])), [0.0, 0.5, 1.0])
    assert Timeline(Fraction(24), 1).shot_time(0) == 0.0


@pytest.mark.parametrize("fps, drop", [(Fraction(24), False), (Fraction(25), False), (Fraction(30000, 1001), True),
                                       (Fraction(60000, 1001), True), (Fraction(30000, 1001), False)])
def test_format_timecode_inverts_parse_timecode(fps, drop):
    for frame in [0, 1, 1799, 1800, 1801, 17982, 17983, 107892, 1234567]:
        text = format_timecode(frame, fps, drop_frame=drop)
        assert round(Fraction(parse_timecode(text, fps)) * fps) == frame, text
    assert format_timecode(1800, Fraction(30000, 1001), drop_frame=True) == "00:01:00;02"


# ---- keyframe interpolation --------------------------------------------------------------------


def test_from_keyframes_passes_through_keys_exactly():
    keys = random_keyframes()
    path = CameraPath.from_keyframes("keys", keys, SIZE, Fraction(24))
    assert len(path) == 31  # frames 0..30
    for key in keys:
        i = int(key.frame)
        np.testing.assert_allclose(path.world_to_camera[i], key.world_to_camera, atol=1e-12)
        assert path.focal_mm[i] == pytest.approx(key.focal_mm, abs=1e-12)
        assert path.timeline_frames[i] == pytest.approx(key.timeline_frame, abs=1e-12)
    # the timeline is linear between keys: frame 3 lies 3/7 of the way from key 0 to key 1
    assert path.timeline_frames[3] == pytest.approx(6.0)
    assert path.keyframes == tuple(keys)


def test_from_keyframes_is_smooth_and_rotations_stay_rotations():
    path = CameraPath.from_keyframes("keys", random_keyframes(1), SIZE, Fraction(24))
    R = path.world_to_camera[:, :3, :3]
    assert np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max() < 1e-12
    assert (np.linalg.det(R) > 0).all()
    c = path.centers
    step = np.linalg.norm(np.diff(c, axis=0), axis=1)
    span = np.linalg.norm(c.max(0) - c.min(0))
    assert np.linalg.norm(np.diff(c, 2, axis=0), axis=1).max() < 0.05 * span  # no kinks or jumps
    assert np.abs(np.diff(step)).max() < 0.05 * span
    # angular speed changes gradually too (C1 rotations)
    rel = np.einsum("nij,nkj->nik", R[1:], R[:-1])
    angle = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
    assert np.abs(np.diff(angle)).max() < 0.3 * angle.max()
    assert np.isfinite(path.focal_mm).all() and (path.focal_mm >= 20 - 1e-9).all() and (path.focal_mm <= 50 + 1e-9).all()


def test_two_keys_make_a_straight_line_and_slerp_midpoint():
    a = look_at([0, 0, 1], [1, 0, 1])  # looking along +X
    b = look_at([2, 2, 1], [2, 3, 1])  # looking along +Y
    path = CameraPath.from_keyframes("two", [Keyframe(0, a, 30, 0), Keyframe(4, b, 50, 4)], SIZE, Fraction(24))
    c = path.centers
    np.testing.assert_allclose(c[2], [1, 1, 1], atol=1e-12)  # the midpoint of a straight line
    np.testing.assert_allclose(forward_axis(path.world_to_camera[2]), [math.sqrt(0.5), math.sqrt(0.5), 0], atol=1e-12)
    np.testing.assert_allclose(path.focal_mm, [30, 35, 40, 45, 50], atol=1e-12)
    between = between_path(a, b, Timeline(Fraction(24), 3), image_size=SIZE, ease=False)
    np.testing.assert_allclose(forward_axis(between.world_to_camera[1]), [math.sqrt(0.5), math.sqrt(0.5), 0], atol=1e-12)


def test_one_key_holds_and_bad_keys_are_refused():
    key = Keyframe(2, look_at([0, 0, 1], [1, 0, 1]), 35, 10)
    path = CameraPath.from_keyframes("one", [key], SIZE, Fraction(24), frame_count=5)
    np.testing.assert_allclose(path.world_to_camera, np.tile(key.world_to_camera, (5, 1, 1)), atol=1e-15)
    np.testing.assert_allclose(path.timeline_frames, [8, 9, 10, 11, 12])  # the performance plays on
    with pytest.raises(PathError, match="increasing"):
        CameraPath.from_keyframes("bad", [key, Keyframe(1, key.world_to_camera, 35, 0)], SIZE, Fraction(24))
    with pytest.raises(PathError, match="no keyframes"):
        CameraPath.from_keyframes("none", [], SIZE, Fraction(24))


# ---- CameraPath ---------------------------------------------------------------------------------


def test_path_intrinsics_cameras_and_shape_errors():
    path = orbit_path(ring_rig(), TIMELINE, focal_mm=36.0)
    assert path.focal_px[0] == pytest.approx(320.0)  # 36 mm on a 36 mm sensor: focal = width
    np.testing.assert_allclose(path.K[0], [[320, 0, 160], [0, 320, 90], [0, 0, 1]])
    assert path.vertical_fov_deg[0] == pytest.approx(math.degrees(2 * math.atan(90 / 320)))
    cams = path.cameras()
    assert cams.camera_ids[3] == "orbit.0003" and len(cams) == len(path)
    np.testing.assert_allclose(path.camera(-1).world_to_camera[0], path.world_to_camera[-1])
    np.testing.assert_allclose(cams.centers, path.centers, atol=1e-12)
    with pytest.raises(PathError, match=r"focal_mm: expected shape \[F\] with F = 12.*got \[11\]"):
        CameraPath("bad", path.world_to_camera, path.focal_mm[:11], path.timeline_frames, SIZE, Fraction(24))


def test_check_refuses_bad_lenses_and_frames():
    base = orbit_path(ring_rig(), TIMELINE, focal_mm=35.0)

    def variant(**changes) -> CameraPath:
        fields = dict(name="shot", world_to_camera=base.world_to_camera, focal_mm=base.focal_mm,
                      timeline_frames=base.timeline_frames, image_size=SIZE, fps=Fraction(24))
        fields.update(changes)
        return CameraPath(**fields)

    assert base.check(TIMELINE) == []
    focal = base.focal_mm.copy()
    focal[4] = 0.0
    with pytest.raises(PathError, match=r"'shot', frame 4: focal_mm = 0"):
        variant(focal_mm=focal).check(TIMELINE)
    focal[4] = 1.0  # 1 mm on 36 mm: 174 degrees across
    with pytest.raises(PathError, match=r"frame 4: a 1 mm lens .* 174 degrees.*between 1.57 and"):
        variant(focal_mm=focal).check(TIMELINE)
    with pytest.raises(PathError, match="sensor_width_mm = 0"):
        variant(sensor_width_mm=0.0).check(TIMELINE)
    with pytest.raises(PathError, match="image_size 8x180"):
        variant(image_size=(8, 180)).check(TIMELINE)
    poses = base.world_to_camera.copy()
    poses[2, 0, 3] = np.nan
    with pytest.raises(PathError, match="frame 2: the pose has non-finite"):
        variant(world_to_camera=poses).check(TIMELINE)
    with pytest.raises(PathError, match=r"frame 10: shows timeline frame 12.*frames 0\.\.11"):
        variant(timeline_frames=base.timeline_frames + 2).check(TIMELINE)
    warnings = variant(timeline_frames=base.timeline_frames + 0.5).check(TIMELINE)
    assert len(warnings) == 1 and "less than a frame" in warnings[0]
    assert any("more than 120 degrees" in w for w in variant(focal_mm=np.full(12, 8.0)).check(TIMELINE))


def test_reshoot_json_round_trip(tmp_path):
    path = CameraPath.from_keyframes("keys", random_keyframes(2), SIZE, Fraction(30000, 1001), 24.89, "01:00:00;02")
    path.save(tmp_path / "path.json")
    assert [p.name for p in tmp_path.iterdir()] == ["path.json"]  # no temporary file left behind
    back = CameraPath.load(tmp_path / "path.json")
    assert (back.name, back.image_size, back.fps, back.sensor_width_mm, back.start_timecode) == \
        ("keys", SIZE, Fraction(30000, 1001), 24.89, "01:00:00;02")
    np.testing.assert_array_equal(back.world_to_camera, path.world_to_camera)
    np.testing.assert_array_equal(back.focal_mm, path.focal_mm)
    np.testing.assert_array_equal(back.timeline_frames, path.timeline_frames)
    assert back.keyframes == path.keyframes and back.keyframes[1] != path.keyframes[2]
    (tmp_path / "future.json").write_text(json.dumps({**path.to_json(), "reshoot_camera_path": 99}))
    with pytest.raises(PathError, match="future.json is camera path format 99"):
        CameraPath.load(tmp_path / "future.json")


# ---- builders ---------------------------------------------------------------------------------


def test_overhead_path_looks_down_at_the_target():
    rig = ring_rig()
    path = overhead_path(rig, TIMELINE)
    centre = np.array([0.1, -0.2, 0.05])
    np.testing.assert_allclose(rig_centre(rig), centre, atol=1e-9)
    assert len(path) == TIMELINE.frame_count and path.start_timecode == "01:00:00:00"
    np.testing.assert_allclose(forward_axis(path.world_to_camera[0]), [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(path.centers[0], centre + [0, 0, 1.0], atol=1e-9)  # rig radius above the target
    pixel, depth = path.camera(0).project(0, [centre])
    np.testing.assert_allclose(pixel[0], [160, 90], atol=1e-9)
    assert depth[0] == pytest.approx(1.0)
    tilted = overhead_path(rig, TIMELINE, tilt_deg=30.0, heading_deg=90.0)
    pixel, _ = tilted.camera(0).project(0, [centre])
    np.testing.assert_allclose(pixel[0], [160, 90], atol=1e-9)
    np.testing.assert_allclose(forward_axis(tilted.world_to_camera[0]), [0, 0.5, -math.sqrt(0.75)], atol=1e-12)
    assert tilted.centers[0, 2] == pytest.approx(centre[2] + 1.0)


def test_overhead_default_heading_keeps_left_and_right_of_the_set_cameras():
    rig = front_rig()  # cameras south of the action, looking north
    path = overhead_path(rig, TIMELINE)
    image_up = -path.world_to_camera[0, 1, :3]
    assert image_up[1] > 0.99  # north is up, as it is far in the set cameras' images
    east = np.array([[0.5, 0.0, 0.0]])
    for cams in (rig.select(["b"]), path.camera(0)):
        pixel, _ = cams.project(0, east)
        assert pixel[0, 0] > 160  # east lies right of centre in both


def test_overhead_path_reproduces_a_given_overhead_camera():
    rng = np.random.default_rng(7)
    for _ in range(5):
        target = rng.normal(size=3)
        eye = target + np.array([*rng.normal(scale=0.6, size=2), rng.uniform(0.5, 2.0)])
        truth = look_at(eye, target)  # a tilted overhead camera, level
        height, tilt, heading = overhead_parameters(truth, target)
        path = overhead_path(ring_rig(), TIMELINE, target=target, height=height, tilt_deg=tilt, heading_deg=heading)
        np.testing.assert_allclose(path.world_to_camera[5], truth, atol=1e-9)
    straight_down = look_at([1.0, 2.0, 3.0], [1.0, 2.0, 0.0], up=(math.cos(0.3), math.sin(0.3), 0.0))
    height, tilt, heading = overhead_parameters(straight_down, [1.0, 2.0, 0.0])
    assert (height, tilt) == pytest.approx((3.0, 0.0)) and heading == pytest.approx(math.degrees(0.3))
    path = overhead_path(ring_rig(), TIMELINE, target=[1.0, 2.0, 0.0], height=3.0, heading_deg=heading)
    np.testing.assert_allclose(path.world_to_camera[0], straight_down, atol=1e-9)


def test_overhead_roll_turns_the_picture_about_its_centre():
    level = overhead_path(ring_rig(), TIMELINE, target=[0.0, 0.0, 0.0], height=3.0, heading_deg=90.0)
    rolled = overhead_path(ring_rig(), TIMELINE, target=[0.0, 0.0, 0.0], height=3.0, heading_deg=90.0, roll_deg=10.0)
    np.testing.assert_allclose(rolled.centers, level.centers, atol=1e-12)
    np.testing.assert_allclose(rolled.world_to_camera[:, 2, :3], level.world_to_camera[:, 2, :3], atol=1e-12)
    point = np.array([[0.8, 0.0, 0.0]])  # right of centre in the level picture
    (x0, y0), (x1, y1) = (p.camera(0).project(0, point)[0][0] - np.array(p.image_size) / 2 for p in (level, rolled))
    assert x0 > 50 and abs(y0) < 1e-6
    # positive roll turns the content counter-clockwise: a point right of centre rises (image y points down)
    assert math.degrees(math.atan2(-y1, x1)) == pytest.approx(10.0, abs=1e-6)
    np.testing.assert_allclose(roll_pose(roll_pose(level.world_to_camera[0], 25.0), -25.0), level.world_to_camera[0],
                               atol=1e-12)


def test_overhead_follow_tracks_a_moving_actor():
    n = 20
    timeline = Timeline(Fraction(24), n)
    actor = np.stack([np.linspace(-0.5, 0.5, n), np.full(n, 0.2), np.linspace(0.0, 0.3, n)], axis=1)
    seen = actor.copy()
    seen[[3, 4, 11]] = np.nan  # unknown frames are filled in
    path = overhead_path(ring_rig(), timeline, target=[0, 0, 0], height=2.0, follow=seen, follow_smoothing_frames=9)
    for i in range(n):  # constant velocity survives the smoothing exactly; the look-at height stays the target's
        pixel, _ = path.camera(i).project(0, [[actor[i, 0], actor[i, 1], 0.0]])
        np.testing.assert_allclose(pixel[0], [160, 90], atol=1e-9)
    np.testing.assert_allclose(path.centers[:, 2], 2.0)
    jitter = actor + np.random.default_rng(0).normal(scale=0.05, size=actor.shape)
    smoothed = smooth_track(jitter, n, 9)
    assert np.abs(np.diff(smoothed[:, 0], 2)).max() < np.abs(np.diff(jitter[:, 0], 2)).max() / 3


def test_dolly_starts_at_a_and_ends_at_b():
    rig = front_rig()
    path = dolly_path(rig, "a", "c", TIMELINE)
    assert path.name == "dolly_a_c" and path.image_size == SIZE
    np.testing.assert_array_equal(path.world_to_camera[0], rig.world_to_camera[0])
    np.testing.assert_array_equal(path.world_to_camera[-1], rig.world_to_camera[2])
    assert path.focal_mm[0] == pytest.approx(250 / 320 * 36) and path.focal_mm[-1] == pytest.approx(350 / 320 * 36)
    steps = np.linalg.norm(np.diff(path.centers, axis=0), axis=1)
    assert steps[0] < steps[len(steps) // 2] / 3 and steps[-1] < steps[len(steps) // 2] / 3  # eases in and out
    np.testing.assert_array_equal(path.timeline_frames, np.arange(12))


def test_offset_path():
    rig = front_rig()
    same = offset_path(rig, "b", TIMELINE)
    np.testing.assert_allclose(same.world_to_camera, np.tile(rig.world_to_camera[1], (12, 1, 1)), atol=1e-12)
    assert same.focal_mm[0] == pytest.approx(set_camera_focal_mm(rig, "b")) == pytest.approx(300 / 320 * 36)
    np.testing.assert_allclose(same.K[0], rig.K[1], atol=1e-9)
    R = rig.world_to_camera[1, :3, :3]
    moved = offset_path(rig, "b", TIMELINE, translate=(0.2, 0.0, 0.1))
    np.testing.assert_allclose(moved.centers[0], rig.centers[1] + 0.2 * R[0] + 0.1 * R[2], atol=1e-12)
    np.testing.assert_allclose(moved.world_to_camera[0, :3, :3], R, atol=1e-12)
    panned = offset_path(rig, "b", TIMELINE, rotate_deg=(30.0, 0.0, 0.0))
    old, new = forward_axis(rig.world_to_camera[1]), forward_axis(panned.world_to_camera[0])
    assert new[2] == pytest.approx(old[2])  # pan keeps the tilt
    assert np.cross(old, new)[2] < 0  # and turns right (clockwise from above)
    assert math.degrees(math.acos(np.dot(old[:2], new[:2]) / np.linalg.norm(old[:2]) / np.linalg.norm(new[:2]))) == \
        pytest.approx(30.0)
    tilted = offset_path(rig, "b", TIMELINE, rotate_deg=(0.0, 10.0, 0.0))
    assert forward_axis(tilted.world_to_camera[0])[2] > old[2]  # positive tilt looks up


def test_orbit_path_circles_the_centre():
    rig = ring_rig()
    path = orbit_path(rig, TIMELINE, degrees=90.0)
    centre = np.array([0.1, -0.2, 0.05])
    offsets = path.centers - centre
    np.testing.assert_allclose(np.linalg.norm(offsets[:, :2], axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(offsets[:, 2], 0.4, atol=1e-9)
    azimuth = np.degrees(np.arctan2(offsets[:, 1], offsets[:, 0]))
    assert azimuth[0] == pytest.approx(10.0) and azimuth[-1] == pytest.approx(100.0)
    for i in (0, 6, 11):
        pixel, _ = path.camera(i).project(0, [centre])
        np.testing.assert_allclose(pixel[0], [160, 90], atol=1e-9)
    np.testing.assert_allclose(path.world_to_camera[0], rig.world_to_camera[0], atol=1e-9)  # starts at cam0


def test_between_path_from_ids_and_poses():
    rig = front_rig()
    pose = look_at([0, -2, 1], [0, 0, 0])
    path = between_path("a", pose, TIMELINE, set_cameras=rig, focal_mm=(20.0, 40.0))
    np.testing.assert_array_equal(path.world_to_camera[-1], pose)
    assert (path.focal_mm[0], path.focal_mm[-1]) == (20.0, 40.0)
    with pytest.raises(PathError, match="pass set_cameras"):
        between_path("a", pose, TIMELINE)
    with pytest.raises(PathError, match="give image_size"):
        between_path(pose, pose, TIMELINE)


# ---- Nuke conventions and .chan -------------------------------------------------------------------


def test_nuke_convention_facts():
    np.testing.assert_allclose(ZUP_TO_YUP[:3, :3] @ [0, 0, 1], [0, 1, 0])  # reshoot up is Nuke up
    level_north = look_at([1, 2, 3], [1, 5, 3])  # Nuke's default camera: looks down -Z (reshoot +Y), Y up
    translate, rotate = nuke_camera_transform(level_north)
    np.testing.assert_allclose(translate[0], [1, 3, -2], atol=1e-12)
    np.testing.assert_allclose(rotate[0], [0, 0, 0], atol=1e-12)
    _, rotate = nuke_camera_transform(look_at([0, 0, 0], [1, 0, 0]))  # looking east: pan right 90 degrees
    np.testing.assert_allclose(rotate[0], [0, -90, 0], atol=1e-12)
    _, rotate = nuke_camera_transform(look_at([0, 0, 3], [0, 0, 0], up=(0, 1, 0)))  # straight down, north up
    np.testing.assert_allclose(rotate[0], [-90, 0, 0], atol=1e-12)


def test_euler_zxy_round_trip_including_gimbal_lock():
    rng = np.random.default_rng(3)
    angles = np.column_stack([rng.uniform(-89, 89, 200), rng.uniform(-179, 179, 200), rng.uniform(-179, 179, 200)])
    np.testing.assert_allclose(euler_zxy_deg_from_rotation(rotation_from_euler_zxy_deg(angles)), angles, atol=1e-9)
    x = rotation_from_euler_zxy_deg([[0, 0, 30]])[0]  # Rz applied first, then Rx, then Ry
    np.testing.assert_allclose(x @ [1, 0, 0], [math.cos(math.radians(30)), math.sin(math.radians(30)), 0], atol=1e-12)
    for rx in (-90.0, 90.0, -89.99999999):
        R = rotation_from_euler_zxy_deg([[rx, 40.0, 25.0]])
        np.testing.assert_allclose(rotation_from_euler_zxy_deg(euler_zxy_deg_from_rotation(R)), R, atol=1e-12)
    poses = np.stack([look_at(rng.normal(size=3) * 2, rng.normal(size=3)) for _ in range(20)])
    np.testing.assert_allclose(world_to_camera_from_nuke(*nuke_camera_transform(poses)), poses, atol=1e-12)


def test_chan_round_trip(tmp_path):
    keys = random_keyframes(4)
    keys.append(Keyframe(40, look_at([0, 0, 3], [0, 0, 0], up=(0, 1, 0)), 18.0, 80))  # straight down: gimbal lock
    path = CameraPath.from_keyframes("keys", keys, (1920, 1080), Fraction(24), sensor_width_mm=24.89)
    write_chan(tmp_path / "shot.chan", path, first_frame=1001)
    lines = (tmp_path / "shot.chan").read_text().splitlines()
    assert len(lines) == len(path) and lines[0].split("\t")[0] == "1001" and len(lines[0].split("\t")) == 8
    assert float(lines[-1].split("\t")[7]) == pytest.approx(path.vertical_fov_deg[-1], abs=1e-9)
    timeline = Timeline(Fraction(24), 100)
    back = read_chan(tmp_path / "shot.chan", timeline, (1920, 1080), Fraction(24), sensor_width_mm=24.89)
    assert back.name == "shot" and len(back) == len(path)
    np.testing.assert_allclose(back.world_to_camera, path.world_to_camera, atol=1e-6)
    np.testing.assert_allclose(back.focal_mm, path.focal_mm, atol=1e-6)
    np.testing.assert_allclose(back.timeline_frames, np.arange(len(path)))
    half = read_chan(tmp_path / "shot.chan", timeline, (1920, 1080), Fraction(48), first_frame=1000)
    np.testing.assert_allclose(half.timeline_frames[:3], [0.5, 1.0, 1.5])


def test_chan_malformed_files(tmp_path):
    bad = tmp_path / "bad.chan"
    bad.write_text("1 0 0 0 0 0 0 40\n2 0 0 0 0\n")
    with pytest.raises(PathError, match=r"bad\.chan, line 2: expected 8 numbers.*found 5"):
        read_chan(bad, TIMELINE, SIZE, Fraction(24))
    bad.write_text("1 0 0 0 0 0 0 40\n3 0 0 0 0 0 0 40\n")
    with pytest.raises(PathError, match=r"line 2: frame 3 follows frame 1"):
        read_chan(bad, TIMELINE, SIZE, Fraction(24))
    bad.write_text("1 0 0 0 0 0 x 40\n")
    with pytest.raises(PathError, match=r"line 1: not all numbers"):
        read_chan(bad, TIMELINE, SIZE, Fraction(24))
    bad.write_text("# an Axis\n1 0 0 0 0 0 0\n")
    with pytest.raises(PathError, match="give the lens with --focal-mm"):
        read_chan(bad, TIMELINE, SIZE, Fraction(24))
    assert read_chan(bad, TIMELINE, SIZE, Fraction(24), focal_mm=35.0).focal_mm[0] == 35.0


# ---- nerfstudio camera_path.json ---------------------------------------------------------------


def test_nerfstudio_round_trip_and_format(tmp_path):
    path = CameraPath.from_keyframes("keys", random_keyframes(5), (640, 360), Fraction(24), sensor_width_mm=30.0,
                                     frame_count=31)
    timeline = Timeline(Fraction(24), 61)
    file = tmp_path / "camera_path.json"
    write_nerfstudio_camera_path(file, path, timeline)
    data = json.loads(file.read_text())
    for key in ("camera_type", "render_height", "render_width", "camera_path", "fps", "seconds", "keyframes",
                "smoothness_value", "is_cycle", "crop"):
        assert key in data
    assert (data["render_width"], data["render_height"], data["fps"]) == (640, 360, 24.0)
    entry = data["camera_path"][7]
    assert len(entry["camera_to_world"]) == 16 and entry["aspect"] == pytest.approx(640 / 360)
    # the same camera as reshoot's transforms.json writes it (OpenGL axes, reshoot's world)
    frame = path.camera(7).to_nerfstudio()["frames"][0]
    np.testing.assert_allclose(np.reshape(entry["camera_to_world"], (4, 4)), frame["transform_matrix"], atol=1e-12)
    assert 360 / 2 / math.tan(math.radians(entry["fov"]) / 2) == pytest.approx(frame["fl_y"])  # nerfstudio's focal
    assert entry["render_time"] == pytest.approx(path.timeline_frames[7] / 60)
    back = read_nerfstudio_camera_path(file, timeline)
    np.testing.assert_allclose(back.world_to_camera, path.world_to_camera, atol=1e-9)
    np.testing.assert_allclose(back.focal_mm, path.focal_mm, atol=1e-9)
    np.testing.assert_allclose(back.timeline_frames, path.timeline_frames, atol=1e-12)
    assert (back.name, back.fps, back.sensor_width_mm, len(back.keyframes)) == ("keys", Fraction(24), 30.0, 4)


def test_nerfstudio_file_without_reshoot_block(tmp_path):
    path = orbit_path(ring_rig(), TIMELINE, focal_mm=35.0)
    data = nerfstudio_camera_path(path, TIMELINE)
    del data["reshoot"]
    file = tmp_path / "viewer.json"
    file.write_text(json.dumps(data))
    back = read_nerfstudio_camera_path(file, TIMELINE)
    np.testing.assert_allclose(back.focal_mm, 35.0)  # fov -> mm on the default 36 mm sensor
    np.testing.assert_allclose(back.timeline_frames, np.arange(12), atol=1e-9)  # from render_time
    for entry in data["camera_path"]:
        del entry["render_time"]
    data["fps"] = 23.976
    file.write_text(json.dumps(data))
    back = read_nerfstudio_camera_path(file, TIMELINE, name="viewer_path")
    assert back.fps == Fraction(24000, 1001) and back.name == "viewer_path"
    np.testing.assert_allclose(back.timeline_frames[:2], [0.0, 24 / (24000 / 1001)])  # by the frame rates


def test_nerfstudio_malformed_files(tmp_path):
    file = tmp_path / "broken.json"
    file.write_text(json.dumps({"render_width": 64, "render_height": 32}))
    with pytest.raises(PathError, match=r"broken\.json.*'camera_path'"):
        read_nerfstudio_camera_path(file, TIMELINE)
    file.write_text(json.dumps({"render_width": 64, "render_height": 32,
                                "camera_path": [{"camera_to_world": np.eye(4).ravel().tolist(), "fov": 50},
                                                {"camera_to_world": np.eye(4).ravel().tolist()}]}))
    with pytest.raises(PathError, match=r"broken\.json: camera_path entry 1: needs .*'fov'"):
        read_nerfstudio_camera_path(file, TIMELINE)
    file.write_text(json.dumps({"camera_type": "equirectangular", "render_width": 64, "render_height": 32,
                                "camera_path": []}))
    with pytest.raises(PathError, match="perspective camera paths only"):
        read_nerfstudio_camera_path(file, TIMELINE)


def test_focal_conversions_are_inverse():
    assert focal_mm_from_px(focal_px_from_mm(35.0, 36.0, 1920), 36.0, 1920) == pytest.approx(35.0)


def test_builders_and_readers_are_reachable_from_camera_path():
    from reshoot import camera_path, path_builders, path_io

    assert camera_path.overhead_path is path_builders.overhead_path
    assert camera_path.read_chan is path_io.read_chan
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        camera_path.nothing  # noqa: B018
