"""Builders of camera paths: overhead, dolly, orbit, offset and between, with defaults taken from the rig.

Each builder returns a :class:`~reshoot.camera_path.CameraPath` with one output frame per footage
timeline frame (output frame ``i`` shows timeline frame ``i``), poses made with
:func:`reshoot.cameras.look_at` or copied from set cameras. Defaults come from the registered rig,
whose world is +Z up, centred on the set, the farthest camera 1 unit away (not metres): the target
is where the set cameras' optical axes meet (:func:`rig_centre`), distances are the rig's mean
horizontal radius (:func:`rig_radius`), lenses are the set cameras' own (converted to mm on
``sensor_width_mm``), image sizes the set cameras'.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from reshoot.camera_path import CameraPath, Keyframe, PathError, Timeline, _poses_from
from reshoot.cameras import Cameras, focal_mm_from_px, look_at


# ---- builders -----------------------------------------------------------------------------------


def set_camera_focal_mm(set_cameras: Cameras, camera_id: str, sensor_width_mm: float = 36.0) -> float:
    """A set camera's horizontal focal length (``fx``) as a lens in mm on a sensor ``sensor_width_mm`` wide."""
    i = set_cameras.index(camera_id)
    return float(focal_mm_from_px(set_cameras.K[i, 0, 0], sensor_width_mm, set_cameras.image_size[i, 0]))


def rig_centre(set_cameras: Cameras) -> np.ndarray:  # [3]
    """The point nearest to every set camera's optical axis (least squares): where the rig looks."""
    R, centres = set_cameras.world_to_camera[:, :3, :3], set_cameras.centers
    axes = R[:, 2, :]  # each camera's forward axis in the world
    P = np.eye(3) - axes[:, :, None] * axes[:, None, :]  # projections onto each axis' normal plane
    A, b = P.sum(axis=0), np.einsum("nij,nj->i", P, centres)
    eig = np.linalg.eigvalsh(A)
    if len(set_cameras) == 0 or eig[0] < 1e-6 * max(eig[-1], 1e-12):
        raise PathError(f"cannot find where the set cameras {list(set_cameras.camera_ids)} look: their optical axes "
                        "are parallel (or there is only one camera); give the point to look at with --target X Y Z")
    return np.linalg.solve(A, b)


def rig_radius(set_cameras: Cameras, centre: np.ndarray) -> float:
    """Mean horizontal (XY) distance of the set cameras from ``centre``."""
    radius = float(np.mean(np.linalg.norm(set_cameras.centers[:, :2] - np.asarray(centre)[:2], axis=1)))
    if not radius > 1e-9:
        raise PathError(f"the set cameras stand right above or below {np.round(centre, 4).tolist()}; give the "
                        "camera's height (--elevation) or the orbit's radius (--radius) explicitly")
    return radius


def overhead_pose(target: Sequence[float], height: float, tilt_deg: float = 0.0, heading_deg: float = 90.0,
                  roll_deg: float = 0.0) -> np.ndarray:
    """World-to-camera pose of a camera ``height`` above ``target`` looking at it.  # [4, 4]

    ``heading_deg`` is the world direction that is image-up, counter-clockwise from +X in the XY
    plane (90 = +Y). ``tilt_deg`` (0..89) tilts the view from straight down: the camera moves back
    against the heading, staying ``height`` above the target, so it looks ahead along the heading.
    With no ``roll_deg`` the image's x axis stays horizontal; a roll turns the camera about its optical axis
    (positive: the picture's content turns counter-clockwise).
    """
    if not (math.isfinite(height) and height > 0):
        raise PathError(f"overhead camera: height = {height}; give a height > 0 above the target")
    if not (0.0 <= tilt_deg <= 89.0):
        raise PathError(f"overhead camera: tilt_deg = {tilt_deg}; give 0 (straight down) to 89 degrees")
    heading = math.radians(heading_deg)
    up = np.array([math.cos(heading), math.sin(heading), 0.0])
    target = np.asarray(target, dtype=np.float64)
    eye = target + np.array([0.0, 0.0, height]) - height * math.tan(math.radians(tilt_deg)) * up
    return roll_pose(look_at(eye, target, up=up), roll_deg)


def roll_pose(world_to_camera: np.ndarray, roll_deg: float) -> np.ndarray:
    """``world_to_camera`` turned about its optical axis by ``roll_deg`` (positive: the picture's content turns
    counter-clockwise; the centre and the axis stay).  # [4, 4]"""
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    roll = np.eye(4)
    roll[:2, :2] = [[c, s], [-s, c]]
    return roll @ np.asarray(world_to_camera, dtype=np.float64)


def overhead_parameters(world_to_camera: np.ndarray, target: Sequence[float]) -> tuple[float, float, float]:
    """``(height, tilt_deg, heading_deg)`` that make :func:`overhead_pose` (and :func:`overhead_path`) rebuild a pose.

    Raises:
        PathError: the camera does not look at ``target``, is not above it, or has roll.
    """
    pose = np.asarray(world_to_camera, dtype=np.float64)
    R, eye, target = pose[:3, :3], -pose[:3, :3].T @ pose[:3, 3], np.asarray(target, dtype=np.float64)
    to_target = target - eye
    if np.linalg.norm(np.cross(R[2], to_target)) > 1e-6 * np.linalg.norm(to_target) or R[2] @ to_target <= 0:
        raise PathError(f"the camera at {np.round(eye, 6).tolist()} does not look at the target "
                        f"{np.round(target, 6).tolist()}; give the point its optical axis passes through")
    if abs(R[0, 2]) > 1e-6 or R[2, 2] >= 0:
        raise PathError("the camera has roll or does not look down; overhead cameras are level and look down")
    up_h = -R[1, :2] if np.linalg.norm(R[1, :2]) > 1e-9 else -R[2, :2]
    height = float(eye[2] - target[2])
    tilt = math.degrees(math.atan2(np.linalg.norm(to_target[:2]), height))
    return height, tilt, math.degrees(math.atan2(up_h[1], up_h[0]))


def overhead_path(
    set_cameras: Cameras,
    timeline: Timeline,
    *,
    target: Sequence[float] | None = None,
    height: float | None = None,
    tilt_deg: float = 0.0,
    heading_deg: float | None = None,
    roll_deg: float = 0.0,
    focal_mm: float = 24.0,
    image_size: tuple[int, int] | None = None,
    follow: np.ndarray | None = None,
    follow_smoothing_frames: int = 9,
    sensor_width_mm: float = 36.0,
    name: str = "overhead",
) -> CameraPath:
    """A camera above the action looking down (see :func:`overhead_pose`), one output frame per timeline frame.

    Args:
        target: the point looked at; default :func:`rig_centre`, where the set cameras' axes meet.
        height: above the target; default :func:`rig_radius`, the rig's mean horizontal radius.
        heading_deg: image-up direction (degrees from +X toward +Y); default the horizontal
            direction from the set cameras' mean position toward the target, i.e. *away* from the
            cameras: the far side of the set is at the top and left and right are as in the set
            cameras' pictures (camera 0's viewing direction when the rig surrounds the target evenly).
        image_size: default the first set camera's.
        follow: actor centres per timeline frame, NaN where unknown (filled linearly, held at the
            ends).  # [frame_count, 3]  The camera then trucks to keep the smoothed actor's XY
            position under it, at a fixed height (the look-at height stays the target's Z).
        follow_smoothing_frames: width of the Gaussian smoothing window, in frames (1 = none).
    """
    target = rig_centre(set_cameras) if target is None else np.asarray(target, dtype=np.float64)
    height = rig_radius(set_cameras, target) if height is None else float(height)
    if heading_deg is None:
        toward = target[:2] - set_cameras.centers[:, :2].mean(axis=0)
        if np.linalg.norm(toward) < 1e-6 * rig_radius(set_cameras, target):
            toward = set_cameras.world_to_camera[0, 2, :2]
        heading_deg = math.degrees(math.atan2(toward[1], toward[0]))
    n = timeline.frame_count
    looks = np.tile(target, (n, 1))
    if follow is not None:
        looks[:, :2] = smooth_track(follow, n, follow_smoothing_frames)[:, :2]
    base = overhead_pose(target, height, tilt_deg, heading_deg, roll_deg)
    poses = np.tile(base, (n, 1, 1))
    poses[:, :3, 3] -= (looks - target) @ base[:3, :3].T  # the same camera, moved with the look-at point
    size = tuple(set_cameras.image_size[0]) if image_size is None else image_size
    keys = () if follow is not None else (Keyframe(0, base, focal_mm, 0),)
    return CameraPath(name, poses, np.full(n, float(focal_mm)), np.arange(n, dtype=np.float64), size, timeline.fps,
                      sensor_width_mm, timeline.start_timecode, keys)


def smooth_track(track: np.ndarray, frame_count: int, window_frames: int = 9) -> np.ndarray:  # [frame_count, 3]
    """Fill NaN rows of a per-frame track linearly (held at the ends), then smooth it with a Gaussian.

    The window is ``window_frames`` wide (sigma a quarter of it); the ends are padded by odd
    reflection, so a track moving at constant velocity is left exactly as it is.  # track: [frame_count, 3]
    """
    track = np.array(track, dtype=np.float64)
    if track.shape != (frame_count, 3):
        raise PathError(f"follow track: expected shape [{frame_count}, 3] (one actor centre per timeline frame), "
                        f"got {list(track.shape)}")
    known = np.isfinite(track).all(axis=1)
    if not known.any():
        raise PathError("follow track: every frame is NaN; give the actor's centre on at least one frame")
    idx = np.arange(frame_count)
    filled = np.stack([np.interp(idx, idx[known], track[known, k]) for k in range(3)], axis=1)
    radius = int(window_frames) // 2
    if radius < 1:
        return filled
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / (window_frames / 4.0)) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(filled, ((radius, radius), (0, 0)), mode="reflect", reflect_type="odd")
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(3)], axis=1)


def between_path(
    start: np.ndarray | str,
    end: np.ndarray | str,
    timeline: Timeline,
    *,
    set_cameras: Cameras | None = None,
    focal_mm: float | tuple[float, float] | None = None,
    image_size: tuple[int, int] | None = None,
    sensor_width_mm: float = 36.0,
    ease: bool = True,
    name: str = "between",
) -> CameraPath:
    """A move from one pose to another over the whole timeline: a straight line, rotation by slerp.

    Args:
        start, end: a world-to-camera pose [4, 4] or a set camera id (then give ``set_cameras``).
        focal_mm: one lens, or ``(start, end)`` lenses interpolated along the move; default the
            set cameras' own lenses (converted with ``sensor_width_mm``), 35 mm for a bare pose.
        image_size: default the start (else end, else first) set camera's.
        ease: ease in and out (smoothstep: the camera starts and stops at rest); else constant speed.
    """
    ends = [_resolve_end(e, set_cameras, sensor_width_mm, label) for e, label in ((start, "start"), (end, "end"))]
    if focal_mm is None:
        lenses = [e[1] if e[1] is not None else (ends[1 - i][1] or 35.0) for i, e in enumerate(ends)]
    elif np.ndim(focal_mm) == 0:
        lenses = [float(focal_mm)] * 2
    else:
        lenses = [float(v) for v in focal_mm]
    if image_size is None:
        sizes = [e[2] for e in ends if e[2] is not None]
        if not sizes and set_cameras is None:
            raise PathError(f"camera path {name!r}: give image_size (start and end are bare poses)")
        image_size = sizes[0] if sizes else tuple(set_cameras.image_size[0])
    n = timeline.frame_count
    u = np.arange(n) / (n - 1) if n > 1 else np.zeros(1)
    s = u * u * (3 - 2 * u) if ease else u
    (pose_a, _, _), (pose_b, _, _) = ends
    c2w = Rotation.from_matrix(np.stack([pose_a[:3, :3].T, pose_b[:3, :3].T]))
    centres = [-pose[:3, :3].T @ pose[:3, 3] for pose in (pose_a, pose_b)]
    poses = _poses_from(Slerp([0.0, 1.0], c2w)(s).as_matrix(), centres[0] + s[:, None] * (centres[1] - centres[0]))
    poses[0], poses[-1] = pose_a, pose_b
    focal = lenses[0] + s * (lenses[1] - lenses[0])
    keys = (Keyframe(0, pose_a, lenses[0], 0), Keyframe(n - 1, pose_b, lenses[1], n - 1)) if n > 1 else ()
    return CameraPath(name, poses, focal, np.arange(n, dtype=np.float64), image_size, timeline.fps, sensor_width_mm,
                      timeline.start_timecode, keys)


def _resolve_end(end: np.ndarray | str, set_cameras: Cameras | None, sensor_width_mm: float, label: str):
    """``(pose, focal_mm or None, image_size or None)`` of a path end given as a pose or a set camera id."""
    if isinstance(end, str):
        if set_cameras is None:
            raise PathError(f"the {label} camera {end!r} is a set camera id: pass set_cameras too")
        i = set_cameras.index(end)
        return (set_cameras.world_to_camera[i].copy(), set_camera_focal_mm(set_cameras, end, sensor_width_mm),
                tuple(int(v) for v in set_cameras.image_size[i]))
    pose = np.asarray(end, dtype=np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise PathError(f"the {label} pose must be a finite world-to-camera [4, 4] matrix, got shape {list(pose.shape)}")
    return pose, None, None


def dolly_path(
    set_cameras: Cameras,
    camera_a: str,
    camera_b: str,
    timeline: Timeline,
    *,
    focal_mm: float | tuple[float, float] | None = None,
    image_size: tuple[int, int] | None = None,
    sensor_width_mm: float = 36.0,
    name: str | None = None,
) -> CameraPath:
    """A move from set camera A's pose to set camera B's over the whole timeline, easing in and out.

    The lens goes from A's focal length to B's (converted to mm with ``sensor_width_mm``) unless
    ``focal_mm`` is given; ``image_size`` defaults to camera A's. See :func:`between_path`.
    """
    return between_path(camera_a, camera_b, timeline, set_cameras=set_cameras, focal_mm=focal_mm,
                        image_size=image_size, sensor_width_mm=sensor_width_mm, ease=True,
                        name=name or f"dolly_{camera_a}_{camera_b}")


def orbit_path(
    set_cameras: Cameras,
    timeline: Timeline,
    *,
    centre: Sequence[float] | None = None,
    radius: float | None = None,
    height: float | None = None,
    degrees: float = 90.0,
    start_deg: float | None = None,
    focal_mm: float | None = None,
    image_size: tuple[int, int] | None = None,
    sensor_width_mm: float = 36.0,
    ease: bool = True,
    name: str = "orbit",
) -> CameraPath:
    """A camera circling ``centre`` at a fixed height, always looking at it (level, +Z up).

    Args:
        centre: default :func:`rig_centre`. radius: default :func:`rig_radius`.
        height: above the centre; default the set cameras' mean height above it.
        degrees: how far to go round, counter-clockwise seen from above (negative: clockwise).
        start_deg: azimuth of the first frame, counter-clockwise from +X; default the first set camera's.
        focal_mm: default the median of the set cameras' lenses.
        ease: ease in and out of the move; else constant angular speed.
    """
    centre = rig_centre(set_cameras) if centre is None else np.asarray(centre, dtype=np.float64)
    radius = rig_radius(set_cameras, centre) if radius is None else float(radius)
    if not (math.isfinite(radius) and radius > 0):
        raise PathError(f"orbit: radius = {radius}; give a radius > 0")
    offsets = set_cameras.centers - centre
    height = float(offsets[:, 2].mean()) if height is None else float(height)
    start_deg = math.degrees(math.atan2(offsets[0, 1], offsets[0, 0])) if start_deg is None else float(start_deg)
    if focal_mm is None:
        focal_mm = float(np.median([set_camera_focal_mm(set_cameras, c, sensor_width_mm) for c in set_cameras.camera_ids]))
    n = timeline.frame_count
    u = np.arange(n) / (n - 1) if n > 1 else np.zeros(1)
    angles = np.radians(start_deg + degrees * (u * u * (3 - 2 * u) if ease else u))
    eyes = centre + np.stack([radius * np.cos(angles), radius * np.sin(angles), np.full(n, height)], axis=1)
    poses = np.stack([look_at(eye, centre) for eye in eyes])
    size = tuple(set_cameras.image_size[0]) if image_size is None else image_size
    return CameraPath(name, poses, np.full(n, float(focal_mm)), np.arange(n, dtype=np.float64), size, timeline.fps,
                      sensor_width_mm, timeline.start_timecode)


def offset_path(
    set_cameras: Cameras,
    camera: str,
    timeline: Timeline,
    *,
    translate: Sequence[float] = (0.0, 0.0, 0.0),
    rotate_deg: Sequence[float] = (0.0, 0.0, 0.0),
    focal_mm: float | None = None,
    image_size: tuple[int, int] | None = None,
    sensor_width_mm: float = 36.0,
    name: str | None = None,
) -> CameraPath:
    """A static copy of a set camera, moved: the angle a camera a little to the side would have had.

    Args:
        translate: ``(right, down, forward)`` in the set camera's own axes, world units.
        rotate_deg: ``(pan, tilt, roll)`` as on a tripod head, about the moved centre: pan about
            world +Z (positive turns right, seen from above clockwise), then tilt about the camera's
            right axis (positive looks up), then roll about its optical axis (positive turns the
            camera clockwise as seen from behind it).
        focal_mm, image_size: default the set camera's (its lens converted with ``sensor_width_mm``).
            The copy is a pinhole with the principal point at the image centre and no distortion.
    """
    i = set_cameras.index(camera)
    pose = set_cameras.world_to_camera[i]
    R_cw = pose[:3, :3].T
    eye = -R_cw @ pose[:3, 3] + R_cw @ np.asarray(translate, dtype=np.float64)
    pan, tilt, roll = (float(v) for v in rotate_deg)
    R_new = (Rotation.from_euler("z", -pan, degrees=True).as_matrix() @ R_cw
             @ Rotation.from_euler("XZ", [tilt, roll], degrees=True).as_matrix())  # intrinsic: Rx(tilt) @ Rz(roll)
    new_pose = _poses_from(R_new[None], eye[None])[0]
    if not np.any(translate) and not np.any(rotate_deg):
        new_pose = pose.copy()
    focal = set_camera_focal_mm(set_cameras, camera, sensor_width_mm) if focal_mm is None else float(focal_mm)
    size = tuple(set_cameras.image_size[i]) if image_size is None else image_size
    n = timeline.frame_count
    return CameraPath(name or f"{camera}_offset", np.tile(new_pose, (n, 1, 1)), np.full(n, focal),
                      np.arange(n, dtype=np.float64), size, timeline.fps, sensor_width_mm, timeline.start_timecode,
                      (Keyframe(0, new_pose, focal, 0),))
