"""The refiner interface and the classical refiner on a shot whose truth is known: a textured floor, a moving
square, and guide frames damaged the way splat renders are (uncovered holes, floaters popping for a frame)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reshoot.metrics import flicker, psnr
from reshoot.refine import RefineInputs
from reshoot.refine.classical import ClassicalConfig, ClassicalRefiner
from reshoot.stages.refine import RefineConfig


def _truth(frames: int = 12, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    rng = np.random.default_rng(0)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    floor = np.stack([0.5 + 0.3 * np.sin(x / 5.0), 0.5 + 0.3 * np.cos(y / 4.0), 0.4 + 0.2 * np.sin((x + y) / 7.0)], -1)
    floor += rng.normal(0, 0.02, floor.shape)
    shots = np.repeat(floor[None], frames, 0).astype(np.float32)
    for t in range(frames):  # a red square crossing the floor, 2 px a frame
        shots[t, 18:30, 8 + 2 * t:20 + 2 * t] = [0.9, 0.15, 0.1]
    return np.clip(shots, 0, 1)


def _damaged(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Guide frames as a splat render gives them: premultiplied over black with holes, and floaters popping."""
    rng = np.random.default_rng(1)
    alpha = np.ones(truth.shape[:3], np.float32)
    alpha[:, 2:10, 40:52] = 0.0  # a hole no camera saw (the same in every frame)
    alpha[:, 36:44, 4:14] = 0.4  # thin coverage
    guide = truth * alpha[..., None]
    for t in range(0, len(truth), 3):  # a floater for one frame in three
        r, c = rng.integers(5, 35), rng.integers(25, 55)
        guide[t, r:r + 6, c:c + 6] = [0.2, 0.8, 0.9]
    return guide.astype(np.float32), alpha


def test_classical_refiner_brings_a_damaged_shot_closer_to_the_truth():
    truth = _truth()
    guide, alpha = _damaged(truth)
    inputs = RefineInputs(guide, confidence=alpha * 0.5, alpha=alpha)
    calls = []
    result = ClassicalRefiner().refine(inputs, progress=lambda done, total: calls.append((done, total)))
    assert result.frames.shape == guide.shape and result.frames.dtype == np.float32
    assert calls[-1][0] == calls[-1][1] == 2 * len(guide)
    t_truth, t_guide, t_out = (torch.from_numpy(a) for a in (truth, guide, result.frames))
    before, after = psnr(t_guide, t_truth), psnr(t_out, t_truth)
    assert after > before + 3.0, f"PSNR {before:.1f} -> {after:.1f} dB"
    assert flicker(t_out, t_truth) < 0.95 * flicker(t_guide, t_truth)
    hole = (slice(None), slice(2, 10), slice(40, 52))
    assert np.abs(result.frames[hole] - truth[hole]).mean() < 0.15  # filled with something like the floor
    # the moving square survives: it is still in the right place in the last frame
    last = result.frames[-1, 20:28, 10 + 2 * 11:18 + 2 * 11]
    assert np.abs(last - [0.9, 0.15, 0.1]).mean() < 0.1
    assert result.record["refiner"] == "classical" and result.record["frames"] == len(guide)


def test_classical_refiner_honours_start_and_end_frames_and_can_leave_flicker_alone():
    truth = _truth(frames=6)
    guide, alpha = _damaged(truth)
    inputs = RefineInputs(guide, alpha, alpha, start_frame=truth[0], end_frame=truth[-1])
    result = ClassicalRefiner(ClassicalConfig(smooth_window=0)).refine(inputs)
    assert np.array_equal(result.frames[0], truth[0]) and np.array_equal(result.frames[-1], truth[-1])
    # without flicker removal, fully covered pixels are the guide's own
    covered = (alpha[2] == 1) & (np.abs(guide[2] - truth[2]).sum(-1) < 1e-6)
    assert np.allclose(result.frames[2][covered], guide[2][covered], atol=1e-6)


def test_refine_inputs_check_shapes_and_values():
    guide = np.zeros((3, 8, 10, 3), np.float32)
    with pytest.raises(ValueError, match=r"confidence: expected shape \[3, 8, 10\]"):
        RefineInputs(guide, np.zeros((3, 8, 9), np.float32), np.zeros((3, 8, 10), np.float32))
    bad = guide.copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="frame 1 has non-finite"):
        RefineInputs(bad, np.zeros((3, 8, 10), np.float32), np.zeros((3, 8, 10), np.float32))
    with pytest.raises(ValueError, match="strength"):
        RefineConfig(strength=1.5)
    assert flicker(torch.zeros(2, 4, 4, 3)) == 0.0
