"""The register stage: the set cameras in one consistent 3D frame, with a sparse point cloud (COLMAP).

Reads ``WS/ingest`` and writes ``WS/register/``::

    images/<camera>/...    what COLMAP saw: a clean plate per locked-off camera (the per-pixel median of
                           frames sampled across the shot: the moving actor disappears), or the sampled
                           frames of a moving camera; survey stills in images/survey/
    masks/<camera>/...     where the actor moved (black: no features), for COLMAP's mask_path
    database.db            COLMAP's features and matches
    sparse/0/              the COLMAP model, in COLMAP's own world
    cameras.json           reshoot's convention in the normalised world: every camera, every frame's pose
    transforms.json        nerfstudio: camera-to-world (OpenGL), per-frame intrinsics, sparse_points.ply
    sparse_points.ply      the sparse points, normalised world
    preview.png            the cameras and points from above

**The normalised world**: +Z up (the cameras' mean up direction), centred on the sparse points' median,
scaled so the farthest camera is 1 unit away. ``colmap_to_world`` (a 4x4 similarity) in cameras.json and
the manifest maps COLMAP's world to it.

Dynamic content: locked-off cameras register from clean plates, and pixels that changed across the
sampled frames are masked out of feature extraction (``dynamic="plate"``); ``"mask"`` uses one frame
with that mask, ``"none"`` one raw frame, relying on RANSAC alone (for comparison). ``"instants"`` also
uses what moves, matched between cameras at the same instant (``reshoot.instants``), written under
``instants/``.

Known calibration (``calibration="triangulate"``): the poses and lenses are kept, features are matched along
the known epipolar lines and checked (``reshoot.known_poses``) instead of COLMAP estimating each pair's
geometry, and COLMAP only triangulates; the manifest's ``epipolar_matches`` counts them per camera pair.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reshoot._deps import require
from reshoot.atomic import atomic_write_json
from reshoot.cameras import Cameras
from reshoot.footage import IMAGE_SUFFIXES, read_image
from reshoot.instants import INSTANTS_DIR, pool_instants
from reshoot.known_poses import match_with_known_poses
from reshoot.progress import StepProgress
from reshoot.splat.pointcloud import write_points_ply
from reshoot.viz import save_png, top_view
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 3  # 3: --calibration triangulate matches along the known epipolar lines (reshoot.known_poses)
_SURVEY = "survey"
_MOTION_THRESHOLD = 24  # a pixel differing from the plate by more than this (0-255, any channel) moved
_FEW_IMAGES = 10  # fewer registration images than this: COLMAP's large-collection defaults are relaxed
_UPSAMPLE_WIDTHS_PX = (240, 960)  # plates this wide are doubled for feature extraction (see _prepare_images)


class RegistrationError(RuntimeError):
    """Cameras could not be registered; the message names them and says what to try."""


@dataclass(frozen=True)
class RegisterConfig:
    """How the cameras are registered."""

    camera_motion: Literal["locked", "moving"] = "locked"
    """locked: each camera has one pose for the whole shot (set cameras); moving: one pose per frame (dolly,
    handheld), matched sequentially."""
    dynamic: Literal["plate", "mask", "none", "instants"] = "plate"
    """Locked-off cameras: register from a clean plate with the moving actor masked (plate), one frame with the
    actor masked (mask), or one raw frame (none: RANSAC alone rejects the actor). instants: the plate, plus what
    moved matched between cameras at the same instant of the plate frames (needs synced footage); for rigs that
    share little static background, e.g. a calibration board waved in a plain room."""
    plate_frames: int = 9
    """Frames sampled across the shot for each locked-off camera's clean plate and motion mask."""
    frame_step: int = 1
    """Moving cameras: register every frame_step-th frame."""
    survey: Path | None = None
    """A folder of set survey stills (photos of the set from many places) that bridge cameras far apart."""
    calibration: Literal["auto", "solve", "prior", "triangulate"] = "auto"
    """solve: estimate everything; prior: start from the imported intrinsics, solve the poses; triangulate: keep
    the imported poses and intrinsics, only triangulate points; auto: triangulate when ingest imported a
    calibration, else solve."""
    camera_model: Literal["SIMPLE_RADIAL", "OPENCV"] = "SIMPLE_RADIAL"
    """Lens model estimated per physical camera (SIMPLE_RADIAL: f, cx, cy, k; OPENCV: fx, fy, cx, cy, k1, k2, p1, p2).
    SIMPLE_RADIAL is steadier when a camera has one image or few small ones (on the sample: 0.14-0.20 deg worst
    rotation error over runs, OPENCV 0.15-0.22); choose OPENCV for strong distortion seen in many images."""
    refine_principal_point: bool = False
    """Refine each camera's principal point (COLMAP keeps it at the image centre by default). Worth it for many
    high-resolution photos of one camera: on the Strecha fountain it took the median rotation error from 0.20 to
    0.05 deg; on a few small frames it is ill-posed (a 10-frame 320x180 dolly got worse, 0.1 -> 3.5 deg)."""
    mapper: Literal["incremental", "global"] = "incremental"
    """COLMAP's incremental mapper, or its global mapper (GLOMAP)."""
    matcher: Literal["auto", "exhaustive", "sequential"] = "auto"
    """auto: exhaustive up to 150 images, else sequential (neighbouring frames; no loop detection here)."""
    init_min_tri_angle_deg: float = 16.0
    """Solve: the triangulation angle the first two views need (COLMAP's default 16). Lower it (e.g. 4) for a rig
    whose cameras are close together compared with the distance to the scene."""
    max_image_size: int = 3200
    """Images larger than this (longest side, pixels) are downscaled for feature extraction."""
    allow_partial: bool = False
    """Go on when some cameras do not register (they are named); otherwise that is an error."""
    seed: int = 0
    """Seed for COLMAP's random choices, so runs repeat."""

    def __post_init__(self) -> None:
        if self.dynamic == "instants" and self.camera_motion != "locked":
            raise ValueError("RegisterConfig: dynamic='instants' is for locked-off cameras (camera_motion='locked')")
        if self.plate_frames < 1 or self.frame_step < 1 or self.max_image_size < 32 or not self.init_min_tri_angle_deg > 0:
            raise ValueError(
                f"RegisterConfig: plate_frames and frame_step must be >= 1, max_image_size >= 32 and "
                f"init_min_tri_angle_deg > 0; got {self.plate_frames}, {self.frame_step}, {self.max_image_size}, "
                f"{self.init_min_tri_angle_deg}")


def run_register(workspace: Workspace, config: RegisterConfig = RegisterConfig(), force: bool = False) -> StageResult:
    """Register the ingested cameras into ``WS/register`` (see the module docstring)."""
    inputs = [config.survey] if config.survey else []
    return workspace.run_stage("register", config, lambda ctx: _register(ctx, config), inputs=inputs,
                               upstream=["ingest"], force=force, version=_VERSION)


def _register(ctx: StageContext, config: RegisterConfig) -> dict[str, Any]:
    pycolmap = require("pycolmap", "pip install pycolmap")
    pycolmap.logging.minloglevel = 2
    ingest = ctx.workspace.stage_dir("ingest")
    footage = json.loads((ingest / "footage.json").read_text())
    known = _known_calibration(ingest)
    mode = config.calibration if config.calibration != "auto" else ("triangulate" if known else "solve")
    if mode in ("prior", "triangulate") and known is None:
        raise RegistrationError(f"--calibration {mode} needs a calibration imported by ingest (ingest --calibration "
                                "FILE); this workspace's ingest has none")
    # with known intrinsics, every camera is extracted with the model they need: COLMAP cannot change it later
    model = config.camera_model if mode == "solve" else ("FULL_OPENCV" if known.distortion[:, 4].any() else "OPENCV")
    with StepProgress("registering: images, features, matching, mapping, outputs", total=5) as phases:
        with ctx.timer("images"):
            images = _prepare_images(ctx.out_dir, ingest, footage, config, upsample_small=mode == "solve")
        phases.update(1, images=len(images))
        database, image_dir = ctx.out_dir / "database.db", ctx.out_dir / "images"
        with ctx.timer("features"):
            _extract(pycolmap, database, image_dir, ctx.out_dir / "masks", config.max_image_size, model)
        phases.update(1)
        instants = epipolar = None
        with ctx.timer("matching"):
            if mode == "triangulate":  # the geometry is known: match along it instead of estimating it
                known = _known_at_image_size(known, images)
                epipolar = _match_known(pycolmap, ctx.out_dir, database, known, config, model)
            else:
                _match(pycolmap, database, len(images), config)
                if (ctx.out_dir / INSTANTS_DIR).is_dir():
                    instants = pool_instants(pycolmap, database, ctx.out_dir / INSTANTS_DIR, model)
        phases.update(1)
        with ctx.timer("mapping"):
            if mode == "triangulate":
                rec = _triangulate(pycolmap, database, image_dir, ctx.out_dir / "sparse" / "0", known, model, config)
            else:
                constant = _set_prior_intrinsics(pycolmap, database, known, model) if mode == "prior" else set()
                rec = _map(pycolmap, database, image_dir, ctx.out_dir / "sparse", config, constant, len(images))
        phases.update(1, points=int(rec.num_points3D()))
        per_camera = _check_registered(pycolmap, database, rec, images, config)
        with ctx.timer("outputs"):
            normalise = _normalisation(rec, images)
            summary = _write_outputs(ctx.out_dir, rec, images, footage, normalise, config)
        phases.update(1)
    shutil.rmtree(ctx.out_dir / "sparse" / "tmp", ignore_errors=True)
    return {**summary, "calibration": mode, "cameras": per_camera, "instant_matches": instants,
            "epipolar_matches": epipolar,
            "mean_reprojection_error_px": float(rec.compute_mean_reprojection_error()),
            "mean_track_length": float(rec.compute_mean_track_length()), "points": int(rec.num_points3D())}


# ---- images COLMAP sees -------------------------------------------------------------------------------------

def _prepare_images(out: Path, ingest: Path, footage: dict, config: RegisterConfig,
                    upsample_small: bool) -> dict[str, dict]:
    """Write the registration images (and masks); returns image name -> {camera, frames, role, scale}.

    Plates 240 to 960 pixels wide are doubled for feature extraction when intrinsics are solved, and the
    intrinsics mapped back to the frames' pixels afterwards. Measured on the sample: at 320x180 the worst
    rotation error went from 0.22-0.25 deg to 0.14-0.20 deg over runs; at 160x90 doubling made one camera
    worse (centre error 4.6 % -> 9.6 % of the set), so smaller plates are left as they are.
    """
    images: dict[str, dict] = {}
    layout = footage["frames"]["layout"]
    count = footage["timeline"]["frame_count"]
    for cam in footage["cameras"]:
        camera_id = cam["camera_id"]
        frame_path = lambda k: ingest / _frame_file(layout, camera_id, k)
        available = [k for k in range(count) if frame_path(k).is_file()]
        if not available:
            raise RegistrationError(f"camera {camera_id!r} has no extracted frames in {ingest / 'frames'}; re-run ingest")
        if config.camera_motion == "moving":
            for k in available[::config.frame_step]:
                name = f"{camera_id}/{k:06d}.png"
                save_png(read_image(frame_path(k)), out / "images" / name)
                images[name] = {"camera_id": camera_id, "frames": [k], "role": "set"}
            continue
        picks = sorted({available[int(i)] for i in np.linspace(0, len(available) - 1, max(1, config.plate_frames))})
        frames = np.stack([read_image(frame_path(k)) for k in picks])
        name = f"{camera_id}/plate.png"
        image, moved_each = _plate(frames, config.dynamic)
        moved = moved_each.any(axis=0) if moved_each is not None else None
        low, high = _UPSAMPLE_WIDTHS_PX
        scale = 2 if upsample_small and low <= image.shape[1] < high else 1
        save_png(_upsampled(image, scale), out / "images" / name)
        if moved is not None:
            save_png(_upsampled(np.where(moved, 0, 255).astype(np.uint8), scale), out / "masks" / f"{name}.png")
        if config.dynamic == "instants" and moved_each is not None:
            for k, frame, mask in zip(picks, frames, moved_each):
                instant = out / INSTANTS_DIR / "images" / camera_id / f"{k:06d}.png"
                save_png(_upsampled(frame, scale), instant)
                save_png(_upsampled(np.where(mask, 255, 0).astype(np.uint8), scale),
                         out / INSTANTS_DIR / "masks" / camera_id / f"{k:06d}.png.png")
        images[name] = {"camera_id": camera_id, "frames": available, "role": "set", "scale": scale,
                        "moving_fraction": float(moved.mean()) if moved is not None else 0.0}
    if config.survey:
        stills = sorted(p for p in Path(config.survey).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not stills:
            raise RegistrationError(f"--survey {config.survey} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for path in stills:
            name = f"{_SURVEY}/{path.stem}.png"
            save_png(read_image(path), out / "images" / name)
            images[name] = {"camera_id": f"{_SURVEY}/{path.stem}", "frames": [], "role": _SURVEY}
    if (out / "masks").is_dir():  # with a mask folder COLMAP skips any image without a mask: give them all one
        for name in images:
            mask = out / "masks" / f"{name}.png"
            if not mask.is_file():
                height, width = read_image(out / "images" / name).shape[:2]
                save_png(np.full((height, width), 255, np.uint8), mask)
    return images


def _frame_file(layout: str, camera_id: str, frame_idx: int) -> str:
    """An ingested frame's path inside WS/ingest, from footage.json's layout ``frames/<camera>/<frame:06d>.png``."""
    return layout.replace("<camera>", camera_id).replace("<frame:06d>", f"{frame_idx:06d}")


def _upsampled(image: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return image
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    return cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale), interpolation=cv2.INTER_CUBIC)


def _plate(frames: np.ndarray, dynamic: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The registration image of a locked-off camera and where each frame differs from the clean plate.

    Returns the image [H, W, 3] and the motion masks [F, H, W] bool (None for ``dynamic="none"``).
    """
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    plate = np.median(frames, axis=0).astype(np.uint8)
    if dynamic == "none" or len(frames) < 3:
        return frames[len(frames) // 2], None
    moved = np.abs(frames.astype(np.int16) - plate.astype(np.int16)).max(axis=3) > _MOTION_THRESHOLD
    kernel = np.ones((7, 7), np.uint8)
    moved = np.stack([cv2.dilate(m.astype(np.uint8), kernel).astype(bool) for m in moved])
    return (frames[len(frames) // 2] if dynamic == "mask" else plate), moved


# ---- COLMAP -------------------------------------------------------------------------------------------------

def _extract(pycolmap, database: Path, image_dir: Path, mask_dir: Path, max_image_size: int, model: str) -> None:
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = model
    if mask_dir.is_dir():
        reader.mask_path = str(mask_dir)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    pycolmap.extract_features(database, image_dir, camera_mode=pycolmap.CameraMode.PER_FOLDER,
                              reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)


def _match(pycolmap, database: Path, image_count: int, config: RegisterConfig) -> None:
    sequential = config.matcher == "sequential" or (config.matcher == "auto" and image_count > 150)
    if sequential:
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap, pairing.quadratic_overlap, pairing.loop_detection = 10, True, False
        pycolmap.match_sequential(database, pairing_options=pairing, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)


def _map(pycolmap, database: Path, image_dir: Path, out: Path, config: RegisterConfig, constant: set[int],
         image_count: int):
    """COLMAP mapping; ``constant``: COLMAP camera ids whose intrinsics stay as given (imported priors)."""
    out.mkdir(parents=True, exist_ok=True)
    if config.mapper == "global":
        models = pycolmap.global_mapping(database, image_dir, out / "tmp")
    else:
        options = pycolmap.IncrementalPipelineOptions()
        options.random_seed = config.seed
        options.mapper.init_min_tri_angle = config.init_min_tri_angle_deg
        options.ba_refine_principal_point = config.refine_principal_point
        options.constant_cameras = constant  # imported lenses stay; survey stills' lens is still solved
        if image_count < _FEW_IMAGES:
            # COLMAP's defaults suit large photo collections: models under 10 images are dropped, and points seen
            # by only two images are not made, so a first pair of a 4-camera rig ends "bad" with no points.
            options.min_model_size = 2
            options.triangulation.ignore_two_view_tracks = False
        models = pycolmap.incremental_mapping(database, image_dir, out / "tmp", options)
    if not models:
        raise RegistrationError(_nothing_registered(pycolmap, database))
    best = max(models.values(), key=lambda r: r.num_reg_images())
    (out / "0").mkdir(parents=True, exist_ok=True)
    best.write(out / "0")
    return best


def _triangulate(pycolmap, database: Path, image_dir: Path, out: Path, known: Cameras, model: str,
                 config: RegisterConfig):
    """Keep the known poses and intrinsics; triangulate the matched features into points."""
    db = pycolmap.Database.open(database)
    try:
        rows = db.read_all_images()
    finally:
        db.close()
    rec = pycolmap.Reconstruction()
    added = set()
    for image in rows:
        camera_id = image.name.split("/")[0]
        if camera_id == _SURVEY or camera_id not in known.camera_ids:
            continue  # survey stills have no known pose
        idx = known.index(camera_id)
        if image.camera_id not in added:
            rec.add_camera_with_trivial_rig(known.colmap_camera(idx, image.camera_id, model))
            added.add(image.camera_id)
        pose = known.world_to_camera[idx]
        rec.add_image_with_trivial_frame(pycolmap.Image(name=image.name, camera_id=image.camera_id,
                                                        image_id=image.image_id),
                                         pycolmap.Rigid3d(pycolmap.Rotation3d(pose[:3, :3]), pose[:3, 3]))
    out.mkdir(parents=True, exist_ok=True)
    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = config.seed
    # COLMAP drops points seen by only two images by default; with a few fixed cameras those are most points
    options.triangulation.ignore_two_view_tracks = False
    rec = pycolmap.triangulate_points(rec, database, image_dir, out, options=options)
    if rec.num_points3D() == 0:
        inliers = _pair_inliers(pycolmap, database)
        best = max(inliers.values(), default=0)
        raise RegistrationError(
            f"triangulating with the imported calibration made no points: the cameras share at most {best} verified "
            "matches. Check the calibration is for this footage (same cameras, same resolution), or, if the cameras "
            "are far apart, use --calibration solve with set survey stills (--survey).")
    rec.write(out)
    return rec


def _known_at_image_size(known: Cameras, images: dict[str, dict]) -> Cameras:
    """The imported cameras at the size of their registration images (plates may be doubled)."""
    scales = {info["camera_id"]: info.get("scale", 1) for info in images.values() if info["role"] == "set"}
    return known.resized(known.image_size * np.array([scales.get(c, 1) for c in known.camera_ids])[:, None])


def _match_known(pycolmap, out: Path, database: Path, known: Cameras, config: RegisterConfig,
                 model: str) -> dict[str, dict[str, int]]:
    """Match the set cameras' images along the known epipolar lines (:mod:`reshoot.known_poses`); with
    ``--dynamic instants`` also what moved, within each instant."""
    instants = out / INSTANTS_DIR
    if instants.is_dir():
        (instants / "instants.db").unlink(missing_ok=True)
        _extract(pycolmap, instants / "instants.db", instants / "images", instants / "masks", config.max_image_size,
                 model)
    return match_with_known_poses(pycolmap, database, known, instants if instants.is_dir() else None)


def _set_prior_intrinsics(pycolmap, database: Path, known: Cameras, model: str) -> set[int]:
    """Put the imported intrinsics in the database; returns the COLMAP camera ids that got them."""
    db = pycolmap.Database.open(database)
    constant = set()
    try:
        for image in db.read_all_images():
            camera_id = image.name.split("/")[0]
            if camera_id in known.camera_ids:
                camera = known.colmap_camera(known.index(camera_id), image.camera_id, model)
                camera.has_prior_focal_length = True
                db.update_camera(camera)
                constant.add(image.camera_id)
    finally:
        db.close()
    return constant


def _known_calibration(ingest: Path) -> Cameras | None:
    path = ingest / "calibration" / "cameras.json"
    if not path.is_file():
        return None
    return Cameras.from_json(json.loads(path.read_text()))


# ---- what registered, and why not ---------------------------------------------------------------------------

def _check_registered(pycolmap, database: Path, rec, images: dict, config: RegisterConfig) -> dict[str, dict]:
    registered = {im.name for im in rec.images.values() if im.has_pose}
    per_camera: dict[str, dict] = {}
    for name, info in images.items():
        key = _SURVEY if info["role"] == _SURVEY else info["camera_id"]
        row = per_camera.setdefault(key, {"images": 0, "registered": 0})
        row["images"] += 1
        row["registered"] += name in registered
    failed = [c for c, row in per_camera.items() if c != _SURVEY and row["registered"] == 0]
    if len(failed) == len([c for c in per_camera if c != _SURVEY]):
        survey = per_camera.get(_SURVEY, {}).get("registered", 0)
        if survey:
            raise RegistrationError(f"no set camera registered, though {survey} survey stills did. "
                                    + _explain(pycolmap, database, failed))
        raise RegistrationError(_nothing_registered(pycolmap, database))
    if failed:
        message = _explain(pycolmap, database, failed)
        if not config.allow_partial:
            raise RegistrationError(message + " Re-run with --allow-partial to go on without them.")
        import warnings

        warnings.warn(message, stacklevel=2)
        for camera_id in failed:
            per_camera[camera_id]["failure"] = message
    return per_camera


def _pair_inliers(pycolmap, database: Path) -> dict[tuple[str, str], int]:
    """The most verified matches between any image of one camera (or the survey) and any of another's."""
    db = pycolmap.Database.open(database)
    try:
        names = {im.image_id: im.name.split("/")[0] for im in db.read_all_images()}
        pairs, geometries = db.read_two_view_geometries()
    finally:
        db.close()
    best: dict[tuple[str, str], int] = {}
    for pair, geometry in zip(pairs, geometries):
        i, j = pycolmap.pair_id_to_image_pair(pair) if isinstance(pair, int) else pair
        a, b = names[i], names[j]
        if a != b:
            for key in ((a, b), (b, a)):
                best[key] = max(best.get(key, 0), int(geometry.inlier_matches.shape[0]))
    return best


def _explain(pycolmap, database: Path, failed: list[str]) -> str:
    inliers = _pair_inliers(pycolmap, database)
    parts = []
    for camera_id in failed:
        mine = sorted(((n, other) for (me, other), n in inliers.items() if me == camera_id), reverse=True)
        seen = ", ".join(f"{n} with {other!r}" for n, other in mine[:3]) or "none with any other camera"
        parts.append(f"camera {camera_id!r} did not register: its most verified matches are {seen} (COLMAP needs "
                     "a few dozen, well spread)")
    return ("; ".join(parts) + ". Likely causes: it sees too little of what the others see, or too little texture. "
            "Add set survey stills (--survey) that see what it sees; if the whole rig is calibrated, import the "
            "calibration at ingest (--calibration) instead.")


def _nothing_registered(pycolmap, database: Path) -> str:
    inliers = _pair_inliers(pycolmap, database)
    best = sorted(((n, a, b) for (a, b), n in inliers.items() if a < b), reverse=True)[:3]
    seen = "; ".join(f"{a} and {b}: {n}" for n, a, b in best) or "no camera pair matched at all"
    return ("no camera registered: COLMAP found no pair of views to start from (most verified matches between "
            f"cameras: {seen}). Cameras far apart share too little: add set survey stills (--survey), or import a "
            "known calibration at ingest and use --calibration triangulate. If much of each view moves (actors, a "
            "calibration board) and the footage is synced, --dynamic instants matches what moves between cameras "
            "at the same instant.")


# ---- the normalised world and the outputs -------------------------------------------------------------------

def _normalisation(rec, images: dict) -> np.ndarray:
    """COLMAP world -> reshoot world: +Z up, centred on the points' median, farthest camera at 1.  # [4, 4]"""
    poses = [np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]]) for im in rec.images.values() if im.has_pose]
    ups = np.array([-p[:3, :3].T[:, 1] for p in poses])  # each camera's up (OpenCV y is down) in the world
    up = ups.mean(axis=0)
    up /= np.linalg.norm(up)
    R = _rotation_between(up, np.array([0.0, 0.0, 1.0]))
    points = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else np.zeros((1, 3))
    centre = np.median(points, axis=0)
    centres = np.array([-p[:3, :3].T @ p[:3, 3] for p in poses])
    scale = 1.0 / max(1e-9, np.linalg.norm(centres - centre, axis=1).max())
    S = np.eye(4)
    S[:3, :3] = scale * R
    S[:3, 3] = -scale * R @ centre
    return S


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b``.  # [3, 3]"""
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-12:  # opposite: turn half a circle about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def _write_outputs(out: Path, rec, images: dict, footage: dict, normalise: np.ndarray,
                   config: RegisterConfig) -> dict[str, Any]:
    colmap = Cameras.from_colmap(rec)  # one entry per registered image, ids = image names without extension
    scales = [images.get(f"{i}.png", {}).get("scale", 1) for i in colmap.camera_ids]
    colmap = colmap.resized(colmap.image_size // np.array(scales)[:, None])  # back to the frames' pixels
    world = colmap.transform_world(normalise)
    set_names = [n for n, info in images.items() if info["role"] == "set" and n.rsplit(".", 1)[0] in world.camera_ids]
    frame_entries, ids, file_paths, times = [], [], [], []
    poses: dict[str, list] = {}
    times_s = footage["timeline"]["times_s"]
    for name in set_names:
        info, idx = images[name], world.index(name.rsplit(".", 1)[0])
        for k in info["frames"]:
            poses.setdefault(info["camera_id"], []).append({"frame": k, "world_to_camera": world.world_to_camera[idx].tolist()})
            ids.append(f"{info['camera_id']}/{k:06d}")
            file_paths.append(f"../ingest/{_frame_file(footage['frames']['layout'], info['camera_id'], k)}")
            frame_entries.append(idx)
            times.append(times_s[k])
    per_frame = Cameras(tuple(ids), world.K[frame_entries], world.distortion[frame_entries],
                        world.world_to_camera[frame_entries], world.image_size[frame_entries])
    first = {}
    for name in set_names:  # one entry per physical camera: its intrinsics and its first registered pose
        first.setdefault(images[name]["camera_id"], world.index(name.rsplit(".", 1)[0]))
    rows = list(first.values())
    set_cameras = Cameras(tuple(first), world.K[rows], world.distortion[rows], world.world_to_camera[rows],
                          world.image_size[rows])
    points = np.array([p.xyz for p in rec.points3D.values()]).reshape(-1, 3)
    colors = np.array([p.color for p in rec.points3D.values()], dtype=np.uint8).reshape(-1, 3)
    points_world = points @ normalise[:3, :3].T + normalise[:3, 3]
    survey_ids = [i for i in world.camera_ids if i.startswith(_SURVEY + "/")]
    atomic_write_json(out / "cameras.json", {
        **set_cameras.to_json(), "camera_motion": config.camera_motion, "colmap_to_world": normalise.tolist(),
        "world": "normalised: +Z up, centred on the sparse points' median, farthest camera at 1 unit",
        "frame_poses": poses, "survey": world.select(survey_ids).to_json()["cameras"]})
    transforms = per_frame.to_nerfstudio(file_paths)
    for frame, t in zip(transforms["frames"], times):
        frame["reshoot_time_s"] = t
        frame["time"] = (t - times_s[0]) / max(1e-9, times_s[-1] - times_s[0])  # nerfstudio's dynamic datasets
    transforms["ply_file_path"] = "sparse_points.ply"
    atomic_write_json(out / "transforms.json", transforms)
    write_points_ply(out / "sparse_points.ply", points_world, colors)
    title = f"register: {len(first)} cameras + {len(survey_ids)} survey stills, {len(points)} points (from above)"
    save_png(top_view(set_cameras, points_world, secondary=world.select(survey_ids), title=title), out / "preview.png")
    return {"registered_cameras": list(first), "survey_registered": len(survey_ids), "frames_with_pose": len(ids),
            "colmap_to_world": normalise.tolist()}


def read_frame_poses(register_dir: Path) -> Cameras:
    """Every frame with a pose in a register stage's ``cameras.json``, with ids ``<camera>/<frame:06d>``."""
    data = json.loads((Path(register_dir) / "cameras.json").read_text())
    intrinsics = Cameras.from_json(data)
    ids, poses, rows = [], [], []
    for camera_id, frames in data["frame_poses"].items():
        for entry in frames:
            ids.append(f"{camera_id}/{entry['frame']:06d}")
            poses.append(entry["world_to_camera"])
            rows.append(intrinsics.index(camera_id))
    return Cameras(tuple(ids), intrinsics.K[rows], intrinsics.distortion[rows], np.array(poses).reshape(-1, 4, 4),
                   intrinsics.image_size[rows])


