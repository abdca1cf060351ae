"""The guide's confidence map on a scene built by hand: a floor two real cameras see, then one of them blocked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reshoot.cameras import Cameras, look_at
from reshoot.splat.render import render
from reshoot.splat.scene import DynamicScene, concat_params, make_params
from reshoot.stages.guide import RealCameras, confidence_map, depth_colours, unproject


def _camera(camera_id: str, eye, target, up=(0.0, 0.0, 1.0), size=(64, 48), focal_px=50.0) -> Cameras:
    return Cameras.create([camera_id], [focal_px], [focal_px], [size[0] / 2], [size[1] / 2],
                          look_at(eye, target, up)[None], np.array([size]))


def _patch(centre, half: float, count: int, colour) -> dict:
    u = torch.linspace(-half, half, count)
    x, y = torch.meshgrid(u, u, indexing="ij")
    means = torch.stack([x.flatten() + centre[0], y.flatten() + centre[1], torch.full((count * count,), centre[2])], -1)
    return make_params(means, torch.tensor([colour] * len(means)), torch.full((len(means),), 1.2 * half / count), 0,
                       opacity=0.99)


def _real(*cameras: Cameras) -> RealCameras:
    joined = Cameras(tuple(c.camera_ids[0] for c in cameras), np.concatenate([c.K for c in cameras]),
                     np.zeros((len(cameras), 5)), np.concatenate([c.world_to_camera for c in cameras]),
                     np.concatenate([c.image_size for c in cameras]))
    return RealCameras(joined, joined.world_to_camera[:, None], np.ones((len(cameras), 1), bool))


def _guide(scene: DynamicScene, camera: Cameras) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = render(scene, camera, 0.0)
    return out.alpha.numpy(), torch.where(out.alpha > 1e-3, out.depth, 0).numpy()


def test_confidence_counts_the_cameras_that_saw_a_point_and_their_angle():
    floor = _patch((0, 0, 0), 1.0, 60, [0.6, 0.5, 0.4])
    left, right = _camera("left", (-1.0, 0, 1.5), (0, 0, 0)), _camera("right", (1.0, 0, 1.5), (0, 0, 0))
    new = _camera("new", (0, 0, 2.0), (0, 0, 0), up=(0, 1, 0))
    scene = DynamicScene(floor, 0)
    alpha, depth = _guide(scene, new)
    assert alpha[24, 32] > 0.95 and depth[24, 32] == pytest.approx(2.0, abs=0.02)
    points = unproject(new, depth)
    assert np.allclose(points[24, 32], [0, 0, 0], atol=0.05)
    confidence = confidence_map(scene, new, alpha, depth, _real(left, right), 0, 0.0, downscale=1)
    # the floor's centre: both cameras saw it, the nearer in angle at atan(1 / 1.5) = 33.7 degrees off the new ray
    angle = math.degrees(math.atan2(1.0, 1.5))
    assert confidence[24, 32] == pytest.approx(alpha[24, 32] * (1 - angle / 90), abs=0.03)
    assert confidence.min() >= 0 and confidence.max() <= 1

    # a wall in front of the right camera hides the floor's centre from it: one camera saw it, half the confidence
    wall = _patch((0.5, 0, 0.75), 0.25, 12, [0.1, 0.1, 0.9])
    blocked = DynamicScene(concat_params(floor, wall), 0)
    alpha_b, depth_b = _guide(blocked, new)
    assert depth_b[24, 32] == pytest.approx(2.0, abs=0.02)  # the new camera still sees the floor there
    confidence_b = confidence_map(blocked, new, alpha_b, depth_b, _real(left, right), 0, 0.0, downscale=1)
    assert confidence_b[24, 32] == pytest.approx(confidence[24, 32] / 2, abs=0.03)
    # nothing saw it: a camera looking away
    away = _camera("away", (0, 3.0, 1.5), (0, 6.0, 1.5))
    nothing = confidence_map(scene, new, alpha, depth, _real(away), 0, 0.0, downscale=1)
    assert nothing.max() == 0


def test_depth_picture_is_bright_near_and_black_where_nothing_is():
    depth = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    picture = depth_colours(depth)
    assert picture.shape == (2, 2, 3) and picture.dtype == np.uint8
    assert (picture[0, 0] == 0).all() and picture[0, 1, 0] > picture[1, 0, 0] > picture[1, 1, 0] > 0
