"""Pose errors after similarity alignment: zero for a transformed copy, and they see a real error."""

from __future__ import annotations

import numpy as np
import pytest

from reshoot.cameras import Cameras, look_at
from reshoot.evaluation.scores import pose_errors


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


def test_a_shot_in_another_cameras_colours_scores_low_raw_and_high_with_its_colours_matched():
    from reshoot.evaluation.evaluate import score_frames

    truth = {k: (_textured(seed=k) * 200 + 20).astype(np.uint8) for k in range(3)}
    exact = np.stack([truth[k] / 255 for k in range(3)]).astype(np.float32)
    graded = 0.8 * exact[..., ::-1] + 0.1  # the same picture, its channels swapped and dimmed: another colour response
    scores = score_frames(graded, truth)
    assert scores["psnr_db"] < 20 and scores["psnr_colour_matched_db"] > 45  # one 3x4 map undoes it
    assert all(row["psnr_colour_matched_db"] > 45 for row in scores["per_frame"])
    moved = np.roll(exact, 3, axis=2)  # the shapes 3 pixels off: no colour map hides that (flattening the contrast
    shifted = score_frames(moved, truth)  # towards the mean gains a few dB, far from the graded shot's)
    assert shifted["psnr_db"] < shifted["psnr_colour_matched_db"] < 20


@pytest.mark.parametrize("whole, set_db, actor_db, verdict, reason", [
    (30.0, 31.0, 25.0, "usable", "every region meets its threshold"),
    (25.0, 27.0, 22.0, "usable", "every region meets its threshold"),  # the thresholds themselves pass
    (26.0, 26.5, 23.0, "needs fixes", "set 26.50 dB < 27 dB"),
    (26.0, 28.0, 18.0, "needs fixes", "actor 18.00 dB < 22 dB"),
    (26.0, 28.0, 21.95, "needs fixes", "actor 21.95 dB < 22 dB"),  # never "22.0 dB < 22 dB"
    (24.0, 26.0, 21.0, "needs fixes", "whole frame 24.00 dB < 25 dB; set 26.00 dB < 27 dB; actor 21.00 dB < 22 dB"),
    (26.0, 28.0, 15.0, "not usable", "actor 15.00 dB < 16 dB"),
    (19.5, 21.0, 17.0, "not usable", "whole frame 19.50 dB < 20 dB; also short of usable: set 21.00 dB < 27 dB; "
                                     "actor 17.00 dB < 22 dB"),
    (19.5, 30.0, 15.0, "not usable", "whole frame 19.50 dB < 20 dB; actor 15.00 dB < 16 dB"),
    (26.0, None, None, "usable", "every region meets its threshold (set and actor not judged: no actor region known)"),
])
def test_verdict_follows_the_stated_thresholds(whole, set_db, actor_db, verdict, reason):
    from reshoot.evaluation.report import NOT_USABLE_BELOW_PSNR_DB, USABLE_MIN_PSNR_DB, VERDICTS, shot_verdict

    assert USABLE_MIN_PSNR_DB == {"whole frame": 25.0, "set": 27.0, "actor": 22.0}
    assert NOT_USABLE_BELOW_PSNR_DB == {"whole frame": 20.0, "set": 20.0, "actor": 16.0}
    result = shot_verdict({"psnr_db": whole, "set_psnr_db": set_db, "actor_psnr_db": actor_db})
    assert result == {"verdict": verdict, "verdict_reason": reason} and verdict in VERDICTS


def test_write_report_scores_regions_and_shows_the_verdict_and_heat_map(tmp_path):
    import json
    import re

    from PIL import Image

    from reshoot.evaluation.evaluate import write_report
    from reshoot.evaluation.report import HEATMAP_MAX_LEVELS, _heat_colours

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
    assert g["verdict"] == "not usable" and re.search(r"actor \d+\.\d\d dB < 16 dB", g["verdict_reason"])
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
    assert f"colours matched (one 3x4 colour map for the whole shot" in report
    assert f"refined {r['psnr_colour_matched_db']:.2f} dB" in report and r["psnr_colour_matched_db"] > r["psnr_db"]
    heat = np.asarray(Image.open(out / "error_heatmap.png").convert("RGB")).astype(int)
    assert heat.shape[1] >= 2 * 300  # 60 pixels wide: enlarged 5 times
    # the guide's lost actor (51-204 levels) shows in the top colour in both its panels (400 pixels, each 5 x 5);
    # the refined shot (5 levels off) and the guide's exact set are dark
    top = np.abs(heat - _heat_colours(np.array([[HEATMAP_MAX_LEVELS]]))[0, 0].astype(int)).sum(axis=-1) < 30
    assert 2 * 400 * 25 * 0.9 < top.sum() < 2 * 400 * 25 * 1.2


def test_heat_colours_run_dark_to_bright_and_outline_the_actor():
    from reshoot.evaluation.report import HEATMAP_MAX_LEVELS, _heat_colours, _outline

    colours = _heat_colours(np.array([[0.0, HEATMAP_MAX_LEVELS / 2, HEATMAP_MAX_LEVELS, 500.0]])).astype(int)
    brightness = colours.sum(axis=-1)[0]
    assert brightness[0] < 10 and brightness[0] < brightness[1] < brightness[2] == brightness[3] > 600
    edge = _outline(_actor_box())
    assert edge.sum() == 2 * (20 + 20) - 4 and not edge[15:25, 40:50].any() and edge[10, 35] and edge[29, 54]


def test_held_out_actor_is_what_differs_from_the_clean_plate():
    from reshoot.cameras import Cameras
    from reshoot.evaluation.evaluate import held_out_actor_masks
    from reshoot.splat.data import ShotFootage

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
    from reshoot.evaluation.evaluate import write_report

    truth = {k: (_textured(seed=k) * 255).astype(np.uint8) for k in range(3)}
    shot = np.stack([truth[k] / 255 + 0.01 for k in range(3)]).astype(np.float32)
    metrics = write_report(tmp_path, "crane", "classical", shot, shot, truth, scene=tmp_path / "scene.pt")
    assert metrics["actor_region"] is None and metrics["refined"]["set_psnr_db"] is None
    assert metrics["refined"]["actor_frames"] == 0 and metrics["refined"]["psnr_db"] == pytest.approx(40.0, abs=0.1)
    assert metrics["verdict"] == "usable" and "not judged: no actor region known" in metrics["verdict_reason"]
    report = (tmp_path / "eval" / "crane" / "report.html").read_text()
    assert "no actor region is known" in report and "<td>-</td>" in report


# --- an outside camera as the truth (--truth-footage, --truth-calibration, --truth-masks) -------------------------

def _outside_camera_workspace(root, mode: str = "triangulate"):
    """A workspace as ingest and register leave it (no COLMAP run): three set cameras in a normalised world ``S``
    times the calibration's; the calibration (cameras.json) holds them and an outside camera ``high`` with a lens of
    its own; the ingest timeline starts 2 frames into the footage's clock (times 2/10, 3/10, ... s at 10 fps)."""
    import json

    from reshoot.cameras import look_at
    from reshoot.workspace import Workspace

    ids = ["cam0", "cam1", "cam2", "high"]
    eyes = [(3, 0, 1), (0, 3, 1), (-3, 0, 1), (0.5, -1, 3.5)]
    calibration = Cameras.create(ids, [60.0, 60, 60, 50], [60.0, 60, 60, 52], [32.0, 32, 32, 30], [24.0, 24, 24, 25],
                                 np.stack([look_at(e, (0, 0, 0.8)) for e in eyes]), np.tile([64, 48], (4, 1)))
    theta, S = 0.4, np.eye(4)
    S[:3, :3] = 0.3 * np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    S[:3, 3] = [0.2, -0.1, 0.05]
    ws = Workspace(root / "ws")
    registered = calibration.select(ids[:3]).transform_world(S)
    for stage, manifest, files in (
            ("ingest", {"summary": {}}, {"footage.json": {"timeline": {"fps": "10/1", "frame_count": 4,
                                                                        "times_s": [0.2, 0.3, 0.4, 0.5]}}}),
            ("register", {"summary": {"calibration": mode}},
             {"cameras.json": {**registered.to_json(), "colmap_to_world": S.tolist(), "frame_poses": {}}})):
        (ws.root / stage).mkdir()
        (ws.root / stage / "manifest.json").write_text(json.dumps(manifest))
        for name, data in files.items():
            (ws.root / stage / name).write_text(json.dumps(data))
    (root / "calibration.json").write_text(json.dumps(calibration.to_json()))
    return ws, calibration, S


def _numbered_footage(folder, frames: int = 5):
    """frame_0000.png ... : frame i a flat grey 40 * i; its mask a 8x8 white box 4 i pixels from the left."""
    from reshoot.viz import save_png

    (folder / "footage").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(frames):
        save_png(np.full((48, 64, 3), 40 * i, np.uint8), folder / "footage" / f"frame_{i:04d}.png")
        mask = np.zeros((48, 64), np.uint8)
        mask[20:28, 4 * i:4 * i + 8] = 255
        save_png(mask, folder / "masks" / f"frame_{i:04d}.png")
    return folder / "footage", folder / "masks"


@pytest.mark.parametrize("mode", ["triangulate", "solve"])
def test_an_outside_camera_is_placed_by_the_sets_calibration_and_synced_by_time(tmp_path, mode):
    from reshoot.camera_path import Timeline
    from reshoot.evaluation.evaluate import EvalConfig, footage_truth

    ws, calibration, S = _outside_camera_workspace(tmp_path, mode)
    footage, masks = _numbered_footage(tmp_path)
    config = EvalConfig(camera="high", truth_footage=footage, truth_calibration=tmp_path / "calibration.json",
                        truth_masks=masks)
    truth = footage_truth(ws, config, Timeline(10, 4))
    expected = calibration.select(["high"]).transform_world(S)
    assert len(truth.path) == 4
    np.testing.assert_allclose(truth.path.camera(3).world_to_camera[0], expected.world_to_camera[0], atol=1e-9)
    np.testing.assert_allclose(truth.path.lens.K[0], expected.K[0])  # its own lens, off-centre principal point
    # timeline frame k is at 0.2 + k / 10 s: footage frame k + 2; frames past the footage's end are not scored
    assert sorted(truth.frames) == [0, 1, 2] and [int(truth.frames[k][0, 0, 0]) for k in range(3)] == [80, 120, 160]
    assert sorted(truth.actor) == [0, 1, 2]
    for k in range(3):
        box = np.zeros((48, 64), bool)
        box[20:28, 4 * (k + 2):4 * (k + 2) + 8] = True
        np.testing.assert_array_equal(truth.actor[k], box)
    assert "--truth-masks" in truth.actor_region and truth.source["frames"] == {"0": 2, "1": 3, "2": 4}
    assert ("link to the calibration it kept" if mode == "triangulate" else "aligned on the set cameras cam0, cam1, "
            "cam2") in truth.source["placed_by"]


def test_an_outside_camera_says_what_is_wrong_with_its_truth(tmp_path):
    import json

    from reshoot.camera_path import Timeline
    from reshoot.evaluation.evaluate import EvalConfig, footage_truth
    from reshoot.workspace import StageError

    ws, calibration, S = _outside_camera_workspace(tmp_path)
    footage, masks = _numbered_footage(tmp_path)
    timeline = Timeline(10, 4)
    calibration_file = tmp_path / "calibration.json"

    def truth(**options):
        return footage_truth(ws, EvalConfig(**{"camera": "high", "truth_footage": footage,
                                               "truth_calibration": calibration_file, **options}), timeline)

    with pytest.raises(StageError, match="--truth-footage and --truth-calibration go together"):
        truth(truth_calibration=None)
    with pytest.raises(StageError, match=r"camera 'crane'.*no calibration for footage camera\(s\) \['crane'\]"):
        truth(camera="crane")
    moved = calibration.world_to_camera.copy()
    moved[1, :3, 3] += [0.0, 0.0, 0.5]  # cam1 half a metre off: a calibration of another world
    other = tmp_path / "other.json"
    other.write_text(json.dumps(Cameras(calibration.camera_ids, calibration.K, calibration.distortion, moved,
                                        calibration.image_size).to_json()))
    with pytest.raises(StageError, match=r"places set camera 'cam1' .* not in the world the set was registered in"):
        truth(truth_calibration=other)
    small = tmp_path / "small.json"
    small.write_text(json.dumps(calibration.resized(np.tile([32, 24], (4, 1))).to_json()))
    with pytest.raises(StageError, match=r"footage is 64x48 but --truth-calibration calibrates 'high' for 32x24"):
        truth(truth_calibration=small)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match=r"holds no mask of the shot's frames \(e\.g\. .*empty/frame_0002\.png\)"):
        truth(truth_masks=tmp_path / "empty")
    with pytest.raises(StageError, match="--truth-masks .*absent is not a folder"):
        truth(truth_masks=tmp_path / "absent")


def test_the_report_names_an_outside_cameras_truth(tmp_path):
    from reshoot.evaluation.evaluate import write_report

    truth = {k: (_textured(seed=k) * 255).astype(np.uint8) for k in range(3)}
    shot = np.stack([truth[k] / 255 for k in range(3)]).astype(np.float32)
    source = {"footage": "/data/footage/cam02", "calibration": "/data/calib/sparse/0", "placed_by": "the test link",
              "masks": None, "frames": {"0": 0, "1": 1, "2": 2}}
    metrics = write_report(tmp_path, "cam02", "classical", shot, shot, truth, scene=tmp_path / "scene.pt",
                           truth_source=source)
    assert metrics["truth"] == source and metrics["actor_region"] is None
    report = (tmp_path / "eval" / "cam02" / "report.html").read_text()
    assert "<code>/data/footage/cam02</code>" in report and "placed in the scene's world by the test link" in report
    assert "no --truth-masks were given" in report


def test_colour_matching_undoes_a_cameras_colour_response_but_not_a_wrong_picture():
    import torch

    from reshoot.metrics import colour_matched, psnr

    gen = torch.Generator().manual_seed(0)
    truth = [torch.rand(24, 32, 3, generator=gen) * 0.6 + 0.2 for _ in range(3)]
    response = torch.tensor([[0.8, 0.1, 0.0], [0.05, 0.9, 0.0], [0.0, 0.1, 0.7]])
    tinted = [t @ response + torch.tensor([0.05, -0.02, 0.1]) for t in truth]  # another white balance
    matched = colour_matched(tinted, truth, stride=1)
    assert min(psnr(m, t) for m, t in zip(matched, truth)) > 60  # an affine response is undone exactly
    wrong = [torch.rand(24, 32, 3, generator=gen) for _ in range(3)]  # a different picture stays wrong
    assert max(psnr(m, t) for m, t in zip(colour_matched(wrong, truth), truth)) < 20
    with pytest.raises(ValueError, match="as many references"):
        colour_matched(tinted, truth[:2])
