"""The refine stage: the guide frames refined into a coherent shot.

Reads ``WS/guide`` (frames, coverage, depth, confidence), ``WS/path`` and the real cameras' ingested frames; writes
``WS/refine/``::

    rgb/NNNNNN.png      the refined shot (the export stage takes these when they exist)
    record.json         what the refiner did (settings, model, windows, seeds, seconds)
    comparison.png      guide and refined frames side by side at a few instants

Refiners: ``classical`` (the default: flow-guided filling, inpainting and flicker removal, no weights, CPU) and
the video-diffusion refiners ``wan-vace``, ``ltx`` and ``v2v`` (diffusers pipelines loaded from ``--model``, a local
folder of downloaded weights or a hub id). See docs/refine.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reshoot.atomic import atomic_write_json
from reshoot.camera_path import CameraPath
from reshoot.footage import read_image
from reshoot.metrics import flicker
from reshoot.progress import StepProgress
from reshoot.refine.base import RefineInputs, RefineResult, Refiner
from reshoot.refine.classical import ClassicalConfig, ClassicalRefiner
from reshoot.stages.guide import load_shot_frames
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageContext, StageResult, Workspace

_VERSION = 1
REFINER_NAMES = ("classical", "wan-vace", "ltx", "v2v")


class RefineError(RuntimeError):
    """The shot cannot be refined as asked; the message says why and what to do."""


@dataclass(frozen=True)
class RefineConfig:
    """How the guide frames are refined."""

    refiner: Literal["classical", "wan-vace", "ltx", "v2v"] = "classical"
    """classical: no weights, CPU, seconds; wan-vace / ltx / v2v: video diffusion (diffusers) with --model weights."""
    model: str | None = None
    """Diffusion refiners: a local folder of diffusers weights, or a hub id where the network allows (if not given: the
    refiner's usual model, e.g. Wan-AI/Wan2.1-VACE-1.3B-diffusers; see docs/refine.md)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Diffusion refiners: where the model runs (auto: CUDA when there is a GPU)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Diffusion refiners: weights' precision (auto: float32 on CPU, bfloat16 on CUDA)."""
    steps: int = 30
    """Diffusion refiners: denoising steps."""
    guidance_scale: float = 5.0
    """Diffusion refiners: classifier-free guidance (1.0 turns it off, halving the work)."""
    strength: float = 0.6
    """Diffusion refiners (ltx, v2v): how far the model may move away from the guide (towards 0: hardly at all; 1:
    freely)."""
    prompt: str = ""
    """Diffusion refiners: a description of the shot (optional)."""
    negative_prompt: str = ""
    """Diffusion refiners: what the shot should not look like (optional)."""
    confidence_threshold: float = 0.5
    """wan-vace: pixels whose confidence is below this are regenerated; those above it (plus a 0.1 feather) are kept
    exactly."""
    window: int = 81
    """Diffusion refiners: frames per temporal window (rounded to the model's k*4+1 or k*8+1 rule)."""
    overlap: int = 12
    """Diffusion refiners: frames shared by neighbouring windows, cross-faded."""
    max_side: int | None = 832
    """Diffusion refiners: guides larger than this are scaled down for the model (and back up afterwards)."""
    cpu_offload: bool = False
    """Diffusion refiners: keep the model in CPU memory and move each part to the GPU when used."""
    vae_tiling: bool = False
    """Diffusion refiners: decode in tiles (less GPU memory at large sizes)."""
    references: int = 2
    """Real cameras (nearest views first) whose frames at the same instants are given to the refiner."""
    start_image: Path | None = None
    """An image the shot must begin on exactly (the guide's size)."""
    end_image: Path | None = None
    """An image the shot must end on exactly (the guide's size)."""
    classical_window: int = 3
    """classical: neighbouring frames on each side used to fill holes and remove flicker."""
    smooth_window: int = 1
    """classical: neighbouring frames on each side in the median that removes flicker (0: none)."""
    seed: int = 0
    """Diffusion refiners: the base seed; each window gets its own seed from it, so a re-run on the same machine gives the same shot."""

    def __post_init__(self) -> None:
        if not 0 < self.strength <= 1 or not 0 <= self.confidence_threshold <= 1 or self.references < 0:
            raise ValueError(f"RefineConfig: strength must be in (0, 1], confidence_threshold in [0, 1] and "
                             f"references >= 0; "
                             f"got {self.strength}, {self.confidence_threshold}, {self.references}")


def run_refine(workspace: Workspace, config: RefineConfig = RefineConfig(), force: bool = False) -> StageResult:
    """Refine the guide frames into ``WS/refine`` (see the module docstring)."""
    inputs = [p for p in (config.start_image, config.end_image) if p]
    if config.model and (Path(config.model) / "model_index.json").is_file():  # else the refiner says what is wrong
        inputs.append(Path(config.model) / "model_index.json")
    return workspace.run_stage("refine", config, lambda ctx: _refine(ctx, config), upstream=["guide"],
                               inputs=inputs, force=force, version=_VERSION)


def make_refiner(config: RefineConfig) -> Refiner:
    """The refiner ``config.refiner`` names, set up from ``config``."""
    if config.refiner == "classical":
        return ClassicalRefiner(ClassicalConfig(window=config.classical_window,
                                                smooth_window=config.smooth_window))
    from reshoot.refine.diffusion import DIFFUSION_REFINERS, DiffusionConfig

    return DIFFUSION_REFINERS[config.refiner](DiffusionConfig(
        model=config.model, device=config.device, dtype=config.dtype, steps=config.steps,
        guidance_scale=config.guidance_scale, strength=config.strength, prompt=config.prompt,
        negative_prompt=config.negative_prompt, seed=config.seed, window=config.window, overlap=config.overlap,
        max_side=config.max_side, cpu_offload=config.cpu_offload, vae_tiling=config.vae_tiling,
        confidence_threshold=config.confidence_threshold, reference_count=config.references))


def _refine(ctx: StageContext, config: RefineConfig) -> dict[str, Any]:
    root = ctx.workspace.root
    with ctx.timer("load"):
        refiner = make_refiner(config)
        getattr(refiner, "pipeline", None)  # a diffusion model loads now: a bad --model fails before the frames load
        inputs, path = load_refine_inputs(root, config, with_references=config.refiner != "classical")
    start = time.perf_counter()
    with ctx.timer("refine"), StepProgress(f"refining '{path.name}' ({refiner.name})", total=1) as bar:
        def progress(done: int, total: int) -> None:
            if total != bar.total:
                bar.set_total(total)
            bar.update(done - bar.completed)

        result = refiner.refine(inputs, progress)
    seconds_per_frame = result.record.get("seconds_per_frame") or (time.perf_counter() - start) / inputs.frame_count
    _check_result(result, inputs, refiner.name)
    with ctx.timer("write"):
        (ctx.out_dir / "rgb").mkdir()
        for i, frame in enumerate(result.frames):
            save_png(_to_uint8(frame), ctx.out_dir / "rgb" / f"{i:06d}.png")
        atomic_write_json(ctx.out_dir / "record.json", result.record)
        save_png(comparison_sheet(inputs.guide, result.frames, path.name, refiner.name), ctx.out_dir / "comparison.png")
    guide_t, refined_t = torch.from_numpy(inputs.guide), torch.from_numpy(result.frames)
    return {"refiner": refiner.name, "path": path.name, "frames": len(result.frames),
            "seconds_per_frame": seconds_per_frame,
            "guide_flicker": flicker(guide_t) if len(guide_t) > 1 else None,
            "refined_flicker": flicker(refined_t) if len(refined_t) > 1 else None,
            "mean_change": float(np.abs(result.frames - inputs.guide).mean()) * 255,
            "references": list(inputs.references)}


def load_refine_inputs(workspace_root: Path, config: RefineConfig,
                       with_references: bool = True) -> tuple[RefineInputs, CameraPath]:
    """The guide frames, their maps and (``with_references``) the real cameras' frames at the same instants."""
    from reshoot.stages.export import real_cameras_by_view, real_frame

    root = Path(workspace_root)
    guide_dir = root / "guide"
    path, files = load_shot_frames(root, "guide")
    frames = range(len(path))
    guide = np.stack([read_image(f) for f in files]).astype(np.float32) / 255
    alpha = np.stack([read_image(guide_dir / "alpha" / f"{i:06d}.png")[..., 0] for i in frames]).astype(np.float32)
    alpha /= 255
    confidence_files = [guide_dir / "confidence" / f"{i:06d}.png" for i in frames]
    confidence = (np.stack([read_image(f)[..., 0] for f in confidence_files]).astype(np.float32) / 255
                  if all(f.is_file() for f in confidence_files) else alpha.copy())
    depth = np.stack([np.load(guide_dir / "depth" / f"{i:06d}.npy") for i in frames])
    references = {}
    for camera_id in real_cameras_by_view(root, path)[:config.references if with_references else 0]:
        shots = [real_frame(root, camera_id, int(round(float(f)))) for f in path.timeline_frames]
        if all(f.is_file() for f in shots):
            references[camera_id] = np.stack([read_image(f) for f in shots]).astype(np.float32) / 255
    size = (guide.shape[2], guide.shape[1])
    start, end = (_read_frame(p, size, what) for p, what in ((config.start_image, "--start-image"),
                                                             (config.end_image, "--end-image")))
    return RefineInputs(guide, confidence, alpha, depth, references, start, end, float(path.fps)), path


def comparison_sheet(guide: np.ndarray, refined: np.ndarray, name: str, refiner: str, count: int = 5):
    """Guide and refined frames at ``count`` instants, one row each."""
    picks = np.unique(np.linspace(0, len(guide) - 1, min(count, len(guide))).round().astype(int))
    return contact_sheet({"guide": [(f"frame {i}", _to_uint8(guide[i])) for i in picks],
                          "refined": [(f"frame {i}", _to_uint8(refined[i])) for i in picks]},
                         title=f"'{name}': guide frames and the {refiner} refiner's")


def _read_frame(path: Path | None, size: tuple[int, int], what: str) -> np.ndarray | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise RefineError(f"{what} {path}: no such image")
    image = read_image(Path(path))[..., :3]
    if (image.shape[1], image.shape[0]) != size:
        raise RefineError(f"{what} {path} is {image.shape[1]}x{image.shape[0]}; the guide frames are "
                          f"{size[0]}x{size[1]}: resize it to match")
    return image.astype(np.float32) / 255


def _check_result(result: RefineResult, inputs: RefineInputs, name: str) -> None:
    frames = np.asarray(result.frames)
    if frames.shape != inputs.guide.shape or not np.isfinite(frames).all():
        raise RefineError(f"refiner {name!r} returned frames of shape {list(frames.shape)} (expected "
                          f"{list(inputs.guide.shape)}) or non-finite values; this is a bug in the refiner")


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    return (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
