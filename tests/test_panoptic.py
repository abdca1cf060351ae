"""The Panoptic basketball benchmark: high cameras that never trained the scene, reshot and scored against what they
filmed (slow, on the real data in ../shared/data; skipped when it is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_data
from reshoot_bench.panoptic import (FULL_RIG_HOLDOUT, HIGH_CAMERAS, SET_CAMERAS, PanopticBenchConfig, bench_panoptic,
                                    full_rig_fit_cameras, panoptic_calibration, region_figures)


def test_without_the_data_the_benchmark_is_one_skipped_row(tmp_path):
    rows = bench_panoptic(tmp_path / "no-data", tmp_path / "work")
    assert rows == [{"benchmark": "panoptic basketball: high cameras reshot from four low ones",
                     "result": f"skipped: {tmp_path / 'no-data' / 'panoptic_basketball'} absent", "pass": None}]


def test_region_figures_read_whole_set_person():
    assert region_figures({"psnr_db": 14.123, "set_psnr_db": 14.5, "actor_psnr_db": None}) == "14.12 / 14.50 / - dB"


def test_the_full_rig_scores_the_set_cameras_and_the_other_high_ones():
    rig = tuple(f"cam{k:02d}" for k in range(1, 30) if k not in (10, 15))  # the data set's 27 (no cam10, cam15)
    assert FULL_RIG_HOLDOUT == "cam02"
    assert full_rig_fit_cameras(rig, "cam02") == (*SET_CAMERAS, "cam04", "cam06", "cam13", "cam19")
    assert full_rig_fit_cameras(rig, "cam09") == ("cam05", "cam25", "cam14", *HIGH_CAMERAS)
    with pytest.raises(ValueError, match=r"'cam99' is not among the rig's cameras: cam01, cam02"):
        full_rig_fit_cameras(rig, "cam99")


def test_the_data_sets_calibration_is_read_with_its_rotations_transposed(tmp_path):
    from reshoot.calibration import read_calibration

    folder = shared_data("panoptic_basketball")
    path, note = panoptic_calibration(folder, tmp_path)
    assert "each rotation transposed" in note
    cameras = read_calibration(path).cameras
    assert len(cameras) == 27 and cameras.camera_ids[0] == "cam01"
    # Panoptic's world has y down: read this way every camera is level (image rows horizontal), and the heights
    # fall in the dome's rings of equal height; cam02 looks down 52 degrees from 3.39 m
    rows_in_world = np.einsum("nij,i->nj", cameras.world_to_camera[:, :3, :3], np.array([1.0, 0.0, 0.0]))
    assert np.degrees(np.abs(np.arcsin(rows_in_world[:, 1]))).max() < 6.0
    cam02 = cameras.index("cam02")
    assert -cameras.centers[cam02, 1] == pytest.approx(3.39, abs=0.01)
    axis = cameras.world_to_camera[cam02, 2, :3]  # the optical axis in the world
    assert np.degrees(np.arcsin(axis[1])) == pytest.approx(52.3, abs=0.5)


@pytest.mark.slow
def test_high_cameras_are_reshot_against_their_own_footage_and_masks(tmp_path):
    folder = shared_data("panoptic_basketball")
    config = PanopticBenchConfig(frames=6, steps=60, downscale=4, full_rig=False)
    rows = bench_panoptic(folder.parent, tmp_path, config)
    assert len(rows) == 2 + len(HIGH_CAMERAS)
    assert rows[0]["pass"] is True and rows[0]["result"].startswith("4/4 cameras")
    assert rows[1]["result"].startswith("PSNR ") and "cam09" in rows[1]["result"]
    for camera, row in zip(HIGH_CAMERAS, rows[2:]):
        assert camera in row["benchmark"] and not row["result"].startswith("failed"), row
    ws = tmp_path / "ws-panoptic"
    m = json.loads((ws / "eval" / "cam02" / "metrics.json").read_text())
    # timeline frame k is the data set's frame k; the calibration the set was registered with places cam02 exactly
    assert m["truth"]["frames"] == {str(k): k for k in range(6)}
    placed_by = m["truth"]["placed_by"]
    assert "link to the calibration it kept" in placed_by and "within 0.000 deg, 0.00%" in placed_by
    for name in ("guide", "refined"):
        shot = m[name]
        assert shot["actor_frames"] == 6 and 0.005 < shot["actor_fraction"] < 0.2  # the people seen from above
        assert 5.0 < shot["set_psnr_db"] < 40.0 and 3.0 < shot["actor_psnr_db"] < 40.0
        assert shot["verdict"] in ("usable", "needs fixes", "not usable")
    # cam02 stands where cameras.json says, in the scene's world: every distance between it and the set cameras, and
    # between the set cameras, is the data set's in metres times one scale
    from reshoot.cameras import Cameras
    from reshoot.evaluation.evaluate import truth_camera
    from reshoot.workspace import StageError, Workspace

    placed, _ = truth_camera(Workspace(ws), "cam02", tmp_path / "panoptic-calibration.json")
    data = json.loads((folder / "cameras.json").read_text())["cameras"]
    scene = Cameras.from_json(json.loads((ws / "register" / "cameras.json").read_text()))
    in_scene = np.vstack([placed.centers, scene.centers])
    in_metres = np.array([data[c]["centre_m"] for c in ("cam02", *scene.camera_ids)])
    pairs = np.triu_indices(len(in_scene), 1)
    ratios = [np.linalg.norm(a[pairs[0]] - a[pairs[1]], axis=1) for a in (in_scene, in_metres)]
    scale = ratios[0] / ratios[1]
    assert scale.std() < 1e-4 * scale.mean()
    # the model as stored is another world: eval says so, naming a set camera
    with pytest.raises(StageError, match=r"places set camera 'cam\d\d' .* not in the world the set was registered"):
        truth_camera(Workspace(ws), "cam02", folder / "calib" / "sparse" / "0")
