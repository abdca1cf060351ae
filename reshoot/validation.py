"""Validation: reshoot a camera that exists, and compare with what it really filmed.

``reshoot eval --workspace WS --camera CAM`` renders the angle of a camera whose true footage is known, through the
same guide and refine code as a real reshoot, and scores both against the truth, frame by frame: PSNR and SSIM over
the whole frame, the set and the actor separately, and flicker (the frame-to-frame change that the truth does not
have); then gives each shot a verdict, usable / needs fixes / not usable, by the PSNR thresholds
:data:`USABLE_MIN_PSNR_DB` and :data:`NOT_USABLE_BELOW_PSNR_DB`. Two kinds of truth:

- ``--camera overhead`` (or another ground-truth role) on the built-in sample: the hidden camera that never filmed
  for training (the workspace must be the sample's: ``reshoot demo`` records its ground truth);
- ``--camera cam1`` (a set camera): the scene must have been trained without it (``reshoot reconstruct --holdout
  cam1``), and its own footage, undistorted to the pinhole the scene renders, is the truth;
- ``--camera cam02 --truth-footage DIR --truth-calibration MODEL [--truth-masks DIR]``: any camera whose footage and
  calibration are known but which never filmed for training (:func:`footage_truth`): placed in the scene's world
  through the calibration the set was registered with, rendered with its own lens.

The actor region is the sample's ground-truth actor masks on the sample, the ``--truth-masks`` given with an outside
camera, and on a held-out set camera what differs from its clean plate (the reconstruct stage's motion masks,
:func:`reshoot.splat.init.motion_masks`).

It writes ``WS/eval/<camera>/``: ``report.html`` (the verdict, figures by region, per-frame plots, a per-pixel error
heat map, side-by-side frames, a flip-book strip: what a supervisor reads to decide whether to trust a reshoot),
``metrics.json``, the pictures it shows (``error_heatmap.png``, ``side_by_side.png``, ``flipbook.png``) and, with
viser installed, ``scene_3d.html``: the scene, the cameras and the path in 3D, a standalone page the report shows in
a frame (:mod:`reshoot.viewer_report`).
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reshoot.atomic import atomic_write_json, atomic_write_text
from reshoot.camera_path import Timeline
from reshoot.cameras import Cameras
from reshoot.guide import RealCameras, render_guide
from reshoot.evaluation import mean_region_scores
from reshoot.metrics import flicker, region_scores
from reshoot.progress import progress_stage, track
from reshoot.reconstruct import choose_device, load_scene
from reshoot.refine.base import RefineInputs
from reshoot.refine.stage import RefineConfig, make_refiner
from reshoot.splat.data import load_shot_footage, registered_rig
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageError, Workspace

#: The verdict on a shot, from its PSNR against the truth per region (dB). Usable: every region at or above its
#: USABLE figure. Not usable: any region below its NOT_USABLE figure. Needs fixes: in between. 8-bit PSNR 20 dB is an
#: RMS error of 26 levels (10 %), visible everywhere; 25 dB 14 levels; 27 dB 11 levels, hard to see on a moving
#: shot. The actor's figures are lower: a small moving region, all edges and detail, scored without the forgiving
#: flat walls and floor.
USABLE_MIN_PSNR_DB = {"whole frame": 25.0, "set": 27.0, "actor": 22.0}
NOT_USABLE_BELOW_PSNR_DB = {"whole frame": 20.0, "set": 20.0, "actor": 16.0}
VERDICTS = ("usable", "needs fixes", "not usable")
#: The error heat map's colour scale: 0 to this many 8-bit levels of mean absolute error (more shows as the top).
HEATMAP_MAX_LEVELS = 64.0
#: How the actor region is found, as the report states it.
ACTOR_FROM_SAMPLE = "the sample's ground-truth actor masks (the set is every other pixel)"
ACTOR_FROM_MOTION = ("the pixels that differ from the camera's clean plate (the per-pixel median of its frames) by "
                     "more than {threshold} levels: what moves, the actor and anything else that moved (the set is "
                     "every other pixel)")


@dataclass(frozen=True)
class EvalConfig:
    """What to validate."""

    camera: str = "overhead"
    """The camera to reshoot: a set camera the scene was trained without (--holdout), a ground-truth role of the
    built-in sample (overhead), or a camera of --truth-calibration that filmed --truth-footage."""
    confidence: bool = True
    """Compute the guide's confidence map (the refiners use it; slower)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the scene renders (auto: CUDA when there is a GPU)."""
    truth_footage: Path | None = None
    """For a camera outside the workspace's footage: what it filmed, a video or a folder of numbered images, synced
    with the ingested cameras (its first frame at the ingest clock's 0 s, as with ingest --sync none; a folder runs at
    the timeline's rate, so its frame k is timeline frame k). Needs --truth-calibration."""
    truth_calibration: Path | None = None
    """That camera's calibration, any file or folder `ingest --calibration` reads (a COLMAP model, camera_array.toml,
    transforms.json, cameras.json) holding --camera: the one the set was registered with (register --calibration
    triangulate), or one holding 3 or more of the set cameras to align it by."""
    truth_masks: Path | None = None
    """Optional: that camera's actor masks, a PNG per frame named like its frames (a video's: <frame:06d>.png from 0),
    white where the actor is: the actor region (without them only the whole frame is scored)."""


@dataclass(frozen=True, eq=False)
class TruthPath:
    """A real camera as a path to render: one output frame per timeline frame, with the camera's own lens (its
    principal point may be off-centre, which a CameraPath's is not). Has what ``render_guide`` reads of a path."""

    name: str
    lens: Cameras  # one pinhole camera: intrinsics and size
    world_to_camera: np.ndarray  # [T, 4, 4]

    def __len__(self) -> int:
        return len(self.world_to_camera)

    @property
    def timeline_frames(self) -> np.ndarray:  # [T]
        return np.arange(len(self), dtype=np.float64)

    def camera(self, idx: int) -> Cameras:
        return replace(self.lens, world_to_camera=self.world_to_camera[idx][None])


@dataclass(frozen=True)
class Truth:
    """The camera to reshoot and what it filmed, on the footage timeline."""

    path: TruthPath
    frames: dict[int, np.ndarray]  # timeline frame -> true image [H, W, 3] uint8
    actor: dict[int, np.ndarray] = field(default_factory=dict)  # timeline frame -> [H, W] bool, where the actor is
    actor_region: str = ""  # how ``actor`` was found (empty: no actor region is known)
    source: dict[str, Any] = field(default_factory=dict)  # where an outside camera's truth came from (for the report)


def run_eval(workspace: Workspace, config: EvalConfig = EvalConfig()) -> dict[str, Any]:
    """Reshoot ``config.camera``, score guide and refined frames against its truth, write the report; returns the
    metrics (also in ``WS/eval/<camera>/metrics.json``). Holds the workspace's writer lock: a stage re-run by
    another process meanwhile would change the scene under it."""
    with workspace.writing(), progress_stage("eval"):
        return _run_eval(workspace, config)


def _run_eval(workspace: Workspace, config: EvalConfig) -> dict[str, Any]:
    root = workspace.root
    if not workspace.manifest("reconstruct"):
        raise StageError(f"no scene in {root}: run `reshoot reconstruct --workspace {root}` first")
    start = time.perf_counter()
    timeline = Timeline.from_workspace(root)
    device = choose_device(config.device)
    scene, appearance = load_scene(workspace.stage_dir("reconstruct") / "scene.pt", device=str(device))
    if config.camera in appearance:
        raise StageError(f"the scene in {root / 'reconstruct'} was trained on {config.camera!r}, so it cannot be "
                         f"judged on it: run `reshoot reconstruct --workspace {root} --holdout {config.camera}` first")
    truth = (footage_truth(workspace, config, timeline) if config.truth_footage or config.truth_calibration
             else _truth(workspace, config.camera, timeline))
    cameras, poses, valid = registered_rig(root, list(appearance))
    real = RealCameras(cameras, poses, valid) if config.confidence else None
    frames = [render_guide(scene, truth.path, i, timeline, real)
              for i in track(range(len(truth.path)), f"reshooting {config.camera}")]
    inputs = RefineInputs(np.stack([f.rgb for f in frames]), np.stack([f.confidence if f.confidence is not None
                                                                       else f.alpha for f in frames]),
                          np.stack([f.alpha for f in frames]), fps=float(timeline.fps))
    refine_manifest = workspace.manifest("refine")
    refine_config = (RefineConfig(**{k: v for k, v in refine_manifest["config"].items()
                                     if k in RefineConfig.__dataclass_fields__ and k not in ("start_image",
                                                                                             "end_image")})
                     if refine_manifest else RefineConfig())
    refined = make_refiner(refine_config).refine(inputs).frames
    return write_report(root, config.camera, refine_config.refiner, inputs.guide, refined, truth.frames,
                        scene=workspace.stage_dir("reconstruct") / "scene.pt", started=start, actor=truth.actor,
                        actor_region=truth.actor_region, truth_source=truth.source, reshot=truth.path)


def write_report(workspace_root: Path, camera: str, refiner: str, guide: np.ndarray, refined: np.ndarray,
                 truth: dict[int, np.ndarray], scene: Path, started: float | None = None,
                 actor: dict[int, np.ndarray] | None = None, actor_region: str = "",
                 truth_source: dict[str, Any] | None = None, reshot: TruthPath | None = None) -> dict[str, Any]:
    """Score a reshoot of ``camera`` against what it filmed and write ``WS/eval/<camera>/`` (metrics.json, the
    pictures, report.html); returns the metrics.

    ``guide`` and ``refined`` are the shot's frames ``[T, H, W, 3]`` in [0, 1], frame ``i`` at timeline frame ``i``;
    ``truth`` maps timeline frames to what the camera filmed (uint8 ``[H, W, 3]``), for some or all frames;
    ``actor`` maps them to where the actor is (``[H, W]`` bool; frames without one are scored whole only), found as
    ``actor_region`` says; ``truth_source`` (optional) says where an outside camera's truth came from. Each shot gets
    figures over the whole frame, the set and the actor, and a verdict. The report embeds a 3D view of the workspace's
    scene with the ``reshot`` camera (:mod:`reshoot.viewer_report`)."""
    out = Path(workspace_root) / "eval" / camera
    out.mkdir(parents=True, exist_ok=True)
    actor = actor or {}
    metrics: dict[str, Any] = {"camera": camera, "refiner": refiner, "seconds": None, "scene": str(scene),
                               "actor_region": actor_region if actor else None,  # None: no actor region known
                               "truth": truth_source or None,  # None: a held-out set camera or the sample's
                               "thresholds_psnr_db": {"usable_min": USABLE_MIN_PSNR_DB,
                                                      "not_usable_below": NOT_USABLE_BELOW_PSNR_DB}}
    for name, shot in (("guide", guide), ("refined", refined)):
        metrics[name] = score_frames(shot, truth, actor)
        metrics[name].update(shot_verdict(metrics[name]))
    metrics["verdict"], metrics["verdict_reason"] = metrics["refined"]["verdict"], metrics["refined"]["verdict_reason"]
    metrics["seconds"] = None if started is None else time.perf_counter() - started
    _pictures(out, guide, refined, truth, camera)
    _error_heatmap(out, {"guide": guide, "refined": refined}, truth, actor, camera)
    atomic_write_json(out / "metrics.json", metrics)
    from reshoot.viewer_report import scene_3d_section

    scene_3d = scene_3d_section(Path(workspace_root), out, camera, reshot)
    atomic_write_text(out / "report.html", report_html(metrics, camera, Path(workspace_root), scene_3d))
    return metrics


def flicker_text(value: float | None) -> str:
    """A flicker figure for tables and the report: ``-`` where there was none (no consecutive frames with a truth)."""
    return "-" if value is None else f"{value:.2f}"


def ssim_text(value: float | None) -> str:
    """An SSIM for tables and the report: ``-`` where there was none (e.g. no frame shows the actor)."""
    return "-" if value is None else f"{value:.3f}"


def db_text(value: float | None) -> str:
    """A PSNR for tables and the report: ``-`` where there was none (e.g. no frame shows the actor)."""
    return "-" if value is None else f"{value:.2f} dB"


def score_frames(shot: np.ndarray, truth: dict[int, np.ndarray],
                 actor: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
    """PSNR/SSIM per frame (those with a truth) and overall, over the whole frame, the set and the actor (frames
    with an ``actor`` mask, ``[H, W]`` bool; see :func:`reshoot.metrics.region_scores`), and flicker over
    consecutive frames with a truth. A region's overall figure is the mean over the frames that have it."""
    per_frame, flickers = [], []
    for i, image in truth.items():
        t = torch.from_numpy(image.astype(np.float32) / 255)
        s = torch.from_numpy(np.ascontiguousarray(shot[i], dtype=np.float32))
        mask = (actor or {}).get(i)
        row = {"frame": i, **region_scores(s, t, None if mask is None else torch.from_numpy(mask))}
        if i + 1 in truth:
            t2 = torch.from_numpy(truth[i + 1].astype(np.float32) / 255)
            row["flicker"] = flicker(torch.stack([s, torch.from_numpy(shot[i + 1].astype(np.float32))]),
                                     torch.stack([t, t2]))
            flickers.append(row["flicker"])
        per_frame.append(row)
    return {**mean_region_scores(per_frame), "flicker": float(np.mean(flickers)) if flickers else None,
            "per_frame": per_frame}


def shot_verdict(figures: dict[str, Any]) -> dict[str, str]:
    """``usable``, ``needs fixes`` or ``not usable`` for a shot's figures (from :func:`score_frames`), by the
    thresholds :data:`USABLE_MIN_PSNR_DB` and :data:`NOT_USABLE_BELOW_PSNR_DB`, and the reason: which regions
    failed which threshold. A region without a figure (no actor mask) is not judged, and the reason says so."""
    psnrs = {"whole frame": figures["psnr_db"], "set": figures.get("set_psnr_db"),
             "actor": figures.get("actor_psnr_db")}
    judged = {region: value for region, value in psnrs.items() if value is not None}
    unjudged = "" if len(judged) == len(psnrs) else (
        f" ({' and '.join(r for r in psnrs if r not in judged)} not judged: no actor region known)")
    failing = {region: f"{region} {value:.1f} dB < {NOT_USABLE_BELOW_PSNR_DB[region]:g} dB"
               for region, value in judged.items() if value < NOT_USABLE_BELOW_PSNR_DB[region]}
    short = {region: f"{region} {value:.1f} dB < {USABLE_MIN_PSNR_DB[region]:g} dB"
             for region, value in judged.items() if value < USABLE_MIN_PSNR_DB[region] and region not in failing}
    if failing:
        also = f"; also short of usable: {'; '.join(short.values())}" if short else ""
        return {"verdict": "not usable", "verdict_reason": "; ".join(failing.values()) + unjudged + also}
    if short:
        return {"verdict": "needs fixes", "verdict_reason": "; ".join(short.values()) + unjudged}
    return {"verdict": "usable", "verdict_reason": "every region meets its threshold" + unjudged}


def _truth(workspace: Workspace, camera: str, timeline: Timeline) -> Truth:
    root = workspace.root
    cameras, poses, valid = registered_rig(root)
    if camera in cameras.camera_ids:
        downscale = (workspace.manifest("reconstruct") or {}).get("config", {}).get("downscale", 1)
        footage = load_shot_footage(root, downscale=downscale, cameras=[camera])  # the size the scene learnt at
        one = footage.cameras
        w, h = (int(v) for v in one.image_size[0])
        frames = {int(f): footage.images[0, t, :h, :w] for t, f in enumerate(footage.frames) if footage.valid[0, t]}
        world_to_camera = footage.world_to_camera[0]
        actor, actor_region = held_out_actor_masks(footage, w, h)
    else:
        ground_truth = workspace.info.get("ground_truth")
        if not ground_truth:
            raise StageError(f"{camera!r} is not a registered camera of {root} ({', '.join(cameras.camera_ids)}), and "
                             "the workspace has no ground truth (the built-in sample's, recorded by `reshoot demo`). To validate a reshoot "
                             f"of your own footage, leave a set camera out: `reshoot reconstruct --workspace {root} "
                             f"--holdout {cameras.camera_ids[0]}`, then `reshoot eval --workspace {root} --camera "
                             f"{cameras.camera_ids[0]}`; or give {camera}'s own footage and calibration: "
                             "--truth-footage and --truth-calibration")
        from reshoot.evaluation import localised_sample_view, sample_truth_source
        from reshoot.footage import read_image
        from reshoot.sample import load_sample_shoot

        view = localised_sample_view(root, load_sample_shoot(Path(ground_truth).parent), camera)
        one = view.camera
        frames = {j: read_image(p)[..., :3] for j, p in view.frames.items()}
        world_to_camera = np.repeat(one.world_to_camera, timeline.frame_count, axis=0)
        actor, actor_region = view.actor, ACTOR_FROM_SAMPLE if view.actor else ""
        return Truth(TruthPath(camera, replace(one, distortion=np.zeros_like(one.distortion)), world_to_camera),
                     frames, actor, actor_region, sample_truth_source(view))
    return Truth(TruthPath(camera, replace(one, distortion=np.zeros_like(one.distortion)), world_to_camera), frames,
                 actor, actor_region)


def held_out_actor_masks(footage, width: int, height: int) -> tuple[dict[int, np.ndarray], str]:
    """A held-out set camera's actor region: what differs from its clean plate, by the reconstruct stage's own
    motion masks (``footage``: that one camera's ``ShotFootage``). None known (``{}``) for a moving camera or one
    with under 3 frames: it has no clean plate."""
    from reshoot.splat.init import InitConfig, motion_masks

    threshold = InitConfig().motion_threshold
    moving = motion_masks(footage, threshold)[0]
    if not moving.any():
        return {}, ""
    return ({int(f): moving[t, :height, :width] for t, f in enumerate(footage.frames) if footage.valid[0, t]},
            ACTOR_FROM_MOTION.format(threshold=threshold))


#: How far (degrees, share of the set cameras' spread) --truth-calibration may place a set camera from where the
#: scene has it before it is taken for a calibration of another world.
TRUTH_WORLD_MAX_ROTATION_DEG = 0.5
TRUTH_WORLD_MAX_CENTRE_SHARE = 0.02


def footage_truth(workspace: Workspace, config: EvalConfig, timeline: Timeline) -> Truth:
    """The truth for a camera that never filmed for training, from ``config.truth_footage`` and
    ``config.truth_calibration`` (and ``config.truth_masks``): its lens undistorted to a pinhole at the size the
    scene learnt at, placed in the scene's world by :func:`truth_camera`; its frame at the ingest clock's time of
    each timeline frame (frames outside its footage are not scored)."""
    from reshoot.footage import FootageError, iter_source_frames, probe_source
    from reshoot.splat.data import _remap, _undistort_maps

    camera, root = config.camera, workspace.root
    if config.truth_footage is None or config.truth_calibration is None:
        raise StageError(f"camera {camera!r}: --truth-footage and --truth-calibration go together (what it filmed and "
                         "where it stood); give both")
    lens, placed_by = truth_camera(workspace, camera, Path(config.truth_calibration))
    try:
        source = probe_source(Path(config.truth_footage), camera, sequence_fps=timeline.fps)
    except FootageError as exc:
        raise StageError(f"--truth-footage: {exc}") from exc
    if (source.width, source.height) != tuple(int(v) for v in lens.image_size[0]):
        raise StageError(f"--truth-footage {source.path} is {source.width}x{source.height} but --truth-calibration "
                         f"calibrates {camera!r} for {lens.image_size[0][0]}x{lens.image_size[0][1]} images; give the "
                         "footage at the calibrated size")
    downscale = (workspace.manifest("reconstruct") or {}).get("config", {}).get("downscale", 1)
    pinhole = replace(lens, distortion=np.zeros_like(lens.distortion))
    maps = _undistort_maps(lens, pinhole)
    pinhole = pinhole.resized(lens.image_size // downscale)  # the size the scene learnt at
    size = tuple(int(v) for v in pinhole.image_size[0])
    times_s = json.loads((root / "ingest" / "footage.json").read_text())["timeline"]["times_s"]
    wanted = {k: round(t * float(source.fps)) for k, t in enumerate(times_s[:timeline.frame_count])}
    wanted = {k: i for k, i in wanted.items() if 0 <= i < source.frame_count}
    if not wanted:
        raise StageError(f"--truth-footage {source.path} has frames 0..{source.frame_count - 1} at "
                         f"{float(source.fps):g} fps, none at the shot's times {times_s[0]:.3f}..{times_s[-1]:.3f} "
                         "s; give footage synced with the ingested cameras")
    images = {i: _remap(image, maps, size) for i, image in iter_source_frames(source, list(wanted.values()))}
    frames = {k: images[i] for k, i in wanted.items()}
    actor = _truth_masks(Path(config.truth_masks), source, wanted, maps, size) if config.truth_masks else {}
    world_to_camera = np.repeat(pinhole.world_to_camera, timeline.frame_count, axis=0)
    region = f"the masks given with --truth-masks ({config.truth_masks}): white is the actor (the set is the rest)"
    return Truth(TruthPath(camera, pinhole, world_to_camera), frames, actor, region if actor else "",
                 {"footage": str(source.path), "calibration": str(config.truth_calibration), "placed_by": placed_by,
                  "masks": None if config.truth_masks is None else str(config.truth_masks),
                  "frames": {str(k): i for k, i in wanted.items()}})


def truth_camera(workspace: Workspace, camera: str, calibration_path: Path) -> tuple[Cameras, str]:
    """``camera`` of the calibration at ``calibration_path`` (its lens as filmed) in the scene's world, and how it
    was placed there: through the register stage's own link when it kept the imported calibration (``--calibration
    triangulate``), else aligned on the set cameras the calibration holds (3 or more). Either way, the set cameras it
    holds must land where the scene has them, or it is taken for a calibration of another world."""
    from reshoot.calibration import match_cameras, read_calibration
    from reshoot.evaluation import align_similarity

    try:
        calibration = read_calibration(calibration_path)
        lens = match_cameras(calibration, [camera])
    except (FileNotFoundError, ValueError) as exc:
        raise StageError(f"--truth-calibration for camera {camera!r}: {exc}") from exc
    register = workspace.stage_dir("register")
    data = json.loads((register / "cameras.json").read_text())
    set_cameras = Cameras.from_json(data)
    shared = []
    for camera_id in set_cameras.camera_ids:  # the set cameras the calibration holds too
        try:
            match_cameras(calibration, [camera_id])
            shared.append(camera_id)
        except ValueError:
            pass
    known = match_cameras(calibration, shared) if shared else None
    if (workspace.manifest("register") or {}).get("summary", {}).get("calibration") == "triangulate":
        S, placed_by = np.array(data["colmap_to_world"]), "the register stage's link to the calibration it kept"
    elif len(shared) >= 3:
        S = align_similarity(known, set_cameras.select(shared))
        placed_by = f"aligned on the set cameras {', '.join(shared)}"
    else:
        raise StageError(f"cannot place {camera!r} in the scene's world: the set was registered without a known "
                         f"calibration and {calibration_path} holds {len(shared)} of its cameras "
                         f"({', '.join(set_cameras.camera_ids)}); give a calibration holding 3 or more of them")
    if known is not None:  # where the calibration's set cameras land, against where the scene has them
        moved, scene = known.transform_world(S), set_cameras.select(shared)
        relative = moved.world_to_camera[:, :3, :3] @ np.transpose(scene.world_to_camera[:, :3, :3], (0, 2, 1))
        degrees = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        spread = max(float(np.linalg.norm(np.ptp(scene.centers, axis=0))), 1e-9)
        shares = np.linalg.norm(moved.centers - scene.centers, axis=1) / spread
        worst = int(np.argmax(degrees / TRUTH_WORLD_MAX_ROTATION_DEG + shares / TRUTH_WORLD_MAX_CENTRE_SHARE))
        off = degrees[worst] > TRUTH_WORLD_MAX_ROTATION_DEG or shares[worst] > TRUTH_WORLD_MAX_CENTRE_SHARE
        if off and placed_by.startswith("the register"):  # kept poses land exactly, unless it is another world
            raise StageError(f"{calibration_path} places set camera {shared[worst]!r} {degrees[worst]:.2f} deg and "
                             f"{shares[worst]:.1%} of the set's spread away from where the scene has it (allowed: "
                             f"{TRUTH_WORLD_MAX_ROTATION_DEG} deg, {TRUTH_WORLD_MAX_CENTRE_SHARE:.0%}): it is not in "
                             "the world the set was registered in. Give the calibration ingest imported for the set, "
                             "or one of the same rig")
        placed_by += f"; its set cameras {', '.join(shared)} land within {degrees.max():.3f} deg, {shares.max():.2%}"
    return lens.transform_world(S), placed_by


def _truth_masks(folder: Path, source, wanted: dict[int, int], maps: tuple[np.ndarray, np.ndarray],
                 size: tuple[int, int]) -> dict[int, np.ndarray]:
    """The actor masks of an outside camera's frames (``wanted``: timeline frame -> its frame index), undistorted and
    resized like the frames: ``<frame file stem>.png`` (a video's: ``<index:06d>.png``), white where the actor is."""
    from reshoot.footage import read_image
    from reshoot.splat.data import _remap

    if not folder.is_dir():
        raise StageError(f"--truth-masks {folder} is not a folder; it should hold a PNG per frame of {source.path}")
    actor = {}
    for k, i in wanted.items():
        path = folder / f"{source.files[i].stem if source.kind == 'sequence' else f'{i:06d}'}.png"
        if not path.is_file():
            continue  # that frame is scored whole only
        mask = read_image(path)
        if mask.shape[:2] != (source.height, source.width):
            raise StageError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]}; the frames of {source.path} are "
                             f"{source.width}x{source.height}")
        gray = np.repeat(mask[..., :3].max(axis=2)[..., None], 3, axis=2)
        actor[k] = _remap(gray, maps, size)[..., 0] >= 128
    if not actor:
        i = next(iter(wanted.values()))
        first = source.files[i].stem if source.kind == "sequence" else f"{i:06d}"
        raise StageError(f"--truth-masks {folder} holds no mask of the shot's frames (e.g. {folder / first}.png)")
    return actor


def _pictures(out: Path, guide: np.ndarray, refined: np.ndarray, truth: dict[int, np.ndarray], camera: str) -> None:
    """side_by_side.png (truth, guide, refined at five instants) and flipbook.png (every frame, a strip each)."""
    def u8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)

    known = sorted(truth)
    picks = [known[i] for i in np.unique(np.linspace(0, len(known) - 1, min(5, len(known))).round().astype(int))]
    save_png(contact_sheet({"truth": [(f"f{i}", truth[i]) for i in picks],
                            "guide": [(f"f{i}", u8(guide[i])) for i in picks],
                            "refined": [(f"f{i}", u8(refined[i])) for i in picks]},
                           title=f"{camera}: what it filmed, the guide frames, the refined shot"), out / "side_by_side.png")
    step = max(1, len(known) // 12)
    strip = known[::step]
    small = {name: [(f"{i}", _shrink(frames[i])) for i in strip]
             for name, frames in (("truth", {i: truth[i] for i in strip}), ("refined", {i: u8(refined[i]) for i in strip}))}
    save_png(contact_sheet(small, title=f"{camera}: flip-book, every {step} frame(s)"), out / "flipbook.png")


def _error_heatmap(out: Path, shots: dict[str, np.ndarray], truth: dict[int, np.ndarray],
                   actor: dict[int, np.ndarray], camera: str) -> None:
    """error_heatmap.png: per pixel, each shot's absolute error against the truth (8-bit levels, mean of the
    channels), averaged over the frames with a truth and at the middle one (the actor region outlined in green), on
    the colour scale 0 to :data:`HEATMAP_MAX_LEVELS` drawn beneath with its legend. Small pictures are enlarged."""
    known = sorted(truth)
    middle = known[len(known) // 2]
    zoom = max(1, -(-300 // truth[middle].shape[1]))  # at least 300 pixels wide, whole pixels

    def picture(error: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        colours = _heat_colours(error)
        if mask is not None:
            colours[_outline(mask)] = (0, 230, 0)
        return colours.repeat(zoom, axis=0).repeat(zoom, axis=1)

    rows = {}
    for name, shot in shots.items():
        total = np.zeros(truth[middle].shape[:2], np.float64)
        for i in known:
            error = np.abs(shot[i].astype(np.float32) * 255 - truth[i].astype(np.float32)).mean(axis=2)
            total += error
            if i == middle:
                at_middle = (f"frame {middle}: {error.mean():.1f} on average", picture(error, actor.get(middle)))
        mean = total / len(known)
        rows[name] = [(f"mean of {len(known)} frames: {mean.mean():.1f} on average", picture(mean)), at_middle]
    sheet = contact_sheet(rows, title=f"{camera}: error per pixel against the truth")
    save_png(_with_colour_bar(sheet), out / "error_heatmap.png")


#: The heat map's colours from no error to HEATMAP_MAX_LEVELS and above (black, purple, red, orange, pale yellow).
_HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)


def _heat_colours(error: np.ndarray) -> np.ndarray:
    """Errors in 8-bit levels ``[H, W]`` as colours ``[H, W, 3]`` uint8 on the scale 0 to HEATMAP_MAX_LEVELS."""
    x = np.clip(error / HEATMAP_MAX_LEVELS, 0, 1) * (len(_HEAT_ANCHORS) - 1)
    stops = np.arange(len(_HEAT_ANCHORS))
    return np.stack([np.interp(x, stops, _HEAT_ANCHORS[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` [H, W] bool on its border (a neighbour outside it).  # [H, W] bool"""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _with_colour_bar(sheet, bar_px: int = 14):
    """``sheet`` (a PIL image) with the heat map's colour scale and its legend beneath."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    legend = ["mean absolute error, 8-bit levels, mean of R, G, B (0: identical)",
              "left: averaged over the frames; right: the middle frame, the actor region outlined in green"]
    width = int(max(sheet.width, 20 + max(font.getlength(line) for line in legend)))
    figure = Image.new("RGB", (width, sheet.height + bar_px + 62), (24, 24, 28))
    figure.paste(sheet, (0, 0))
    ramp = _heat_colours(np.tile(np.linspace(0, HEATMAP_MAX_LEVELS, width - 20), (bar_px, 1)))
    figure.paste(Image.fromarray(ramp), (10, sheet.height + 4))
    draw = ImageDraw.Draw(figure)
    y = sheet.height + 6 + bar_px
    for level in np.linspace(0, HEATMAP_MAX_LEVELS, 5):
        x = 10 + level / HEATMAP_MAX_LEVELS * (width - 21)
        label = f"{level:.0f}" + ("+" if level == HEATMAP_MAX_LEVELS else "")
        draw.line([(x, y - 2), (x, y + 2)], fill=(240, 240, 240))
        draw.text((min(x, width - 10 - font.getlength(label)), y + 2), label, fill=(240, 240, 240), font=font)
    for k, line in enumerate(legend):
        draw.text((10, y + 20 + 16 * k), line, fill=(200, 200, 200), font=font)
    return figure


def _shrink(image: np.ndarray, height: int = 72) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * height / h)), height), Image.BILINEAR))


def report_html(metrics: dict[str, Any], camera: str, workspace_root: Path, scene_3d: str = "") -> str:
    """The report a supervisor reads: the verdict, headline figures by region, per-frame plots (inline SVG), the
    error heat map, the pictures, and the ``scene_3d`` section (HTML) when given."""
    g, r = metrics["guide"], metrics["refined"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{m['psnr_db']:.2f} dB (min {m['psnr_min_db']:.2f})</td>"
        f"<td>{db_text(m.get('set_psnr_db'))}</td><td>{db_text(m.get('actor_psnr_db'))}</td><td>{m['ssim']:.3f}</td>"
        f"<td>{ssim_text(m.get('set_ssim'))}</td><td>{ssim_text(m.get('actor_ssim'))}</td>"
        f"<td>{flicker_text(m['flicker'])}</td><td>{m['verdict']}</td></tr>"
        for name, m in (("guide frames", g), (f"refined ({html.escape(metrics['refiner'])})", r)))
    closer = ("The refined shot is closer to the truth than the guide frames" if r["psnr_db"] > g["psnr_db"]
              else "The refiner did not bring the shot closer to the truth")
    plots = "".join(_svg_plot([g, r], key, label) for key, label in (("psnr_db", "PSNR (dB) per frame, whole frame"),
                                                                      ("actor_psnr_db", "PSNR (dB) per frame, actor"),
                                                                      ("ssim", "SSIM per frame"),
                                                                      ("flicker", "flicker (8-bit levels) per frame")))
    why = ("no --truth-masks were given" if metrics.get("truth") else
           "one that moves, or filmed under 3 frames, has no clean plate to find it by")
    regions = (f"the actor is {metrics['actor_region']}" if metrics["actor_region"] else
               f"no actor region is known for this camera ({why}), so only the whole frame is scored")
    actor_note = (f" The actor appears in {r['actor_frames']} of them, on {r['actor_fraction']:.1%} of the picture on "
                  "average." if r.get("actor_fraction") is not None else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>reshoot eval: {html.escape(camera)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:24px auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px}}img{{max-width:100%}}.legend span{{margin-right:16px}}
.verdict{{padding:10px 16px;border-radius:6px;color:#fff;font-size:1.2em}}</style></head><body>
<h1>Reshooting {html.escape(camera)}</h1>
{_verdict_html(metrics)}
<p>Workspace <code>{html.escape(str(workspace_root))}</code>. The camera's angle was rendered from the splat scene (which
never saw this camera's footage) and refined, then compared with what the camera really filmed, on
{len(g['per_frame'])} frames.{html.escape(actor_note)} {html.escape(closer)}.{_truth_html(metrics.get("truth"))}</p>
<table><tr><th rowspan="2">shot</th><th colspan="3">PSNR</th><th colspan="3">SSIM</th><th rowspan="2">flicker</th>
<th rowspan="2">verdict</th></tr><tr><th>whole frame</th><th>set</th><th>actor</th><th>whole frame</th><th>set</th>
<th>actor</th></tr>{rows}</table>
<p>Regions: {html.escape(regions)}. A region's PSNR is over its pixels only, its SSIM
the SSIM map averaged over them; each is the mean over the frames the region is in (<code>-</code>: in none).
PSNR and SSIM: higher is closer to the truth (identical: infinite PSNR, SSIM 1). Flicker: the mean difference
between the shot's frame-to-frame change and the truth's, in 8-bit levels (0: the shot changes exactly as the
truth does).</p>
<div class="legend"><span style="color:#d62728">&#9632; guide frames</span><span style="color:#1f77b4">&#9632; refined</span></div>
{plots}
<h2>Where the errors are</h2><img src="error_heatmap.png" alt="per-pixel error heat map of the guide and refined shots">
<p>Per pixel, the absolute difference from the truth in 8-bit levels (mean of the three channels): averaged over
every frame (left) and at the middle frame, with the actor region outlined in green (right). Black: no error; pale
yellow: {HEATMAP_MAX_LEVELS:.0f} levels or more.</p>
<h2>Side by side</h2><img src="side_by_side.png" alt="truth, guide and refined frames">
<h2>Flip-book</h2><img src="flipbook.png" alt="truth and refined, every few frames">
{scene_3d}
<p style="color:#777">metrics.json has every number on this page.</p></body></html>
"""


def _truth_html(source: dict[str, Any] | None) -> str:
    """Where an outside camera's truth came from, or where the sample's hidden camera was placed (nothing for a
    held-out set camera)."""
    if not source:
        return ""
    if "footage" not in source:
        return f" Where it stood: {html.escape(source['placed_by'])}."
    return (f" What it filmed: <code>{html.escape(source['footage'])}</code>; its calibration: <code>"
            f"{html.escape(source['calibration'])}</code>, placed in the scene's world by "
            f"{html.escape(source['placed_by'])}.")


def _verdict_html(metrics: dict[str, Any]) -> str:
    """The verdict on the refined shot, its reason, and the thresholds it follows."""
    colour = {"usable": "#2e7d32", "needs fixes": "#ef6c00", "not usable": "#c62828"}[metrics["verdict"]]
    usable = ", ".join(f"{region} &ge; {db:g} dB" for region, db in USABLE_MIN_PSNR_DB.items())
    unusable = " or ".join(f"{region} &lt; {db:g} dB" for region, db in NOT_USABLE_BELOW_PSNR_DB.items())
    return (f'<p class="verdict" style="background:{colour}">Verdict on the refined shot: <b>{metrics["verdict"]}</b>'
            f' &mdash; {html.escape(metrics["verdict_reason"])}</p>\n<p>The verdict follows the PSNR of each region '
            f"against the truth: <b>usable</b> when {usable}; <b>not usable</b> when {unusable}; <b>needs fixes</b> in "
            "between (the guide frames are judged the same way, in the table).</p>")


def _svg_plot(series: list[dict[str, Any]], key: str, title: str, width: int = 900, height: int = 180) -> str:
    """A small line chart of ``key`` per frame for each series (guide red, refined blue), as inline SVG."""
    colours = ["#d62728", "#1f77b4"]
    points = [[(row["frame"], row[key]) for row in s["per_frame"] if row.get(key) is not None] for s in series]
    values = [v for p in points for _, v in p]
    if not values:
        return ""
    frames = [f for p in points for f, _ in p]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    f0, f1 = min(frames), max(frames) or 1

    def xy(frame: float, value: float) -> str:
        x = 50 + (frame - f0) / max(f1 - f0, 1) * (width - 60)
        y = 10 + (hi - value) / span * (height - 40)
        return f"{x:.1f},{y:.1f}"

    lines = "".join(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(xy(f, v) for f, v in p)}"/>'
                    for p, c in zip(points, colours))
    return (f'<h3>{html.escape(title)}</h3><svg width="{width}" height="{height}" style="background:#fafafa">'
            f'<text x="4" y="16" font-size="11">{hi:.2f}</text><text x="4" y="{height - 28}" font-size="11">{lo:.2f}'
            f'</text><text x="50" y="{height - 6}" font-size="11">frame {f0}</text><text x="{width - 80}" '
            f'y="{height - 6}" font-size="11">frame {f1}</text>{lines}</svg>')
