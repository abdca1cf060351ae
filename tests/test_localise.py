"""Localising a held-out camera against a finished scene: a textured floor seen by a camera placed slightly wrong."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from reshoot.cameras import Cameras, look_at
from reshoot.localise import LocaliseConfig, localise_camera
from reshoot.path_builders import roll_pose
from reshoot.splat.scene import DynamicScene, make_params
from reshoot.splat.render import render

SIZE = (96, 72)


def _floor(count: int = 90, half: float = 1.5) -> DynamicScene:
    """A floor of small Gaussians coloured by a few sine waves of different sizes, and a box standing on it."""
    u = torch.linspace(-half, half, count)
    x, y = torch.meshgrid(u, u, indexing="ij")
    x, y = x.flatten(), y.flatten()
    colour = torch.stack([0.5 + 0.4 * torch.sin(3.1 * x + 1.3 * y), 0.5 + 0.4 * torch.sin(7.3 * y - 2.2 * x),
                          0.5 + 0.4 * torch.cos(11.0 * x) * torch.sin(5.0 * y)], -1)
    box = (x.abs() < 0.3) & (y.abs() < 0.3)
    z = torch.where(box, torch.full_like(x, 0.4), torch.zeros_like(x))
    means = torch.stack([x, y, z], -1)
    return DynamicScene(make_params(means, colour, torch.full((len(x),), 1.3 * half / count), 0, opacity=0.99), 0)


def _camera(world_to_camera: np.ndarray, focal_px: float = 80.0) -> Cameras:
    return Cameras.create(["held-out"], [focal_px], [focal_px], [SIZE[0] / 2], [SIZE[1] / 2], world_to_camera[None],
                          np.array([SIZE]))


def _filmed(scene: DynamicScene, camera: Cameras) -> np.ndarray:
    with torch.no_grad():
        return (render(scene, camera, 0.0).rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _angle_deg(a: Cameras, b: Cameras) -> float:
    relative = a.world_to_camera[0, :3, :3] @ b.world_to_camera[0, :3, :3].T
    return float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1))))


def _misplaced(truth: Cameras) -> Cameras:
    """The truth turned 0.6 deg, moved 1 % of its height and with a 1.5 % longer lens: a registration's gauge."""
    pose = roll_pose(truth.world_to_camera[0], 0.4)
    c, s = np.cos(np.radians(0.45)), np.sin(np.radians(0.45))
    pan = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]])
    pose = pan @ pose  # a turn about the camera's own y axis
    pose[:3, 3] += [0.02, -0.01, 0.01]
    K = truth.K.copy()
    K[0, :2, :2] *= 1.015
    return replace(truth, world_to_camera=pose[None], K=K)


def test_localising_puts_a_misplaced_camera_back_where_it_filmed_from():
    scene = _floor()
    truth = _camera(look_at([0.2, -0.3, 2.0], [0.0, 0.0, 0.0], [0, 1, 0]))
    filmed = _filmed(scene, truth)
    placed = _misplaced(truth)
    assert _angle_deg(placed, truth) > 0.5
    found = localise_camera(scene, placed, [(0.0, filmed, None)])
    assert found.accepted
    assert 255 * found.error_before > 5 and 255 * found.error_after < 1.0  # mean error, 8-bit levels
    assert _angle_deg(found.camera, truth) < 0.15
    # a floor seen from above leaves the lens and the distance free to trade (SfM's own gauge): their ratio is fixed
    distance = np.linalg.norm(found.camera.centers[0])
    assert found.camera.K[0, 0, 0] / distance == pytest.approx(80.0 / np.linalg.norm(truth.centers[0]), rel=0.003)
    assert np.linalg.norm(found.camera.centers[0] - truth.centers[0]) < 0.03
    assert found.rotation_deg == pytest.approx(_angle_deg(placed, found.camera), abs=0.02)
    assert "localised: turned" in found.describe()


def test_pixels_left_out_do_not_pull_the_camera():
    """An actor the scene does not hold (a bright square where it filmed) is left out by its mask."""
    scene = _floor()
    truth = _camera(look_at([0.2, -0.3, 2.0], [0.0, 0.0, 0.0], [0, 1, 0]))
    filmed = _filmed(scene, truth)
    actor = np.zeros(SIZE[::-1], bool)
    actor[10:40, 50:80] = True
    filmed[actor] = [255, 0, 255]
    found = localise_camera(scene, _misplaced(truth), [(0.0, filmed, actor)])
    assert found.accepted and _angle_deg(found.camera, truth) < 0.15


def test_a_correction_beyond_the_limits_is_refused_and_the_placement_kept():
    scene = _floor()
    truth = _camera(look_at([0.2, -0.3, 2.0], [0.0, 0.0, 0.0], [0, 1, 0]))
    placed = _misplaced(truth)
    found = localise_camera(scene, placed, [(0.0, _filmed(scene, truth), None)], LocaliseConfig(max_rotation_deg=0.1))
    assert not found.accepted
    assert found.camera is placed and found.error_after == found.error_before
    assert "refused" in found.describe()
    with pytest.raises(ValueError, match="frame is 10x10"):
        localise_camera(scene, placed, [(0.0, np.zeros((10, 10, 3), np.uint8), None)])
