"""The main job on the built-in sample: what the README's first command runs.

Today it makes the synthetic shoot and sets up a workspace that reads it; each later stage joins
here as it lands, until the demo ends in an overhead shot, a camera file and a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reshoot.media import probe_video
from reshoot.sample import PRESETS, SampleShoot, make_sample_shoot
from reshoot.workspace import Workspace


@dataclass(frozen=True)
class DemoResult:
    shoot: SampleShoot
    workspace: Workspace
    footage: list[dict[str, Any]]  #: per camera: what the next stage (ingest) will read


def run_demo(root: Path = Path("reshoot-demo"), preset: str = "default", force: bool = False) -> DemoResult:
    """Make the sample shoot in ``root/footage`` and a workspace in ``root/workspace`` that reads it.

    Re-running with the same preset re-uses everything already made (``force`` re-renders).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown sample preset {preset!r}; the presets are {', '.join(PRESETS)}")
    root = Path(root)
    shoot = make_sample_shoot(root / "footage", PRESETS[preset], force=force)
    workspace = Workspace(root / "workspace")
    workspace.set_sources(list(shoot.videos.values()), ground_truth=shoot.root / "ground_truth.json")
    by_id = {c["camera_id"]: c for c in shoot.ground_truth["cameras"]}
    footage = [{**probe_video(path), "camera_id": camera_id,
                "true_start_offset_s": by_id[camera_id]["start_offset_s"]}
               for camera_id, path in shoot.videos.items()]
    return DemoResult(shoot, workspace, footage)
