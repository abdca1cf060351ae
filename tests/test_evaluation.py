"""Pose errors after similarity alignment: zero for a transformed copy, and they see a real error."""

from __future__ import annotations

import numpy as np
import pytest

from reshoot.cameras import Cameras, look_at
from reshoot.evaluation import pose_errors


def _ring(n: int = 6) -> Cameras:
    poses = np.stack([look_at((3 * np.cos(a), 3 * np.sin(a), 1.0 + 0.3 * k % 2), (0, 0, 1))
                      for k, a in enumerate(np.linspace(0, 2 * np.pi, n, endpoint=False))])
    return Cameras.create([f"c{k}" for k in range(n)], [200.0] * n, [200.0] * n, [160.0] * n, [90.0] * n, poses,
                          np.tile([320, 180], (n, 1)))


def test_a_similarity_copy_has_no_error():
    truth = _ring()
    theta = 0.7
    S = np.eye(4)
    S[:3, :3] = 0.4 * np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    S[:3, 3] = [2.0, -1.0, 0.3]
    errors = pose_errors(truth.transform_world(S), truth)
    assert errors.rotation_deg.max() < 1e-6 and errors.centre_error.max() < 1e-9
    np.testing.assert_allclose(errors.truth_from_estimated @ S, np.eye(4), atol=1e-9)


def test_a_tilted_camera_shows_its_error():
    truth = _ring()
    poses = truth.world_to_camera.copy()
    tilt = np.radians(0.5)
    centre = truth.centers[2]
    poses[2, :3, :3] = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]]) @ poses[2, :3, :3]
    poses[2, :3, 3] = -poses[2, :3, :3] @ centre  # tilted about its own centre
    errors = pose_errors(Cameras(truth.camera_ids, truth.K, truth.distortion, poses, truth.image_size), truth)
    # the mean-rotation alignment spreads one camera's tilt: 5/6 of it stays on that camera, 1/6 on the others
    assert errors.rotation_deg[2] == pytest.approx(0.5 * 5 / 6, abs=1e-3)
    np.testing.assert_allclose(np.delete(errors.rotation_deg, 2), 0.5 / 6, atol=1e-3)
    moved = truth.world_to_camera.copy()
    moved[4, :3, 3] -= moved[4, :3, :3] @ np.array([0.0, 0.0, 0.3])  # camera 4 moved 0.3 up
    errors = pose_errors(Cameras(truth.camera_ids, truth.K, truth.distortion, moved, truth.image_size), truth,
                         extent=10.0)
    assert errors.centre_error[4] == errors.centre_error.max() > 0.15
    assert errors.table()[4]["centre_error_pct"] == pytest.approx(10 * errors.centre_error[4])
    with pytest.raises(ValueError, match="3 or more"):
        pose_errors(truth.select(["c0", "c1"]), truth)
