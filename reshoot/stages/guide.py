"""The guide stage: the missing angle rendered from the splat scene, frame by frame, with how far to trust it.

Reads ``WS/reconstruct/scene.pt`` and ``WS/path/path.json``; writes ``WS/guide/``::

    rgb/NNNNNN.png          the new camera's view at each output frame of the path
    alpha/NNNNNN.png        coverage: how much of each pixel the scene's Gaussians fill (white: all)
    path.json               the camera path these frames were rendered from (refine and export read this copy, so a
                            path changed since cannot be paired with frames of the old one)
    depth/NNNNNN.npy        expected depth along the optical axis, float32 (0 where nothing is drawn)
    confidence/NNNNNN.png   how well the real cameras saw what each pixel shows (white: well; see below)
    frames.json             per frame: footage timeline frame, shot time, coverage, mean confidence
    contact_sheet.png       a few frames: guide, coverage, depth, confidence

**Confidence** of a pixel is ``alpha x seen x angle``, where the pixel's surface point (from its depth) is
projected into every real camera at the same instant (posed as the scene trained from them: refined, where
reconstruct refined the poses): ``seen = min(1, n / 2)`` for the ``n`` cameras that had
it in frame and in view (not hidden behind something nearer in their own rendered depth), and
``angle = max(0, 1 - a / 90 deg)`` for the smallest angle ``a`` between the new camera's ray to the point and a
seeing camera's. A pixel two real cameras saw from nearly the same direction scores near 1; one no camera saw
scores 0 however solid the render looks there.

Before rendering every frame, the path is checked (``CameraPath.check``) and three frames are rendered
small: a path that looks at nothing stops with an error instead of minutes of empty frames.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reshoot.atomic import ANOTHER_WORKSPACE, atomic_write_bytes, atomic_write_json, naming_full_disk
from reshoot.camera_path import CameraPath, Timeline
from reshoot.cameras import Cameras
from reshoot.progress import track
from reshoot.splat.render import render
from reshoot.splat.scene import DynamicScene
from reshoot.stages.reconstruct import choose_device, load_scene, to_uint8, trained_rig
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 3  # 3: the confidence map sees the real cameras at the poses the scene trained from


class GuideError(RuntimeError):
    """The guide frames cannot be rendered as asked; the message says why and what to do."""


@dataclass(frozen=True)
class GuideConfig:
    """How the guide frames are rendered."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when there is a GPU (gsplat's kernels), else the CPU rasterizer."""
    confidence: bool = True
    """Compute the confidence map (renders each real camera's depth at every frame: about (cameras + 1) x the time)."""
    confidence_downscale: int = 2
    """Render the real cameras' depth for the confidence map at 1/this of their size."""
    min_coverage: float = 0.05
    """Stop before rendering if the path's first, middle and last frames cover less than this fraction of the
    picture on average (the path looks at nothing)."""
    warn_coverage: float = 0.5
    """Warn about frames whose coverage is below this."""

    def __post_init__(self) -> None:
        if self.confidence_downscale < 1:
            raise ValueError(f"--confidence-downscale {self.confidence_downscale}: give a whole number >= 1 (1: the "
                             "real cameras' full size)")
        if not 0 <= self.min_coverage <= self.warn_coverage <= 1:
            raise ValueError(f"--min-coverage {self.min_coverage:g} and --warn-coverage {self.warn_coverage:g}: give "
                             "fractions of the picture with 0 <= --min-coverage <= --warn-coverage <= 1")


@dataclass(frozen=True)
class GuideFrame:
    """One rendered frame of the path."""

    rgb: np.ndarray  # [H, W, 3] float32 in [0, 1]
    alpha: np.ndarray  # [H, W] float32 coverage
    depth: np.ndarray  # [H, W] float32, 0 where nothing is drawn
    confidence: np.ndarray | None  # [H, W] float32 in [0, 1]


@dataclass(frozen=True)
class RealCameras:
    """The set cameras at every instant of the timeline (pinhole, as the scene renders them)."""

    cameras: Cameras  # C cameras
    world_to_camera: np.ndarray  # [C, T, 4, 4]
    valid: np.ndarray  # [C, T] bool

    def at(self, camera_idx: int, timeline_frame: int, downscale: int = 1) -> Cameras | None:
        """Camera ``camera_idx`` posed at timeline frame ``timeline_frame`` (None if it has no pose then)."""
        if not self.valid[camera_idx, timeline_frame]:
            return None
        one = self.cameras.select([self.cameras.camera_ids[camera_idx]])
        one = replace(one, world_to_camera=self.world_to_camera[camera_idx, timeline_frame][None])
        return one if downscale == 1 else one.resized(np.maximum(1, one.image_size // downscale))


def run_guide(workspace: Workspace, config: GuideConfig = GuideConfig(), force: bool = False) -> StageResult:
    """Render the path's guide frames into ``WS/guide`` (see the module docstring)."""
    return workspace.run_stage("guide", config, lambda ctx: _guide(ctx, config), upstream=["reconstruct", "path"],
                               force=force, version=_VERSION)


def _guide(ctx: StageContext, config: GuideConfig) -> dict[str, Any]:
    root = ctx.workspace.root
    device = choose_device(config.device)
    with ctx.timer("load"):
        path = CameraPath.load(ctx.workspace.stage_dir("path") / "path.json")
        timeline = Timeline.from_workspace(root)
        scene, appearance = load_scene(ctx.workspace.stage_dir("reconstruct") / "scene.pt", device=str(device))
        cameras, poses, valid = trained_rig(root, list(appearance))  # the cameras the scene learnt from, as it did
        real = RealCameras(cameras, poses, valid)
    warnings = list(path.check(timeline))
    with ctx.timer("preflight"):
        preflight = check_aim(scene, path, timeline, config.min_coverage)
    out = ctx.out_dir
    for folder in ("rgb", "alpha", "depth") + (("confidence",) if config.confidence else ()):
        (out / folder).mkdir()
    frames, sheet = [], {}
    picks = set(np.linspace(0, len(path) - 1, min(len(path), 5)).round().astype(int).tolist())
    start = time.perf_counter()
    with ctx.timer("render"):
        for i in track(range(len(path)), f"guide frames of '{path.name}'"):
            frame = render_guide(scene, path, i, timeline, real if config.confidence else None,
                                 config.confidence_downscale)
            _write_frame(out, i, frame, ctx.workspace.stage_dir("guide"))
            frames.append(_frame_figures(path, i, timeline, frame))
            if i in picks:
                sheet[f"frame {i}"] = _sheet_cells(frame, path.timeline_frames[i])
    seconds = time.perf_counter() - start
    low = [f["frame"] for f in frames if f["coverage"] < config.warn_coverage]
    if low:
        warnings.append(f"{len(low)} of {len(frames)} frames of path '{path.name}' cover less than "
                        f"{config.warn_coverage:.0%} of the picture (frames {_ranges(low)}); the refiner will have to "
                        "invent the rest: see guide/contact_sheet.png")
    save_png(contact_sheet(sheet, title=f"guide frames of '{path.name}': render, coverage, depth, confidence"),
             out / "contact_sheet.png")
    atomic_write_json(out / "frames.json", {"path": path.name, "frames": frames})
    path.save(out / "path.json")
    coverage = [f["coverage"] for f in frames]
    confidence = [f["mean_confidence"] for f in frames if f["mean_confidence"] is not None]
    return {"path": path.name, "frames": len(frames), "image_size": list(path.image_size), "device": str(device),
            "render_fps": len(frames) / seconds, "mean_coverage": float(np.mean(coverage)),
            "min_coverage": float(np.min(coverage)),
            "mean_confidence": float(np.mean(confidence)) if confidence else None,
            "preflight_coverage": preflight, "warnings": warnings}


@torch.no_grad()
def render_guide(scene: DynamicScene, path: CameraPath, frame_idx: int, timeline: Timeline,
                 real: RealCameras | None = None, confidence_downscale: int = 2) -> GuideFrame:
    """Render output frame ``frame_idx`` of ``path``: rgb, alpha, depth, and with ``real`` the confidence map."""
    timeline_frame = float(path.timeline_frames[frame_idx])
    t = float(timeline.shot_time(timeline_frame))
    camera = path.camera(frame_idx)
    out = render(scene, camera, t)
    alpha = out.alpha.clamp(0, 1).cpu().numpy().astype(np.float32)
    depth = torch.where(out.alpha > 1e-3, out.depth, 0).cpu().numpy().astype(np.float32)
    confidence = None
    if real is not None:
        instant = int(np.clip(round(timeline_frame), 0, real.valid.shape[1] - 1))
        confidence = confidence_map(scene, camera, alpha, depth, real, instant, t, confidence_downscale)
    return GuideFrame(out.rgb.clamp(0, 1).cpu().numpy().astype(np.float32), alpha, depth, confidence)


@torch.no_grad()
def confidence_map(scene: DynamicScene, camera: Cameras, alpha: np.ndarray, depth: np.ndarray, real: RealCameras,
                   instant: int, t: float, downscale: int = 2) -> np.ndarray:
    """How well the real cameras saw what each pixel of ``camera`` shows (see the module docstring).  # [H, W]"""
    points = unproject(camera, depth)  # [H, W, 3] world points
    drawn = depth > 0
    eye = camera.centers[0]
    seen = np.zeros(depth.shape, np.int32)
    best = np.full(depth.shape, np.pi)
    for c in range(len(real.cameras)):
        other = real.at(c, instant, downscale)
        if other is None:
            continue
        own_depth = render(scene, other, t).depth.cpu().numpy()
        visible = drawn & _in_view(other, points, own_depth)
        to_new, to_other = eye - points, other.centers[0] - points
        cos = np.sum(to_new * to_other, -1) / (np.linalg.norm(to_new, axis=-1) * np.linalg.norm(to_other, axis=-1)
                                               + 1e-12)
        angle = np.arccos(np.clip(cos, -1, 1))
        seen += visible
        best = np.where(visible, np.minimum(best, angle), best)
    angle_term = np.clip(1 - best / (np.pi / 2), 0, 1)
    return (np.clip(alpha, 0, 1) * np.minimum(1, seen / 2) * angle_term).astype(np.float32)


def unproject(camera: Cameras, depth: np.ndarray) -> np.ndarray:
    """World points of every pixel centre of ``camera`` (one) at ``depth`` along its optical axis.  # [H, W, 3]"""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(camera.K[0]).T  # z = 1
    in_camera = rays * depth[..., None]
    camera_to_world = np.linalg.inv(camera.world_to_camera[0])
    return in_camera @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]


def _in_view(camera: Cameras, points: np.ndarray, own_depth: np.ndarray, tolerance: float = 0.03) -> np.ndarray:
    """Which world ``points [H, W, 3]`` the (one) camera has in frame, where its own render shows something, and not
    hidden behind a nearer surface of that rendered depth ``[h, w]`` (within ``tolerance`` of the depth)."""
    pose = camera.world_to_camera[0]
    local = points @ pose[:3, :3].T + pose[:3, 3]
    z = local[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = local @ camera.K[0].T
        u, v = pixels[..., 0] / z, pixels[..., 1] / z
    h, w = own_depth.shape
    inside = (z > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    col = np.clip(np.nan_to_num(u), 0, w - 1).astype(int)
    row = np.clip(np.nan_to_num(v), 0, h - 1).astype(int)
    surface = own_depth[row, col]
    return inside & (surface > 0) & (z <= surface * (1 + tolerance))


@torch.no_grad()
def check_aim(scene: DynamicScene, path: CameraPath, timeline: Timeline, min_coverage: float) -> list[float]:
    """Coverage of the path's first, middle and last frames rendered small; GuideError if it looks at nothing."""
    picks = sorted({0, len(path) // 2, len(path) - 1})
    coverage = []
    for i in picks:
        camera = path.camera(i)
        small = camera.resized(np.maximum(16, camera.image_size // 4))
        out = render(scene, small, float(timeline.shot_time(float(path.timeline_frames[i]))))
        coverage.append(float(out.alpha.clamp(0, 1).mean()))
    if float(np.mean(coverage)) < min_coverage:
        shown = ", ".join(f"frame {i}: {c:.1%}" for i, c in zip(picks, coverage))
        raise GuideError(f"path '{path.name}' looks at nothing: the scene covers {shown} of the picture (less than "
                         f"{min_coverage:.0%}). Aim it at the set: see path/plan.png, and check its target, height "
                         "and heading (or lower --min-coverage if this is meant).")
    return coverage


def load_shot_frames(workspace_root: Path, stage: str = "guide") -> tuple[CameraPath, list[Path]]:
    """The path the guide frames were rendered from, and the RGB files of ``stage``'s frames (``guide`` or
    ``refine``), in order: what the refine and export stages read."""
    root = Path(workspace_root)
    for needed in ("guide", stage):
        if not (root / needed / "manifest.json").is_file():
            raise FileNotFoundError(f"{root / needed} is missing: run `reshoot {needed} --workspace {root}` first")
    path = CameraPath.load(root / "guide" / "path.json")
    files = [root / stage / "rgb" / f"{i:06d}.png" for i in range(len(path))]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(files)} frames are missing from {root / stage / 'rgb'} "
                                f"(first: {missing[0].name}); re-run `reshoot {stage} --workspace {root} --force`")
    return path, files


def _write_frame(out: Path, i: int, frame: GuideFrame, stage_dir: Path) -> None:
    """Write frame ``i``'s files into ``out`` (the stage's folder while it runs, moved to ``stage_dir`` at the end); a
    full disk is an OSError naming ``stage_dir`` and the frame."""
    name = f"{i:06d}"
    with naming_full_disk(stage_dir, f"guide frame {i}", ANOTHER_WORKSPACE):
        save_png(to_uint8(torch.from_numpy(frame.rgb)), out / "rgb" / f"{name}.png")
        save_png(_gray(frame.alpha), out / "alpha" / f"{name}.png")
        if frame.confidence is not None:
            save_png(_gray(frame.confidence), out / "confidence" / f"{name}.png")
        buffer = io.BytesIO()
        np.save(buffer, frame.depth)
        atomic_write_bytes(out / "depth" / f"{name}.npy", buffer.getvalue())


def _frame_figures(path: CameraPath, i: int, timeline: Timeline, frame: GuideFrame) -> dict[str, Any]:
    timeline_frame = float(path.timeline_frames[i])
    return {"frame": i, "timeline_frame": timeline_frame, "shot_time": float(timeline.shot_time(timeline_frame)),
            "coverage": float(frame.alpha.mean()),
            "mean_confidence": None if frame.confidence is None else float(frame.confidence.mean())}


def _sheet_cells(frame: GuideFrame, timeline_frame: float) -> list[tuple[str, np.ndarray]]:
    cells = [(f"guide (footage f{timeline_frame:g})", to_uint8(torch.from_numpy(frame.rgb))),
             (f"coverage {frame.alpha.mean():.0%}", np.repeat(_gray(frame.alpha)[..., None], 3, -1)),
             ("depth", depth_colours(frame.depth))]
    if frame.confidence is not None:
        cells.append((f"confidence {frame.confidence.mean():.2f}", np.repeat(_gray(frame.confidence)[..., None], 3, -1)))
    return cells


def depth_colours(depth: np.ndarray) -> np.ndarray:
    """Depth as a picture: near bright, far dark, nothing black.  # [H, W, 3] uint8"""
    drawn = depth > 0
    if not drawn.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    near, far = np.percentile(depth[drawn], [2, 98])
    scaled = np.clip((far - depth) / max(far - near, 1e-9), 0, 1) * 0.85 + 0.15
    gray = np.where(drawn, scaled, 0)
    return (np.stack([gray, gray * 0.85, gray * 0.6], -1) * 255).astype(np.uint8)


def _gray(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)


def _ranges(frames: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    parts, start = [], frames[0]
    for a, b in zip(frames, frames[1:] + [None]):
        if b != a + 1:
            parts.append(f"{start}-{a}" if a != start else f"{a}")
            start = b
    return ", ".join(parts)
