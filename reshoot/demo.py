"""The main job on the built-in sample: what the README's first command runs.

Today it makes the synthetic shoot, ingests it into a workspace (synced by audio, frames extracted)
and registers the cameras with COLMAP (with the set survey), checking both against the ground truth.
Each later stage joins here as it lands, until the demo ends in an overhead shot, a camera file and
a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reshoot.evaluation import sample_registration_errors
from reshoot.ingest import IngestConfig, run_ingest
from reshoot.register import RegisterConfig, run_register
from reshoot.sample import PRESETS, SampleShoot, make_sample_shoot
from reshoot.workspace import StageResult, Workspace


@dataclass(frozen=True)
class DemoResult:
    shoot: SampleShoot
    workspace: Workspace
    ingest: StageResult
    sync_check: list[dict[str, Any]]  #: per camera: recovered start offset against the ground truth
    register: StageResult
    pose_check: list[dict[str, Any]]  #: per camera: rotation and centre errors against the ground truth


def run_demo(root: Path = Path("reshoot-demo"), preset: str = "default", force: bool = False) -> DemoResult:
    """Make the sample shoot in ``root/footage``, ingest and register it in the workspace ``root/workspace``.

    Re-running with the same preset re-uses everything already made (``force`` makes it all again).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown sample preset {preset!r}; the presets are {', '.join(PRESETS)}")
    root = Path(root)
    shoot = make_sample_shoot(root / "footage", PRESETS[preset], force=force)
    workspace = Workspace(root / "workspace")
    workspace.set_sources(list(shoot.videos.values()), ground_truth=shoot.root / "ground_truth.json")
    ingest = run_ingest(workspace, list(shoot.videos.values()), IngestConfig(sync="audio"), force=force)
    survey = shoot.root / "survey"
    register = run_register(workspace, RegisterConfig(survey=survey if survey.is_dir() else None), force=force)
    poses = sample_registration_errors(register.path, shoot).table()
    return DemoResult(shoot, workspace, ingest, sync_errors(shoot, ingest.manifest["summary"]["offsets_s"]),
                      register, poses)


def sync_errors(shoot: SampleShoot, offsets_s: dict[str, float]) -> list[dict[str, Any]]:
    """Recovered start offsets against the sample's ground truth (both relative to the first camera)."""
    truth = {c["camera_id"]: c["start_offset_s"] for c in shoot.ground_truth["cameras"] if c["role"] == "set"}
    reference = next(iter(offsets_s))
    rows = []
    for camera_id, found in offsets_s.items():
        true = truth[camera_id] - truth[reference]
        rows.append({"camera_id": camera_id, "offset_s": found, "true_offset_s": true, "error_ms": (found - true) * 1e3})
    return rows
