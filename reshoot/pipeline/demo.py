"""The main job on the built-in sample: what the README's first command runs.

It makes the synthetic shoot and runs every stage on it: ingest (synced by audio), register (COLMAP, with the set
survey), reconstruct (a splat scene trained at full size, for a few minutes on a CPU), path (the overhead angle
where the sample's hidden camera was: placed by the registration's similarity, then localised against the scene, see
:mod:`reshoot.localise`), guide, refine (classical) and export. Each step is checked against the
sample's ground truth: sync offsets, camera poses, and the overhead shot against what the hidden overhead camera
really filmed, written as the report ``reshoot eval`` writes (``WS/eval/overhead/report.html``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.evaluation.scores import (localised_sample_view, sample_registration_errors, sample_truth_source,
                                truth_view_path_config)
from reshoot.evaluation.evaluate import ACTOR_FROM_SAMPLE, TruthPath, write_report
from reshoot.footage import read_image
from reshoot.localise import Localised
from reshoot.sample import PRESETS, SampleConfig, SampleShoot, make_sample_shoot
from reshoot.stages.export import ExportConfig, run_export
from reshoot.stages.guide import GuideConfig, load_shot_frames, run_guide
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.path import run_path
from reshoot.stages.reconstruct import ReconstructConfig, run_reconstruct
from reshoot.stages.refine import RefineConfig, run_refine
from reshoot.stages.register import RegisterConfig, run_register
from reshoot.workspace import StageResult, Workspace


@dataclass(frozen=True)
class DemoResult:
    shoot: SampleShoot
    workspace: Workspace
    ingest: StageResult
    sync_check: list[dict[str, Any]]  #: per camera: recovered start offset against the ground truth
    register: StageResult
    pose_check: list[dict[str, Any]]  #: per camera: rotation and centre errors against the ground truth
    later: dict[str, StageResult]  #: reconstruct, path, guide, refine and export
    shot_check: dict[str, dict[str, Any]]  #: guide and refined shot against the overhead truth (the report's figures:
    #: PSNR/SSIM over the whole frame, the set and the actor, flicker, and the verdict with its reason)
    report: Path  #: WS/eval/overhead/report.html: the shot against the truth, frame by frame, with pictures
    placement: Localised | None = None  #: how the hidden camera was localised in the scene before the path was made

#: The demo's scene: the fast preset (2400 steps at the footage's full size, 600 of them on the set), about five
#: minutes on 2 cores with the compiled CPU kernels.
DEMO_RECONSTRUCT = {"default": ReconstructConfig(),
                    "small": ReconstructConfig(steps=150, sh_degree=1, dynamic_per_instant=400)}


def run_demo(root: Path = Path("reshoot-demo"), preset: str = "default", force: bool = False,
             sample: SampleConfig | None = None) -> DemoResult:
    """Make the sample shoot in ``root/footage`` and run the whole job on it in the workspace ``root/workspace``.

    Re-running with the same preset re-uses everything already made (``force`` makes it all again). ``sample``:
    another shoot (layout, seed, size) instead of the preset's, with the preset's training (``reshoot bench
    layouts`` runs the job so on shoots nobody tuned the defaults on).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown sample preset {preset!r}; the presets are {', '.join(PRESETS)}")
    root = Path(root)
    shoot = make_sample_shoot(root / "footage", sample or PRESETS[preset], force=force)
    workspace = Workspace(root / "workspace")
    workspace.set_sources(list(shoot.videos.values()), ground_truth=shoot.root / "ground_truth.json")
    ingest = run_ingest(workspace, list(shoot.videos.values()), IngestConfig(sync="audio"), force=force)
    survey = shoot.root / "survey"
    register = run_register(workspace, RegisterConfig(survey=survey if survey.is_dir() else None), force=force)
    poses = sample_registration_errors(register.path, shoot).table()
    later = {"reconstruct": run_reconstruct(workspace, DEMO_RECONSTRUCT.get(preset, ReconstructConfig()), force=force)}
    truth = localised_sample_view(workspace.root, shoot)
    later["path"] = run_path(workspace, truth_view_path_config(truth.camera), force=force)
    later["guide"] = run_guide(workspace, GuideConfig(), force=force)
    later["refine"] = run_refine(workspace, RefineConfig(), force=force)
    later["export"] = run_export(workspace, ExportConfig(), force=force)
    frames = {name: _read_shot(workspace.root, name) for name in ("guide", "refine")}
    metrics = write_report(workspace.root, "overhead", later["refine"].manifest["config"]["refiner"], frames["guide"],
                           frames["refine"], {i: read_image(f)[..., :3] for i, f in truth.frames.items()},
                           scene=later["reconstruct"].path / "scene.pt", actor=truth.actor,
                           actor_region=ACTOR_FROM_SAMPLE if truth.actor else "",
                           truth_source=sample_truth_source(truth), reshot=TruthPath(
                               "overhead", truth.camera, np.repeat(truth.camera.world_to_camera, len(frames["guide"]), 0)))
    shot_check = {"guide": metrics["guide"], "refine": metrics["refined"]}
    return DemoResult(shoot, workspace, ingest, sync_errors(shoot, ingest.manifest["summary"]["offsets_s"]),
                      register, poses, later, shot_check, workspace.root / "eval" / "overhead" / "report.html",
                      truth.localised)


def _read_shot(workspace_root: Path, stage: str) -> np.ndarray:
    """The ``guide`` or ``refine`` stage's frames as floats in [0, 1].  # [T, H, W, 3]"""
    _, files = load_shot_frames(workspace_root, stage)
    return np.stack([read_image(f)[..., :3].astype(np.float32) / 255 for f in files])


def sync_errors(shoot: SampleShoot, offsets_s: dict[str, float]) -> list[dict[str, Any]]:
    """Recovered start offsets against the sample's ground truth (both relative to the first camera)."""
    truth = {c["camera_id"]: c["start_offset_s"] for c in shoot.ground_truth["cameras"] if c["role"] == "set"}
    reference = next(iter(offsets_s))
    rows = []
    for camera_id, found in offsets_s.items():
        true = truth[camera_id] - truth[reference]
        rows.append({"camera_id": camera_id, "offset_s": found, "true_offset_s": true, "error_ms": (found - true) * 1e3})
    return rows
