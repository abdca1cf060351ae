"""Measuring results against ground truth: camera poses after a similarity alignment.

SfM recovers cameras up to a similarity (scale, rotation, translation), so estimated cameras are first
aligned to the truth, then compared camera by camera. The alignment's rotation is the chordal mean of
the per-camera rotations between the two worlds; its scale and translation then fit the camera centres
by least squares. Aligning on centres alone (Umeyama, COLMAP's ``estimate_sim3d``) is ill-conditioned
for cameras on a line or a short arc (a dolly, a crane move): on a 60-degree arc it showed 0.8 deg of
rotation error that the orientations themselves did not have (0.02-0.15 deg).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reshoot.atomic import atomic_write_json
from reshoot.cameras import Cameras, focal_mm_from_px
from reshoot.footage import read_image
from reshoot.localise import LocaliseConfig, Localised, localise_camera
from reshoot.metrics import flicker, psnr, region_scores


@dataclass(frozen=True)
class PoseErrors:
    """Per-camera errors of estimated cameras against the truth, after aligning them."""

    camera_ids: tuple[str, ...]
    rotation_deg: np.ndarray  # [N] angle of the relative rotation
    centre_error: np.ndarray  # [N] distance between centres, in the truth's units
    extent: float  #: the truth's scene size used for percentages (the cameras' bounding-box diagonal unless given)
    truth_from_estimated: np.ndarray  # [4, 4] the similarity applied

    @property
    def centre_error_pct(self) -> np.ndarray:  # [N]
        return 100 * self.centre_error / self.extent

    def table(self) -> list[dict]:
        return [{"camera_id": c, "rotation_deg": float(r), "centre_error": float(e), "centre_error_pct": float(p)}
                for c, r, e, p in zip(self.camera_ids, self.rotation_deg, self.centre_error, self.centre_error_pct)]


def pose_errors(estimated: Cameras, truth: Cameras, extent: float | None = None,
                report: Sequence[str] | None = None) -> PoseErrors:
    """Align ``estimated`` to ``truth`` on every camera both hold (3 or more), then compare those in ``report``
    (default: all shared), e.g. align on set cameras and survey stills, report the set cameras."""
    shared = [c for c in truth.camera_ids if c in estimated.camera_ids]
    if len(shared) < 3:
        raise ValueError(f"pose_errors needs 3 or more cameras in both sets to align them; shared: {shared}")
    S = align_similarity(estimated.select(shared), truth.select(shared))
    shared = [c for c in shared if report is None or c in report]
    est, true = estimated.select(shared), truth.select(shared)
    aligned = est.transform_world(S)
    relative = aligned.world_to_camera[:, :3, :3] @ np.transpose(true.world_to_camera[:, :3, :3], (0, 2, 1))
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    size = extent if extent is not None else float(np.linalg.norm(np.ptp(true.centers, axis=0)))
    return PoseErrors(tuple(shared), np.degrees(np.arccos(cos)), np.linalg.norm(aligned.centers - true.centers, axis=1),
                      size, S)


def align_similarity(estimated: Cameras, truth: Cameras) -> np.ndarray:
    """The similarity taking ``estimated``'s world to ``truth``'s, for cameras in the same order.  # [4, 4]"""
    # per camera, the world rotation that makes the estimated orientation the true one: R_true^T R_est
    relative = np.transpose(truth.world_to_camera[:, :3, :3], (0, 2, 1)) @ estimated.world_to_camera[:, :3, :3]
    U, _, Vt = np.linalg.svd(relative.sum(axis=0))
    R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    a = estimated.centers - estimated.centers.mean(axis=0)
    b = truth.centers - truth.centers.mean(axis=0)
    spread = float((a * a).sum())
    scale = float(((a @ R.T) * b).sum() / spread) if spread > 0 else 1.0
    if not scale > 0:
        raise ValueError("align_similarity: the estimated cameras face away from the truth's layout; cannot align")
    S = np.eye(4)
    S[:3, :3] = scale * R
    S[:3, 3] = truth.centers.mean(axis=0) - scale * R @ estimated.centers.mean(axis=0)
    return S


def sample_registration_errors(register_dir: Path, shoot) -> PoseErrors:
    """A register stage's set cameras against a sample shoot's truth, aligned on set cameras and survey stills.

    ``shoot`` is a :class:`reshoot.sample.SampleShoot`; percentages are of the set's width.
    """
    data = json.loads((Path(register_dir) / "cameras.json").read_text())
    survey = [{**c, "camera_id": "survey" + c["camera_id"].split("/", 1)[1]} for c in data.get("survey", [])]
    estimated = Cameras.from_json({"cameras": data["cameras"] + survey})
    truth = Cameras.from_json({"cameras": [c for c in shoot.ground_truth["cameras"] if c["role"] in ("set", "survey")]})
    bounds = np.array(shoot.ground_truth["set_bounds_m"])
    return pose_errors(estimated, truth, extent=float(np.ptp(bounds[:, :2], axis=0).max()),
                       report=shoot.cameras.camera_ids)


@dataclass(frozen=True)
class SampleTruthView:
    """A sample shoot's ground-truth camera (e.g. the overhead one) placed in a workspace's registered world."""

    camera: Cameras  # one camera, in the register stage's normalised world
    frames: dict[int, Path]  # ingested frame index -> the ground-truth image filmed at that instant
    actor: dict[int, np.ndarray] = field(default_factory=dict)  # ingested frame index -> [H, W] bool, where the
    # actor is in that image (the sample's ground-truth masks; empty where the sample has none for this camera)
    placed: Cameras | None = None  # where the similarity alone puts it, when ``camera`` was then localised
    localised: Localised | None = None  # how localising moved it (None: not localised)


#: Ground-truth frames a held-out camera is localised on (spread over the shot).
LOCALISE_FRAMES = 2


def sample_truth_view(workspace_root: Path, shoot, role: str = "overhead", scene=None,
                      localise: LocaliseConfig = LocaliseConfig()) -> SampleTruthView:
    """The sample's ``role`` camera in the workspace's registered world, and its frames on the ingest timeline.

    The registered world is aligned to the sample's with the similarity fitted on the set cameras and survey
    stills (:func:`sample_registration_errors`); ingested frame ``j`` is at world time
    ``timeline.times_s[j] + start_offset_s(reference camera)``, and ground-truth frame ``k`` at ``k / fps``.
    Given the workspace's ``scene`` (a ``DynamicScene``), the camera is then localised against it on the set's
    pixels of a few of its frames (:mod:`reshoot.localise`: the registration's gauge, not the shot, is what the
    similarity leaves wrong); ``placed`` keeps where the similarity put it.
    """
    root = Path(workspace_root)
    footage = json.loads((root / "ingest" / "footage.json").read_text())
    truth_from_est = sample_registration_errors(root / "register", shoot).truth_from_estimated
    cameras = [c for c in shoot.ground_truth["cameras"] if c["role"] == role]
    if not cameras:
        raise ValueError(f"the sample has no {role!r} camera; roles: "
                         f"{sorted({c['role'] for c in shoot.ground_truth['cameras']})}")
    camera = Cameras.from_json({"cameras": cameras[:1]}).transform_world(np.linalg.inv(truth_from_est))
    starts = {c["camera_id"]: c["start_offset_s"] for c in shoot.ground_truth["cameras"] if c["role"] == "set"}
    world_start = starts[footage["reference"]]
    fps, count = shoot.ground_truth["fps"], shoot.ground_truth["shot"]["frame_count"]
    folder = shoot.root / "ground_truth" / role
    frames = {}
    for j, shoot_s in enumerate(footage["timeline"]["times_s"]):
        k = int(round((shoot_s + world_start) * fps))
        if 0 <= k < count and abs((shoot_s + world_start) * fps - k) < 0.25 and (folder / f"{k:06d}.png").is_file():
            frames[j] = folder / f"{k:06d}.png"
    masks = sample_actor_masks(shoot, role)
    actor = {} if masks is None else {j: masks[int(path.stem)] for j, path in frames.items()}
    if scene is None or not frames:
        return SampleTruthView(camera, frames, actor)
    times = np.linspace(0.0, 1.0, footage["timeline"]["frame_count"]) if footage["timeline"]["frame_count"] > 1 \
        else np.zeros(1)  # reshoot.splat.data.normalised_times
    items = list(frames.items())
    picks = [items[i] for i in np.linspace(0, len(items) - 1, min(LOCALISE_FRAMES, len(items))).round().astype(int)]
    views = [(float(times[j]), read_image(path)[..., :3], actor.get(j)) for j, path in picks]
    found = localise_camera(scene, camera, views, localise)
    return SampleTruthView(found.camera, frames, actor, placed=camera, localised=found)


def localised_sample_view(workspace_root: Path, shoot, role: str = "overhead") -> SampleTruthView:
    """:func:`sample_truth_view` localised against the workspace's scene, remembered in
    ``WS/eval/<role>/placement.json`` for that scene (localising takes a minute on a CPU; a re-run must put the
    camera exactly where the last one did, or every stage after the path would run again)."""
    from reshoot.stages.reconstruct import load_scene

    root = Path(workspace_root)
    digest = json.loads((root / "reconstruct" / "manifest.json").read_text())["outputs_digest"]
    cache = root / "eval" / role / "placement.json"
    if cache.is_file():
        kept = json.loads(cache.read_text())
        if kept.get("scene_digest") == digest:
            view = sample_truth_view(root, shoot, role)
            found = Localised(Cameras.from_json(kept["localised_camera"]), **kept["localised"])
            return replace(view, camera=found.camera, placed=view.camera, localised=found)
    scene, _ = load_scene(root / "reconstruct" / "scene.pt")
    view = sample_truth_view(root, shoot, role, scene=scene)
    atomic_write_json(cache, {"scene_digest": digest, "placed_camera": view.placed.to_json(),
                              "localised_camera": view.camera.to_json(), "localised": view.localised.fields()})
    return view


def sample_truth_source(view: SampleTruthView) -> dict:
    """Where a sample camera was placed, for a report's ``truth`` (``reshoot.evaluation.evaluate.write_report``)."""
    carried = "carried into the registered world by the similarity that aligns the set cameras and survey stills"
    if view.localised is None:
        return {"placed_by": carried}
    return {"placed_by": f"{carried}, then {view.localised.describe()}", "localised": view.localised.fields()}


def sample_actor_masks(shoot, role: str) -> np.ndarray | None:
    """Where the actor is in every frame a sample camera filmed (ground truth).  # [frames, H, W] bool

    ``shoot`` is a :class:`reshoot.sample.SampleShoot`; ``role`` a set camera id or ``"overhead"``. None if the
    sample holds no masks for that camera (``ground_truth/actor_masks.npz``, written since the masks were added)."""
    path = shoot.root / "ground_truth" / "actor_masks.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        if role not in data.files:
            return None
        width = int(shoot.ground_truth["config"]["width"])
        return np.unpackbits(data[role], axis=-1)[..., :width].astype(bool)


def truth_view_path_config(camera: Cameras, name: str = "overhead"):
    """The overhead path settings (``reshoot.stages.path.PathConfig``) that rebuild a ground-truth camera (one, looking
    down): the point its axis meets one unit below it, its height above that point, its tilt, heading and roll, its
    lens and picture size. The rebuilt camera is the same camera (centre, axis and turn about the axis)."""
    import math

    from reshoot.path_builders import overhead_pose
    from reshoot.stages.path import PathConfig

    pose = camera.world_to_camera[0]
    eye, forward = camera.centers[0], pose[2, :3]
    if forward[2] >= 0:
        raise ValueError(f"camera {camera.camera_ids[0]!r} does not look down (axis {forward.round(3).tolist()})")
    target = eye + forward / -forward[2]  # one unit below the camera
    tilt = math.degrees(math.atan2(float(np.linalg.norm(target[:2] - eye[:2])), 1.0))
    # image-up: the direction the camera tilts towards (which places the eye exactly), or, looking straight down,
    # the camera's own up (-y)
    up = forward[:2] if np.linalg.norm(forward[:2]) > 1e-6 else -pose[1, :2]
    heading = math.degrees(math.atan2(up[1], up[0]))
    # the roll that turns the level camera those make into this one (a camera level in the real world may have a
    # small roll in a registered world, whose +Z is the set cameras' mean up)
    level = overhead_pose(target, 1.0, tilt, heading)[:3, :3]
    turn = pose[:3, :3] @ level.T  # a rotation about the optical axis
    roll = math.degrees(math.atan2(turn[0, 1], turn[0, 0]))
    width, height = (int(v) for v in camera.image_size[0])
    return PathConfig(kind="overhead", name=name, target=tuple(float(v) for v in target), elevation=1.0,
                      tilt_deg=tilt, heading_deg=heading, roll_deg=roll,
                      focal_mm=focal_mm_from_px(float(camera.K[0, 0, 0]), 36.0, width), width=width, height=height)


def score_shot(guide_dir: Path, truth_frames: dict[int, Path],
               actor: dict[int, np.ndarray] | None = None) -> dict[str, float | None]:
    """PSNR/SSIM of a shot's frames (``guide_dir/rgb``, output frame = timeline frame) against ground-truth frames,
    overall, on the set and on the actor (where ``actor``, e.g. :attr:`SampleTruthView.actor`, has masks), and where
    the guide's confidence map (if any) exceeds 0.5; flicker against the truth over consecutive frames that both
    have one. A region's figure is the mean over the frames it is in (None if none)."""
    rows, confident, fractions, shots, truths = [], [], [], {}, {}
    for frame_idx, truth_file in truth_frames.items():
        guide = torch.from_numpy(read_image(guide_dir / "rgb" / f"{frame_idx:06d}.png").astype(np.float32) / 255)
        truth = torch.from_numpy(read_image(truth_file)[..., :3].astype(np.float32) / 255)
        shots[frame_idx], truths[frame_idx] = guide, truth
        mask = (actor or {}).get(frame_idx)
        rows.append(region_scores(guide, truth, None if mask is None else torch.from_numpy(mask)))
        confidence_file = guide_dir / "confidence" / f"{frame_idx:06d}.png"
        if confidence_file.is_file():
            mask = torch.from_numpy(read_image(confidence_file)[..., 0] > 127)
            fractions.append(float(mask.float().mean()))
            if mask.any():
                confident.append(psnr(guide, truth, mask))
    pairs = [j for j in shots if j + 1 in shots]
    jumps = [flicker(torch.stack([shots[j], shots[j + 1]]), torch.stack([truths[j], truths[j + 1]])) for j in pairs]
    return {**mean_region_scores(rows), "flicker": float(np.mean(jumps)) if jumps else float("nan"),
            "frames": len(rows), "confident_psnr_db": float(np.mean(confident)) if confident else float("nan"),
            "confident_fraction": float(np.mean(fractions)) if fractions else 0.0}


def mean_region_scores(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    """A shot's figures from its frames' :func:`reshoot.metrics.region_scores`: each the mean over the frames that
    have it (None if none), the worst whole-frame PSNR, and how many frames show the actor."""
    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return float(np.mean(values)) if values else None

    keys = ("psnr_db", "ssim", "set_psnr_db", "set_ssim", "actor_psnr_db", "actor_ssim", "actor_fraction")
    return {**{key: mean(key) for key in keys}, "psnr_min_db": float(min(r["psnr_db"] for r in rows)),
            "actor_frames": sum(r.get("actor_psnr_db") is not None for r in rows)}


def sample_geometry_errors(register_dir: Path, shoot, points_xyz: np.ndarray, frame: int = 0) -> dict[str, float]:
    """Dense set points (registered world) against the sample's true overhead depth at one frame: what share of the
    set the overhead camera sees do they cover, and how far off is their depth there (metres).

    The points are mapped to the true world by the registration's similarity and drawn as a closed z-buffer
    (:func:`reshoot.splat.priors.zbuffer_depth`); only the set counts (the actor, grown by 2 px, is left out).
    """
    from reshoot._deps import require
    from reshoot.splat.priors import zbuffer_depth

    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    truth_from_est = sample_registration_errors(Path(register_dir), shoot).truth_from_estimated
    camera = shoot.overhead
    depth = np.load(shoot.root / "ground_truth" / "overhead_depth.npz")["depth_m"][frame].astype(np.float32)
    actor = sample_actor_masks(shoot, "overhead")
    points = np.asarray(points_xyz) @ truth_from_est[:3, :3].T + truth_from_est[:3, 3]
    drawn = zbuffer_depth(points, camera.K[0], camera.world_to_camera[0], tuple(int(v) for v in camera.image_size[0]))
    static = depth > 0
    if actor is not None:
        static &= ~cv2.dilate(actor[frame].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    covered = static & (drawn > 0)
    error = np.abs(drawn - depth)[covered]
    return {"coverage": float(covered.sum() / max(1, static.sum())),
            "median_error_m": float(np.median(error)) if len(error) else float("nan"),
            "p90_error_m": float(np.percentile(error, 90)) if len(error) else float("nan"), "points": int(len(points))}
