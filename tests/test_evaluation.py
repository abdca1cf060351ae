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


# --- scores by region, the verdict, the report -------------------------------------------------------------------

def _textured(h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    """A seeded image [H, W, 3] in [0.2, 0.8] with detail at every scale SSIM looks at."""
    rng = np.random.default_rng(seed)
    return (0.2 + 0.6 * rng.random((h, w, 3))).astype(np.float32)


def _actor_box(h: int = 40, w: int = 60) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[10:30, 35:55] = True  # 400 of 2400 pixels
    return mask


def test_region_psnr_is_over_the_region_pixels_only():
    import torch

    from reshoot.metrics import region_scores

    truth = _textured()
    actor = _actor_box()
    shot = truth.copy()
    shot[actor] += 0.1  # actor: error 0.1 everywhere -> MSE 0.01 -> 20 dB
    shot[~actor] -= 0.01  # set: error 0.01 -> MSE 1e-4 -> 40 dB
    scores = region_scores(torch.from_numpy(shot), torch.from_numpy(truth), torch.from_numpy(actor))
    assert scores["actor_psnr_db"] == pytest.approx(20.0, abs=1e-3)
    assert scores["set_psnr_db"] == pytest.approx(40.0, abs=1e-3)
    fraction = actor.mean()
    assert scores["actor_fraction"] == pytest.approx(fraction)
    assert scores["psnr_db"] == pytest.approx(-10 * np.log10(fraction * 0.01 + (1 - fraction) * 1e-4), abs=1e-3)
    # without a mask: no regions; with an empty one: the set is the whole frame and there is no actor figure
    plain = region_scores(torch.from_numpy(shot), torch.from_numpy(truth))
    assert plain["psnr_db"] == pytest.approx(scores["psnr_db"]) and plain["set_psnr_db"] is None
    assert plain["actor_psnr_db"] is None and plain["actor_fraction"] is None
    empty = region_scores(torch.from_numpy(shot), torch.from_numpy(truth), torch.zeros(40, 60, dtype=torch.bool))
    assert empty["actor_psnr_db"] is None and empty["actor_ssim"] is None
    assert empty["set_psnr_db"] == pytest.approx(empty["psnr_db"]) and empty["set_ssim"] == pytest.approx(empty["ssim"])
    with pytest.raises(ValueError, match=r"\[40, 60\].*\[60, 40\]"):
        region_scores(torch.from_numpy(shot), torch.from_numpy(truth), torch.zeros(60, 40, dtype=torch.bool))


def test_region_ssim_averages_the_ssim_map_over_the_region():
    import torch

    from reshoot.metrics import region_scores, ssim, ssim_map

    truth = _textured()
    actor = _actor_box()
    shot = truth.copy()
    shot[actor] = _textured(seed=1)[actor]  # the actor's detail is wrong, the set's is right
    s, t, a = torch.from_numpy(shot), torch.from_numpy(truth), torch.from_numpy(actor)
    field = ssim_map(s, t)
    assert field.shape == (40, 60)
    assert float(field.mean()) == pytest.approx(float(ssim(s, t)), abs=1e-6)
    assert float(ssim(s, t, mask=a)) == pytest.approx(float(field[a].mean()), abs=1e-6)
    scores = region_scores(s, t, a)
    assert scores["actor_ssim"] == pytest.approx(float(field[a].mean()), abs=1e-6)
    assert scores["actor_ssim"] < 0.3 < 0.9 < scores["set_ssim"]
    far = torch.ones_like(a)
    far[5:35, 30:] = False  # set pixels beyond the window's reach of the actor are untouched
    assert float(field[far].min()) == pytest.approx(1.0, abs=1e-5)
    assert ssim_map(s[None].repeat(2, 1, 1, 1), t[None].repeat(2, 1, 1, 1)).shape == (2, 40, 60)


@pytest.mark.parametrize("whole, set_db, actor_db, verdict, reason", [
    (30.0, 31.0, 25.0, "usable", "every region meets its threshold"),
    (25.0, 27.0, 22.0, "usable", "every region meets its threshold"),  # the thresholds themselves pass
    (26.0, 26.5, 23.0, "needs fixes", "set 26.5 dB < 27 dB"),
    (26.0, 28.0, 18.0, "needs fixes", "actor 18.0 dB < 22 dB"),
    (24.0, 26.0, 21.0, "needs fixes", "whole frame 24.0 dB < 25 dB; set 26.0 dB < 27 dB; actor 21.0 dB < 22 dB"),
    (26.0, 28.0, 15.0, "not usable", "actor 15.0 dB < 16 dB"),
    (19.5, 21.0, 17.0, "not usable", "whole frame 19.5 dB < 20 dB; also short of usable: set 21.0 dB < 27 dB; "
                                     "actor 17.0 dB < 22 dB"),
    (19.5, 30.0, 15.0, "not usable", "whole frame 19.5 dB < 20 dB; actor 15.0 dB < 16 dB"),
    (26.0, None, None, "usable", "every region meets its threshold (set and actor not judged: no actor region known)"),
])
def test_verdict_follows_the_stated_thresholds(whole, set_db, actor_db, verdict, reason):
    from reshoot.validation import NOT_USABLE_BELOW_PSNR_DB, USABLE_MIN_PSNR_DB, VERDICTS, shot_verdict

    assert USABLE_MIN_PSNR_DB == {"whole frame": 25.0, "set": 27.0, "actor": 22.0}
    assert NOT_USABLE_BELOW_PSNR_DB == {"whole frame": 20.0, "set": 20.0, "actor": 16.0}
    result = shot_verdict({"psnr_db": whole, "set_psnr_db": set_db, "actor_psnr_db": actor_db})
    assert result == {"verdict": verdict, "verdict_reason": reason} and verdict in VERDICTS


def test_write_report_scores_regions_and_shows_the_verdict_and_heat_map(tmp_path):
    import json
    import re

    from PIL import Image

    from reshoot.validation import HEATMAP_MAX_LEVELS, _heat_colours, write_report

    frames, h, w = 4, 40, 60
    truth_f = np.stack([_textured(seed=k) for k in range(frames)])
    truth = {k: (truth_f[k] * 255 + 0.5).astype(np.uint8) for k in range(frames)}
    exact = np.stack([truth[k] / 255 for k in range(frames)]).astype(np.float32)
    actor = {k: _actor_box() if k else np.zeros((h, w), bool) for k in range(frames)}  # frame 0: no actor yet
    guide = exact.copy()
    guide[:, _actor_box()] = 0.0  # the guide lost the actor: error 0.2-0.8 there
    refined = np.clip(exact + 0.02, 0, 1)  # the refined shot: 0.02 off everywhere -> about 34 dB
    metrics = write_report(tmp_path, "cam9", "classical", guide, refined, truth, scene=tmp_path / "scene.pt",
                           actor=actor, actor_region="boxes drawn by a test")
    g, r = metrics["guide"], metrics["refined"]
    first, *others = g["per_frame"]
    assert first["actor_psnr_db"] is None and first["set_psnr_db"] == pytest.approx(first["psnr_db"])
    assert first["psnr_db"] < 20  # the box lost in frame 0 is set: it counts there
    assert all(row["set_psnr_db"] > 100 and row["actor_psnr_db"] < 10 for row in others)  # set exact, actor lost
    assert g["actor_frames"] == 3 and g["actor_psnr_db"] == pytest.approx(np.mean([r["actor_psnr_db"] for r in others]))
    assert g["verdict"] == "not usable" and re.search(r"actor \d+\.\d dB < 16 dB", g["verdict_reason"])
    assert r["set_psnr_db"] == pytest.approx(r["actor_psnr_db"], abs=0.5) and r["verdict"] == "usable"
    assert metrics["verdict"] == "usable" and metrics["actor_region"] == "boxes drawn by a test"
    out = tmp_path / "eval" / "cam9"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["guide"]["actor_psnr_db"] == pytest.approx(g["actor_psnr_db"]) and saved["verdict"] == "usable"
    assert saved["thresholds_psnr_db"]["usable_min"]["actor"] == 22.0
    report = (out / "report.html").read_text()
    assert 'src="error_heatmap.png"' in report and "Verdict on the refined shot: <b>usable</b>" in report
    assert "actor &ge; 22 dB" in report and "whole frame &lt; 20 dB" in report and "not usable" in report
    assert f"{g['actor_psnr_db']:.2f} dB" in report and "boxes drawn by a test" in report
    heat = np.asarray(Image.open(out / "error_heatmap.png").convert("RGB")).astype(int)
    assert heat.shape[1] >= 2 * 300  # 60 pixels wide: enlarged 5 times
    # the guide's lost actor (51-204 levels) shows in the top colour in both its panels (400 pixels, each 5 x 5);
    # the refined shot (5 levels off) and the guide's exact set are dark
    top = np.abs(heat - _heat_colours(np.array([[HEATMAP_MAX_LEVELS]]))[0, 0].astype(int)).sum(axis=-1) < 30
    assert 2 * 400 * 25 * 0.9 < top.sum() < 2 * 400 * 25 * 1.2


def test_heat_colours_run_dark_to_bright_and_outline_the_actor():
    from reshoot.validation import HEATMAP_MAX_LEVELS, _heat_colours, _outline

    colours = _heat_colours(np.array([[0.0, HEATMAP_MAX_LEVELS / 2, HEATMAP_MAX_LEVELS, 500.0]])).astype(int)
    brightness = colours.sum(axis=-1)[0]
    assert brightness[0] < 10 and brightness[0] < brightness[1] < brightness[2] == brightness[3] > 600
    edge = _outline(_actor_box())
    assert edge.sum() == 2 * (20 + 20) - 4 and not edge[15:25, 40:50].any() and edge[10, 35] and edge[29, 54]


def test_held_out_actor_is_what_differs_from_the_clean_plate():
    from reshoot.cameras import Cameras
    from reshoot.splat.data import ShotFootage
    from reshoot.validation import held_out_actor_masks

    T, h, w = 5, 24, 32
    images = np.full((1, T, h, w, 3), 90, np.uint8)
    for t in range(T):
        images[0, t, 8:14, 3 + 5 * t:9 + 5 * t] = 220  # the actor walks to the right
    cameras = Cameras.create(["cam0"], [30.0], [30.0], [16.0], [12.0], np.eye(4)[None], np.array([[w, h]]))
    locked = ShotFootage(cameras, images, np.ones((1, T), bool), np.tile(np.eye(4), (1, T, 1, 1)),
                         np.linspace(0, 1, T), np.arange(10, 10 + T))
    actor, region = held_out_actor_masks(locked, w, h)
    assert sorted(actor) == list(range(10, 10 + T)) and "clean plate" in region and "24 levels" in region
    for t in range(T):
        expected = np.zeros((h, w), bool)
        expected[8:14, 3 + 5 * t:9 + 5 * t] = True
        np.testing.assert_array_equal(actor[10 + t], expected)
    moving = np.tile(np.eye(4), (1, T, 1, 1))
    moving[0, :, 0, 3] = np.linspace(0, 1, T)  # a camera that moves has no clean plate: no actor region
    assert held_out_actor_masks(ShotFootage(cameras, images, np.ones((1, T), bool), moving, np.linspace(0, 1, T),
                                            np.arange(T)), w, h) == ({}, "")


def test_without_an_actor_region_only_the_whole_frame_is_scored_and_judged(tmp_path):
    from reshoot.validation import write_report

    truth = {k: (_textured(seed=k) * 255).astype(np.uint8) for k in range(3)}
    shot = np.stack([truth[k] / 255 + 0.01 for k in range(3)]).astype(np.float32)
    metrics = write_report(tmp_path, "crane", "classical", shot, shot, truth, scene=tmp_path / "scene.pt")
    assert metrics["actor_region"] is None and metrics["refined"]["set_psnr_db"] is None
    assert metrics["refined"]["actor_frames"] == 0 and metrics["refined"]["psnr_db"] == pytest.approx(40.0, abs=0.1)
    assert metrics["verdict"] == "usable" and "not judged: no actor region known" in metrics["verdict_reason"]
    report = (tmp_path / "eval" / "crane" / "report.html").read_text()
    assert "no actor region is known" in report and "<td>-</td>" in report
