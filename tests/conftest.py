"""Shared fixtures: a tiny synthetic shoot rendered once per test session, and the real data's location."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reshoot.cameras import Cameras
from reshoot.sample import PRESETS, make_sample_shoot

#: The tiny shoot the tests share: 3 set cameras, 10 frames at 96x54.
TINY = replace(PRESETS["tiny"], n_cameras=3, frame_count=10)
#: Real footage nobody on this project made; tests that use it skip when it is absent.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_shoot(tmp_path_factory):
    return make_sample_shoot(tmp_path_factory.mktemp("sample") / "shoot", TINY)


def shared_data(name: str) -> Path:
    """A real data set's folder, or skip the test saying where it was looked for."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real data {name} not found at {folder} (see datasets/README.md)")
    return folder


def assert_same_cameras(a: Cameras, b: Cameras, tol: float = 1e-9) -> None:
    """Same ids and sizes, and K, distortion and poses equal to ``tol``."""
    assert a.camera_ids == b.camera_ids
    assert np.abs(a.K - b.K).max() <= tol
    assert np.abs(a.distortion - b.distortion).max() <= tol
    assert np.abs(a.world_to_camera - b.world_to_camera).max() <= tol
    np.testing.assert_array_equal(a.image_size, b.image_size)
