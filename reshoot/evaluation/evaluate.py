"""Validation: reshoot a camera that exists, and compare with what it really filmed.

``reshoot eval --workspace WS --camera CAM`` renders the angle of a camera whose true footage is known, through the
same guide and refine code as a real reshoot, and scores both against the truth, frame by frame: PSNR and SSIM over
the whole frame, the set and the actor separately, and flicker (the frame-to-frame change that the truth does not
have); then gives each shot a verdict, usable / needs fixes / not usable, by the PSNR thresholds
:data:`~reshoot.evaluation.report.USABLE_MIN_PSNR_DB` and :data:`~reshoot.evaluation.report.NOT_USABLE_BELOW_PSNR_DB`
(the report's pictures and HTML are :mod:`reshoot.evaluation.report`'s). Two kinds of truth:

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
a frame (:mod:`reshoot.viewer.report`).
"""

from __future__ import annotations

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
from reshoot.evaluation.report import (NOT_USABLE_BELOW_PSNR_DB, USABLE_MIN_PSNR_DB, report_html, shot_verdict,
                                       write_error_heatmap, write_pictures)
from reshoot.evaluation.scores import mean_region_scores
from reshoot.metrics import colour_matched, flicker, psnr, region_scores
from reshoot.progress import progress_stage, track
from reshoot.refine.base import RefineInputs
from reshoot.splat.data import load_shot_footage, registered_rig
from reshoot.stages.guide import RealCameras, render_guide
from reshoot.stages.reconstruct import choose_device, load_scene, trained_rig
from reshoot.stages.refine import RefineConfig, make_refiner
from reshoot.workspace import StageError, Workspace

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
    cameras, poses, valid = trained_rig(root, list(appearance))
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
    scene with the ``reshot`` camera (:mod:`reshoot.viewer.report`)."""
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
    write_pictures(out, guide, refined, truth, camera)
    write_error_heatmap(out, {"guide": guide, "refined": refined}, truth, actor, camera)
    atomic_write_json(out / "metrics.json", metrics)
    from reshoot.viewer.report import scene_3d_section

    scene_3d = scene_3d_section(Path(workspace_root), out, camera, reshot)
    atomic_write_text(out / "report.html", report_html(metrics, camera, Path(workspace_root), scene_3d))
    return metrics


def score_frames(shot: np.ndarray, truth: dict[int, np.ndarray],
                 actor: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
    """PSNR/SSIM per frame (those with a truth) and overall, over the whole frame, the set and the actor (frames
    with an ``actor`` mask, ``[H, W]`` bool; see :func:`reshoot.metrics.region_scores`), and flicker over
    consecutive frames with a truth. A region's overall figure is the mean over the frames that have it.
    ``psnr_colour_matched_db``: the whole frame's PSNR after one affine colour map for the whole shot
    (:func:`reshoot.metrics.colour_matched`): how far the shot is off when the camera's own white balance and exposure,
    which no other camera can tell, are forgiven (a real camera reshot differs in them from the scene's colours)."""
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
    frames = list(truth)
    matched = colour_matched([torch.from_numpy(np.ascontiguousarray(shot[i], dtype=np.float32)) for i in frames],
                             [torch.from_numpy(truth[i].astype(np.float32) / 255) for i in frames]) if frames else []
    for row, image, i in zip(per_frame, matched, frames):
        row["psnr_colour_matched_db"] = psnr(image, torch.from_numpy(truth[i].astype(np.float32) / 255))
    colour = float(np.mean([row["psnr_colour_matched_db"] for row in per_frame])) if per_frame else None
    return {**mean_region_scores(per_frame), "psnr_colour_matched_db": colour,
            "flicker": float(np.mean(flickers)) if flickers else None, "per_frame": per_frame}


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
        from reshoot.evaluation.scores import localised_sample_view, sample_truth_source
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
    from reshoot.evaluation.scores import align_similarity

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

