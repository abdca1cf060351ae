"""The reconstruct stage: a dynamic Gaussian-splat scene of the shot, trained on the registered footage.

Reads ``WS/ingest`` and ``WS/register``; writes ``WS/reconstruct/``::

    scene.pt               the trained scene (parameters, appearance, config, history): load_scene()
    splats_static.ply      the set (static Gaussians) in the standard 3DGS layout viewers read
    splats_frame_NNNNNN.ply  the whole scene frozen at the middle frame
    preview.png            every training camera at three instants: rendered beside what it filmed
    training.json          loss, PSNR and Gaussian count through training
    holdout.json / holdout.png   with --holdout CAMERA: that camera's PSNR/SSIM at every instant, and
                           rendered-vs-filmed side by side

Training resumes from the stage's scratch checkpoint when a run with the same inputs was stopped, and says so; a
checkpoint that cannot be read, or that another run wrote, is set aside beside it and training starts afresh.
Settings that cannot work (frames too small after --downscale, a handful of sparse points and nothing else to
make the set from) are refused before the footage is loaded or, at the latest, before training.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from reshoot.atomic import atomic_write_bytes, atomic_write_json
from reshoot.cameras import Cameras
from reshoot.metrics import colour_matched, psnr, ssim
from reshoot.progress import track
from reshoot.splat.data import (SetStills, ShotFootage, check_downscale, load_set_stills, load_shot_footage,
                                registered_rig)
from reshoot.splat.dense import DenseConfig, DenseSet, dense_set_points
from reshoot.splat.init import (InitConfig, dynamic_params, initial_params, motion_masks, on_performance,
                                performance_masks, set_views)
from reshoot.splat.ply import write_splats_ply
from reshoot.splat.pointcloud import read_points_ply, write_points_ply
from reshoot.splat.priors import depth_priors
from reshoot.splat.render import render
from reshoot.splat.scan import Alignment, SetScan, align_scan_to_points, aligned_scan, load_set_scan, read_similarity
from reshoot.splat.scene import DynamicScene
from reshoot.splat.train import Trainer
from reshoot.splat.train_config import PRESETS, TrainConfig
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 1
REFINED_POSES = "refined_poses.json"  #: in WS/reconstruct: each image's pose change (--refine-poses)
SCAN_POINTS = 100_000  #: a set scan is sampled to at most this many points (each starts a Gaussian)
MIN_SPARSE_POINTS = 20
"""Fewer sparse points than this from register are a handful: every step that reads them stops trusting them
(outlier removal, the box the visual hulls are carved in, dense stereo's depth ranges), so the set must come from
dense stereo or a set scan instead."""
MIN_SET_POINTS = 100
"""With a handful of sparse points, dense stereo and a set scan must together give at least this many points for the
set to start on (as many as one plane of the dense stage's plane prior needs)."""


class ReconstructError(RuntimeError):
    """The scene could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class ReconstructConfig:
    """How the splat scene is built."""

    preset: Literal["fast", "quality"] = "fast"
    """fast: 2400 steps (600 on the set, 1800 on the performance), for previews and CPUs (about 5 minutes at
    320x180 on 2 cores); quality: 30000 steps with opacity resets, for a GPU."""
    steps: int | None = None
    """Training steps (if not given: the preset's)."""
    downscale: int = 1
    """Train on frames shrunk by this factor (2: half size), for speed."""
    frame_step: int = 1
    """Use every frame_step-th frame of the shot (the scene still renders any instant)."""
    holdout: str | None = None
    """Leave this camera out of training and report PSNR/SSIM on it at every instant."""
    sh_degree: int = 3
    """Spherical-harmonics degree of the colours (0 to 3)."""
    dynamic_per_instant: int = 1500
    """At most this many dynamic Gaussians start at each instant (from its visual hull)."""
    appearance: bool = True
    """Learn a colour correction per training image (exposure, white balance)."""
    set_fraction: float | None = None
    """Share of the steps that train the set alone first (survey stills and the footage's static pixels), before the
    performance is trained against the frozen set; 0: one phase on every pixel (if not given: the preset's, 0 with
    the mcmc strategy, which cannot keep the set apart)."""
    stills: bool = True
    """Train the set on register's survey stills too (when registration had --survey)."""
    dense: bool = True
    """Start the set on dense geometry (plane-sweep stereo over the set cameras' clean plates and the stills, and
    the planes fitted to it), and use it as a depth prior and to remove floaters; off: the sparse SfM points only."""
    backdrop: bool = True
    """With dense geometry: what no stereo or plane explains in a set camera's view (a far wall four cameras see
    from one side only) starts where its ray leaves the set (the floor, or a sphere just beyond the rig), not
    wherever training would grow it (in the middle of the set, as fog from any other angle)."""
    set_scan: Path | None = None
    """A production's scan of the set (LiDAR or photogrammetry: .ply points or mesh, .obj, .glb, .gltf): aligned to
    the registered world and added to the dense set the static Gaussians start on (and its depth prior)."""
    set_scan_transform: Path | None = None
    """JSON similarity from the scan's coordinates to the registered world ({"matrix": 4x4} or {"scale", "rotation",
    "translation"}), refined by ICP; without it the scan is aligned to register's points (FPFH + RANSAC, then ICP)."""
    refine_poses: bool = True
    """Refine each set camera's and survey still's registered pose while the set trains (the first camera anchors the
    world; about 5 % more set-phase time); the performance trains from the refined poses, the manifest's
    ``poses_refined`` says how far each moved and ``refined_poses.json`` holds each change. Measured on four sample
    layouts (guide from above, set / actor): 4 cameras +0.31 / +0.28 dB and +0.24 / +0.28 (two registrations),
    5 cameras +0.34 / +0.41, 3 cameras -0.01 / -0.05 and +0.21 / -0.17; Panoptic's high cameras from four low ones
    the same (17.65 dB either way, persons +0.07). ``--no-refine-poses``: the registered poses as they are."""
    random_background: bool = True
    """Train the set over a random colour each step instead of black, so the set must cover every pixel it trains
    on: over black, half-transparent Gaussians learn colours that are right only with black behind them, and a new
    angle (or the refiner, which fills what is not covered) sees them as holes or too bright. Measured (guide from
    the angle nobody filmed, set): the sample +0.37 dB (4 cameras), +0.18 (3), +0.17 (5; its actor -0.28), +0.43
    at 640x360 (the refined shot +0.88); Panoptic's high cameras from four low ones +0.15 (persons +0.26).
    ``--no-random-background``: over black."""
    masks: Path | None = None
    """Folder of training masks <camera>/<frame:06d>.png (ingested frame numbers): black pixels are left out of the
    loss (crew, rigging, screens)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when there is a GPU (gsplat's kernels), else the CPU rasterizer."""
    strategy: Literal["auto", "default", "mcmc"] = "auto"
    """gsplat's densification: auto is mcmc (MCMCStrategy) on CUDA and default (DefaultStrategy) on CPU; mcmc also
    runs on CPU (torch twins of its two CUDA kernels), slower."""
    seed: int = 0
    """Random seed of where Gaussians start and of training's sampling (CPU results also vary with the torch thread
    count)."""

    def __post_init__(self) -> None:
        """Refuse values that cannot make a scene, naming the flag. (``--set-fraction``, whose limits depend on the
        device's strategy and the steps, is checked when the stage starts, before anything is loaded.)"""
        checks = [
            (self.preset in PRESETS, f"--preset must be one of {', '.join(PRESETS)}; got {self.preset!r}"),
            (self.steps is None or self.steps >= 1, f"--steps must be at least 1; got {self.steps}"),
            (self.downscale >= 1, f"--downscale must be at least 1 (1: full size); got {self.downscale}"),
            (self.frame_step >= 1, f"--frame-step must be at least 1 (1: every frame); got {self.frame_step}"),
            (0 <= self.sh_degree <= 3, f"--sh-degree must be 0, 1, 2 or 3; got {self.sh_degree}"),
            (self.dynamic_per_instant >= 0, f"--dynamic-per-instant must be 0 or more; got {self.dynamic_per_instant}"),
            (self.device in ("auto", "cpu", "cuda"), f"--device must be auto, cpu or cuda; got {self.device!r}"),
            (self.strategy in ("auto", "default", "mcmc"),
             f"--strategy must be auto, default or mcmc; got {self.strategy!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"reconstruct: {message}")

    def train_config(self, device: str = "cpu") -> TrainConfig:
        """The preset with this config's overrides; ``device`` ("cpu" or "cuda") settles strategy "auto"."""
        strategy = self.strategy if self.strategy != "auto" else ("mcmc" if device == "cuda" else "default")
        # mcmc relocates Gaussians between the set and the performance: it trains both at once unless told otherwise
        set_fraction = self.set_fraction if self.set_fraction is not None else (
            0.0 if strategy == "mcmc" else PRESETS[self.preset].set_fraction)
        base = replace(PRESETS[self.preset], appearance=self.appearance, seed=self.seed, strategy=strategy,
                       set_fraction=set_fraction, pose_refine_lr=5e-4 if self.refine_poses else 0.0,
                       random_background=self.random_background)
        if self.steps is None:
            return base
        scale = self.steps / base.steps
        # rounded up, not down: a few steps (--steps 1 or 2) would stop densifying before the performance phase
        return replace(base, steps=self.steps, refine_start=int(base.refine_start * scale),
                       set_refine_start=int(base.set_refine_start * scale),
                       pose_refine_start=int(base.pose_refine_start * scale),
                       refine_stop=-(-base.refine_stop * self.steps // base.steps),
                       sh_degree_every=max(1, int(base.sh_degree_every * scale)),
                       checkpoint_every=max(50, min(base.checkpoint_every, self.steps // 4)))


def run_reconstruct(workspace: Workspace, config: ReconstructConfig = ReconstructConfig(),
                    force: bool = False) -> StageResult:
    """Build the scene into ``WS/reconstruct`` (see the module docstring)."""
    return workspace.run_stage("reconstruct", config, lambda ctx: _reconstruct(ctx, config),
                               inputs=[p for p in (config.masks, config.set_scan, config.set_scan_transform) if p],
                               upstream=["ingest", "register"],
                               force=force, version=_VERSION)


def _reconstruct(ctx: StageContext, config: ReconstructConfig) -> dict[str, Any]:
    device = choose_device(config.device)
    setup = prepare_training(ctx.workspace.root, config, device, ctx.timer, ctx.out_dir)
    trainer, footage, full, stills, dense, report = (setup.trainer, setup.footage, setup.full, setup.stills,
                                                     setup.dense, setup.init_report)
    scene = trainer.scene
    with ctx.timer("training"):
        history = trainer.run(ctx.scratch_dir / "checkpoint.pt")
    with ctx.timer("outputs"):
        summary = _write_outputs(ctx.out_dir, trainer, trainer.footage)  # the poses it trained from
    summary.update(init=asdict(report), device=str(device), strategy=trainer.config.strategy,
                   set_stills=len(stills) if stills else 0, set_steps=trainer.set_steps,
                   dense=_dense_summary(dense.report) if dense is not None else None,
                   set_scan=_scan_summary(setup.scan) if setup.scan is not None else None,
                   training_steps=trainer.step_idx, resumed_from_step=trainer.resumed_from,
                   sat_out=trainer.sat_out, recarved_per_instant=trainer.recarved,
                   pruned_before_performance=trainer.pruned_before_performance, poses_refined=trainer.poses_refined,
                   final_train_psnr_db=float(np.mean([h["psnr"] for h in history[-4:]])) if history else None)
    if config.holdout:
        with ctx.timer("holdout"):
            summary["holdout"] = evaluate_camera(scene, full, config.holdout, ctx.out_dir)
    return summary


@dataclass
class TrainingSetup:
    """Everything reconstruct builds before its training loop (see :func:`prepare_training`)."""

    trainer: Trainer
    footage: ShotFootage  # what trains (without the held-out camera)
    full: ShotFootage  # every camera
    stills: SetStills | None
    dense: DenseSet | None
    init_report: Any
    scan: AlignedScan | None = None


def prepare_training(root: Path, config: ReconstructConfig, device: torch.device,
                     timer: Callable[[str], AbstractContextManager] = lambda name: nullcontext(),
                     out_dir: Path | None = None) -> TrainingSetup:
    """Load the workspace's footage, stills and sparse points, build the dense set and the initial Gaussians, and
    return the trainer reconstruct runs (also what ``reshoot bench`` times a training step on). ``out_dir``, if
    given, receives ``dense_points.ply``; ``timer(name)`` times each part."""
    # 1. what can be refused without the footage: the schedule, the image size, the held-out camera, the points
    train = _training_schedule(config, device)
    _check_cameras(root, config)
    sparse = root / "register" / "sparse_points.ply"
    xyz, rgb = read_points_ply(sparse)
    if not config.dense and config.set_scan is None:  # nothing else can make the set: refuse before loading
        _check_set_points(config, sparse, len(xyz))
    # 2. the footage, the set (scan, dense stereo) and where the Gaussians start
    with timer("load"):
        footage = load_shot_footage(root, config.downscale, config.frame_step, masks=config.masks)
        full = footage
        if config.holdout:
            footage = footage.without(config.holdout)
        width = int(footage.cameras.image_size[:, 0].max())
        stills = load_set_stills(root, max_width=width) if config.stills else None
    init = InitConfig(sh_degree=config.sh_degree, dynamic_per_instant=config.dynamic_per_instant, seed=config.seed)
    motion = motion_masks(footage, init.motion_threshold)
    moved = on_performance(footage, motion, xyz, init)  # what moved (register --dynamic instants) is not the set
    xyz, rgb = xyz[~moved], rgb[~moved]
    dense, scan, points = None, None, None
    if config.set_scan is not None:  # first: a bad scan is reported before minutes of stereo
        with timer("set_scan"):
            scan = _aligned_set_scan(config, xyz, rgb)
            points = (scan.points.xyz, scan.points.rgb.astype(np.float64) / 255.0)
    views = set_views(footage, motion, stills) if config.dense else []
    if len(views) >= 2:  # stereo needs two views of the set (one camera with no survey has none to pair)
        with timer("dense"):
            dense = dense_set_points(views, xyz, DenseConfig(backdrop=config.backdrop, seed=config.seed))
            stereo = (dense.xyz, dense.rgb)
            points = stereo if points is None else tuple(np.concatenate(p) for p in zip(stereo, points))
    _check_set_points(config, sparse, len(xyz), dense, len(views), scan)
    priors = None
    if points is not None:
        if out_dir is not None:
            write_points_ply(out_dir / "dense_points.ply", points[0], (points[1] * 255).round().astype(np.uint8))
        priors = depth_priors(points[0], footage.cameras, stills.cameras if stills else None,
                              pseudo_views=train.pseudo_views if train.coverage_weight > 0 else 0, seed=config.seed)
    with timer("init"):
        params, report = initial_params(footage, xyz, rgb, init, masks=motion, dense=points,
                                        set_depths=priors.cameras if priors is not None else None)
    report = replace(report, sparse_on_performance=int(moved.sum()))
    scene = DynamicScene(params, config.sh_degree).to(device)
    set_xyz = xyz if points is None else np.concatenate([xyz, points[0]])
    set_depths = priors.cameras if priors is not None else None

    def recarve(sat_out: list[str]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """The performance's Gaussians carved again by the cameras that did not sit out."""
        keep = [c for c, camera_id in enumerate(footage.camera_ids) if camera_id not in sat_out]
        rest = footage
        for camera_id in sat_out:
            rest = rest.without(camera_id)
        with timer("recarve"):
            dynamic, counts, _, _ = dynamic_params(rest, motion[keep], set_xyz, init,
                                                   None if set_depths is None else [set_depths[c] for c in keep])
        return dynamic, counts

    trainer = Trainer(footage, scene, train, scene_scale=_scene_scale(footage), stills=stills,
                      moving=performance_masks(motion), priors=priors, recarve=recarve)
    return TrainingSetup(trainer, footage, full, stills, dense, report, scan)


def _training_schedule(config: ReconstructConfig, device: torch.device) -> TrainConfig:
    """The training config on this device, or a ReconstructError naming the flag to change: ``--set-fraction``
    outside [0, 1) (a config accepts it; only a run needs a schedule), beyond what the preset's densification allows,
    or above 0 with the mcmc strategy."""
    if config.set_fraction is not None and not 0 <= config.set_fraction < 1:
        raise ReconstructError(f"reconstruct: --set-fraction must be at least 0 and below 1 (0: one phase); got "
                               f"{config.set_fraction:g}")
    try:
        return config.train_config(device.type)
    except ValueError as error:
        raise ReconstructError(f"reconstruct: {error}") from None


def _check_cameras(root: Path, config: ReconstructConfig) -> None:
    """Refuse, from register's cameras alone, a --downscale that leaves images too small to train on and a
    --holdout that is not a registered camera (or would leave none to train on)."""
    cameras, _, _ = registered_rig(root)
    try:
        check_downscale(cameras, config.downscale, "--downscale")
    except ValueError as error:
        raise ReconstructError(f"reconstruct: {error}") from None
    if config.holdout is not None:
        if config.holdout not in cameras.camera_ids:
            raise ReconstructError(f"reconstruct: --holdout {config.holdout!r} is not a registered camera; "
                                   f"registered: {', '.join(cameras.camera_ids)}")
        if len(cameras) == 1:
            raise ReconstructError(f"reconstruct: --holdout {config.holdout!r} leaves no camera to train on (it is "
                                   "the only registered one); leave --holdout out")


def _check_set_points(config: ReconstructConfig, sparse: Path, sparse_count: int, dense: DenseSet | None = None,
                      views: int = 0, scan: AlignedScan | None = None) -> None:
    """Refuse a set with too little to start on: fewer than ``MIN_SPARSE_POINTS`` sparse points from register and
    fewer than ``MIN_SET_POINTS`` from dense stereo and the set scan together. (A handful of sparse points is fine
    when stereo over survey stills or a scan makes the set. The backdrop's points do not count: they are where
    what nothing explains is put, not geometry found.)"""
    found_dense = int((dense.source < 2).sum()) if dense is not None else 0
    extra = found_dense + (len(scan.points.xyz) if scan is not None else 0)
    if sparse_count >= MIN_SPARSE_POINTS or extra >= MIN_SET_POINTS:
        return
    made = ("no sparse points" if sparse_count == 0 else
            f"only {sparse_count} sparse point{'s' if sparse_count > 1 else ''}")
    parts = []
    if dense is not None:
        parts.append(f"dense stereo over {views} views of the set found only {found_dense} more points")
    elif config.dense:
        parts.append(f"dense stereo cannot run on {views} view{'s' if views != 1 else ''} of the set (it needs 2)")
    if scan is not None:
        parts.append(f"the set scan gave only {len(scan.points.xyz)}")
    found = " and ".join(parts) or "with --no-dense nothing else makes the set"
    raise ReconstructError(
        f"reconstruct: register made {made} ({sparse}) and {found}: the scene cannot start from so few (it needs "
        f"{MIN_SPARSE_POINTS} sparse points, or {MIN_SET_POINTS} from dense stereo or a set scan). Re-run register "
        "with survey stills of the set (--survey FOLDER), with --dynamic instants (synced footage where much of each "
        "view moves), or with a known calibration (ingest --calibration FILE, then register --calibration "
        "triangulate)" + ("; or drop --no-dense, so that dense stereo can make the set" if not config.dense else ""))


@dataclass(frozen=True)
class AlignedScan:
    """The set scan in the registered world, and how it got there."""

    points: SetScan  # world coordinates
    alignment: Alignment


def _aligned_set_scan(config: ReconstructConfig, sfm_xyz: np.ndarray, sfm_rgb: np.ndarray) -> AlignedScan:
    """Load ``config.set_scan`` and align it to register's points (from ``config.set_scan_transform`` if given;
    the points' colours choose between turns of a boxy set that fit alike)."""
    try:
        scan = load_set_scan(Path(config.set_scan), max_points=SCAN_POINTS, seed=config.seed)
        initial = read_similarity(Path(config.set_scan_transform)) if config.set_scan_transform else None
        alignment = align_scan_to_points(scan.xyz, sfm_xyz, initial=initial, scan_rgb=scan.rgb, sfm_rgb=sfm_rgb)
    except (ValueError, OSError) as error:  # the messages name the file and say what to do
        raise ReconstructError(f"--set-scan: {error}") from None
    return AlignedScan(aligned_scan(scan, alignment), alignment)


def _scan_summary(scan: AlignedScan) -> dict[str, Any]:
    """The set scan's figures for the manifest: file, points and the alignment (method, fit, similarity)."""
    a = scan.alignment
    return {"file": str(scan.points.source), "kind": scan.points.kind, "points": len(scan.points.xyz),
            "method": a.method, "inlier_fraction": round(a.inlier_fraction, 4), "median_error": a.median_error,
            "colour_agreement": a.colour_agreement,
            "similarity": a.similarity.describe()}


def _dense_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The dense geometry's figures for the manifest (without the per-view detail)."""
    return {k: v for k, v in report.items() if k != "per_view"}


def choose_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ReconstructError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def _scene_scale(footage: ShotFootage) -> float:
    """gsplat's scene scale: 1.1 x the largest camera distance from the cameras' centroid (at least 1)."""
    centres = np.array([np.linalg.inv(p)[:3, 3] for p in footage.world_to_camera[footage.valid]])
    return float(max(1.0, 1.1 * np.linalg.norm(centres - centres.mean(axis=0), axis=1).max()))


def _write_outputs(out: Path, trainer: Trainer, footage: ShotFootage) -> dict[str, Any]:
    scene = trainer.scene
    save_scene(out / "scene.pt", trainer)
    if trainer.poses_refined:
        ids = list(trainer.footage.camera_ids) + (list(trainer.stills.cameras.camera_ids) if trainer.stills else [])
        change = trainer.pose_change.double().cpu().numpy()
        atomic_write_json(out / REFINED_POSES, {
            "about": "each image's pose as trained: its registered world-to-camera multiplied on the left by "
                     "'change' (reconstruct --refine-poses); the first camera is the world's anchor",
            "images": {i: {**trainer.poses_refined[i], "change": c.tolist()} for i, c in zip(ids, change)}})
    write_splats_ply(out / "splats_static.ply", **scene.static_part())
    middle = len(footage.times) // 2
    write_splats_ply(out / f"splats_frame_{int(footage.frames[middle]):06d}.ply",
                     **scene.instant(float(footage.times[middle])))
    atomic_write_json(out / "training.json", trainer.history)
    save_png(preview_sheet(scene, footage, trainer.appearance.detach()), out / "preview.png")
    return {"gaussians": len(scene), "dynamic_gaussians": scene.num_dynamic, "cameras": list(footage.camera_ids),
            "instants": len(footage.times), "image_size": [int(v) for v in footage.cameras.image_size[0]]}


def save_scene(path: Path, trainer: Trainer) -> None:
    """The trained scene (parameters and per-camera appearance) as a torch file, written atomically."""
    import io

    buffer = io.BytesIO()
    torch.save({"params": {k: v.detach().cpu() for k, v in trainer.scene.params.items()},
                "sh_degree": trainer.scene.sh_degree,
                "appearance": trainer.appearance.detach().cpu()[:len(trainer.footage.camera_ids)],
                "camera_ids": list(trainer.footage.camera_ids), "config": asdict(trainer.config)}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def with_trained_poses(footage: ShotFootage, reconstruct_dir: Path) -> ShotFootage:
    """``footage`` (as loaded from the workspace: registered poses) with the poses its scene trained from: each
    camera's refined pose where reconstruct refined it (``--refine-poses``, ``refined_poses.json``), else as given.
    Render a training camera from these to see how well the scene fits it."""
    changes = trained_pose_changes(reconstruct_dir)
    return footage.moved({c: changes[c] for c in footage.camera_ids if c in changes}) if changes else footage


def trained_rig(workspace_root: Path, cameras: list[str] | None = None) -> tuple[Cameras, np.ndarray, np.ndarray]:
    """:func:`reshoot.splat.data.registered_rig` with the poses the workspace's scene trained from (each camera's
    refined pose where reconstruct refined it, ``refined_poses.json``): where the real cameras were as the scene
    knows them, for the guide's confidence map and the viewer."""
    pinhole, poses, valid = registered_rig(workspace_root, cameras)
    changes = trained_pose_changes(Path(workspace_root) / "reconstruct")
    if not changes:
        return pinhole, poses, valid
    change = np.stack([changes.get(c, np.eye(4)) for c in pinhole.camera_ids])
    return (replace(pinhole, world_to_camera=change @ pinhole.world_to_camera),
            np.einsum("cij,ctjk->ctik", change, poses), valid)


def trained_pose_changes(reconstruct_dir: Path) -> dict[str, np.ndarray]:
    """Each refined image's pose change (4x4, on the left of its registered world-to-camera) from
    ``refined_poses.json`` in ``reconstruct_dir``; empty if reconstruct did not refine poses."""
    path = Path(reconstruct_dir) / REFINED_POSES
    if not path.is_file():
        return {}
    return {image: np.asarray(entry["change"], dtype=np.float64)
            for image, entry in json.loads(path.read_text())["images"].items()}


def load_scene(path: Path, device: str = "cpu") -> tuple[DynamicScene, dict[str, torch.Tensor]]:
    """A scene saved by the reconstruct stage and its per-camera appearance matrices ({camera id: [3, 4]})."""
    path = Path(path)
    if path.is_dir():
        path = path / "scene.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no scene at {path}: run `reshoot reconstruct` first")
    data = torch.load(path, map_location=device, weights_only=False)
    scene = DynamicScene(data["params"], data["sh_degree"])
    return scene, dict(zip(data["camera_ids"], data["appearance"]))


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """A rendered image [H, W, 3] in [0, 1] as uint8 (clamped, rounded)."""
    return (rgb.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def preview_sheet(scene: DynamicScene, footage: ShotFootage, appearance: torch.Tensor):
    """Each training camera at the first, middle and last instant: filmed, then rendered."""
    rows = {}
    picks = sorted({0, len(footage.times) // 2, len(footage.times) - 1})
    for c, camera_id in enumerate(footage.camera_ids):
        cells = []
        for t in picks:
            if not footage.valid[c, t]:
                continue
            out = render(scene, footage.camera_at(c, t), float(footage.times[t]), appearance[c])
            w, h = (int(v) for v in footage.cameras.image_size[c])
            cells += [(f"filmed f{int(footage.frames[t])}", footage.images[c, t, :h, :w]),
                      (f"rendered f{int(footage.frames[t])}", to_uint8(out.rgb))]
        rows[camera_id] = cells
    return contact_sheet(rows, title="reconstruct: each camera filmed vs rendered")


@torch.no_grad()
def evaluate_camera(scene: DynamicScene, footage: ShotFootage, camera_id: str, out: Path | None = None,
                    sheet_instants: int = 6, appearance: torch.Tensor | np.ndarray | None = None) -> dict[str, Any]:
    """PSNR/SSIM of ``camera_id`` rendered at every instant against what it filmed.

    ``appearance``: the camera's own [3, 4] colour matrix, for a camera the scene was trained on (how well the scene
    fits it, as trained); None (a camera it never saw) renders in the reference camera's colours.

    With ``out``, writes ``holdout.json`` and ``holdout.png`` (filmed above rendered, at evenly spread instants).
    """
    c = footage.camera_ids.index(camera_id) if camera_id in footage.camera_ids else None
    if c is None:
        raise ValueError(f"no camera {camera_id!r} in the footage; cameras: {', '.join(footage.camera_ids)}")
    w, h = (int(v) for v in footage.cameras.image_size[c])
    colour = None if appearance is None else torch.as_tensor(appearance, dtype=torch.float32,
                                                             device=scene.params["means"].device)
    rows, rendered = [], {}
    for t in track(np.flatnonzero(footage.valid[c]), f"evaluating {camera_id}"):
        image = render(scene, footage.camera_at(c, t), float(footage.times[t]), colour).rgb.clamp(0, 1)
        truth = torch.as_tensor(footage.images[c, t, :h, :w], dtype=torch.float32, device=image.device) / 255.0
        rows.append({"frame": int(footage.frames[t]), "psnr_db": psnr(image, truth), "ssim": float(ssim(image, truth))})
        rendered[int(t)] = image.cpu()
    keys = sorted(rendered)
    truths = [torch.as_tensor(footage.images[c, t, :h, :w], dtype=torch.float32) / 255.0 for t in keys]
    matched = colour_matched([rendered[t] for t in keys], truths)
    result = {"camera_id": camera_id, "frames": rows,
              "psnr_db": float(np.mean([r["psnr_db"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows])),
              # one 3x4 colour map for the whole shot: the camera's colour response, not the scene (metrics.py)
              "psnr_colour_matched_db": float(np.mean([psnr(m, r) for m, r in zip(matched, truths)]))}
    if out is not None:
        atomic_write_json(Path(out) / "holdout.json", result)
        picks = [int(k) for k in np.linspace(0, len(rendered) - 1, min(sheet_instants, len(rendered))).round()]
        sheet = contact_sheet({
            "filmed": [(f"frame {int(footage.frames[keys[k]])}", footage.images[c, keys[k], :h, :w]) for k in picks],
            "rendered": [(f"{rows[k]['psnr_db']:.1f} dB", to_uint8(rendered[keys[k]])) for k in picks]},
            title=f"held-out camera {camera_id}: {result['psnr_db']:.2f} dB PSNR, SSIM {result['ssim']:.3f} (mean)")
        save_png(sheet, Path(out) / "holdout.png")
    return result
