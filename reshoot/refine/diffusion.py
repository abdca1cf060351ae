"""The diffusion refiners: a video diffusion model turns the guide frames into a coherent shot.

Three refiners share one loop (:class:`DiffusionRefiner`) and differ in how a window is handed to the model:

- ``wan-vace`` (:class:`WanVaceRefiner`, Wan 2.1 VACE): the guide is the video to edit and a mask says which pixels
  to generate: those the real cameras saw poorly (confidence below ``confidence_threshold``). The nearest real
  cameras' frames are VACE's reference images. Confident pixels are kept: their latents are pulled back to the
  noised guide after every step, and the decoded frames are composited over the guide (below).
- ``ltx`` (:class:`LtxRefiner`, LTX-Video): the guide is a video condition at frame 0 of condition strength
  ``1 - strength`` (LTX keeps a strength-1 condition as it is, so ``strength`` means the same as for ``v2v``: how
  far the model may move away from the guide); the start and end frames are image conditions of strength 1.0.
- ``v2v`` (:class:`VideoToVideoRefiner`, Wan 2.1 or CogVideoX video-to-video): the guide is noised to ``strength``
  and denoised.

The loop, for every refiner:

1. **Plan.** The processing size is the guide's scaled to ``max_side`` and rounded to the model's multiple
   (:func:`~reshoot.refine.windows.processing_size`); the shot is cut into overlapping windows of a frame count the
   model takes (:func:`~reshoot.refine.windows.plan_windows`).
2. **Run each window** at the processing size, with its own seed
   (:func:`~reshoot.refine.windows.window_seed`), and resize its frames back to the guide's size.
3. **Join** the windows with a linear cross-fade over each overlap (:func:`~reshoot.refine.windows.blend_windows`).
4. **Composite** over the *target* (the guide, with ``start_frame`` / ``end_frame`` in place of its first / last
   frame): ``out = w * generated + (1 - w) * target``, where the generation weight ``w`` is 0 on the start and end
   frames and, for ``wan-vace``, ``w = clip((threshold + feather - confidence) / feather, 0, 1)``; for ``ltx`` and
   ``v2v`` it is 1 elsewhere. So the shot begins and ends exactly on the given frames (the models were conditioned on
   them; the composite only removes the VAE's round-trip error), and ``wan-vace`` keeps every pixel whose confidence
   is at least ``threshold + feather`` exactly, fading generated pixels in over the ``feather`` band below.

Frames are float32 RGB in [0, 1], ``[F, H, W, 3]`` (see :mod:`reshoot.refine.base`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from reshoot.refine.base import Progress, RefineInputs, RefineResult
from reshoot.refine.loading import (
    PIPELINE_CLASSES,
    DiffusionConfig,
    RefinerError,
    load_pipeline,
    refiner_for_class,
)
from reshoot.refine.windows import (
    FrameRule,
    Window,
    blend_windows,
    plan_windows,
    processing_size,
    resize_frames,
    window_seed,
)

__all__ = ["DIFFUSION_REFINERS", "DiffusionConfig", "DiffusionRefiner", "LtxRefiner", "RefinerError",
           "VideoToVideoRefiner", "WanVaceRefiner", "load_pipeline"]


@dataclass(frozen=True, eq=False)
class WindowClip:
    """One window's inputs at the processing size, padded to the window's model length ``n``.

    Attributes:
        window: the window of the shot.
        target: the guide, with the start / end frames in place.  # [n, h, w, 3] float32 in [0, 1]
        generate: where the model may change pixels (1) and where it must keep the target (0).  # [n, h, w] float32
        start_frame: the frame the window must begin on, or None (first window only).  # [h, w, 3] float32
        end_frame: the frame the window must end on, or None (last window only).  # [h, w, 3] float32
        end_idx: the end frame's position in the clip (the last frame before padding).
        references: reference frames of the nearest real cameras, at the window's middle.  # each [h', w', 3]
        fps: frames per second of the shot.
        seed: the window's seed.
    """

    window: Window
    target: np.ndarray
    generate: np.ndarray
    start_frame: np.ndarray | None
    end_frame: np.ndarray | None
    end_idx: int
    references: list[np.ndarray]
    fps: float
    seed: int

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the processing size."""
        return int(self.target.shape[2]), int(self.target.shape[1])


class DiffusionRefiner:
    """The loop the diffusion refiners share (see the module docstring); subclasses say how a window runs.

    Build one with ``Refiner(config)`` (the pipeline loads on first use, see :func:`load_pipeline`) or with
    ``Refiner.from_pipeline(pipe, config)`` around a pipeline already built.
    """

    name: ClassVar[str]

    def __init__(self, config: DiffusionConfig = DiffusionConfig()) -> None:
        self.config = config
        self._pipe = None

    @classmethod
    def from_pipeline(cls, pipe, config: DiffusionConfig = DiffusionConfig()) -> DiffusionRefiner:
        """A refiner around ``pipe``, used as it is (device, dtype and VAE settings untouched)."""
        class_name = type(pipe).__name__
        if class_name not in set(PIPELINE_CLASSES[cls.name].values()):
            other = refiner_for_class(class_name)
            raise RefinerError(f"{cls.name}: from_pipeline got a {class_name}; this refiner runs "
                               f"{' or '.join(sorted(set(PIPELINE_CLASSES[cls.name].values())))}"
                               + (f" (a {class_name} is the {other!r} refiner's)" if other else ""))
        refiner = cls(config)
        refiner._pipe = pipe
        return refiner

    @property
    def pipeline(self):
        """The diffusers pipeline, loaded on first use."""
        if self._pipe is None:
            self._pipe = load_pipeline(self.name, self.config)
        return self._pipe

    def refine(self, inputs: RefineInputs, progress: Progress | None = None) -> RefineResult:
        import torch

        cfg, pipe = self.config, self.pipeline
        self.check_settings(pipe)
        # 1. Plan: processing size and windows.
        size = processing_size(inputs.size, self.size_multiple(pipe), cfg.max_side)
        rule = self.frame_rule(pipe)
        windows = plan_windows(inputs.frame_count, cfg.window, cfg.overlap, rule)
        # 2. What must be kept: the target and the generation weight, at the guide's size.
        target, weight = self.target_and_weight(inputs)
        # 3. Each window at the processing size, back to the guide's size.
        clips, seeds, seconds = [], [], []
        for window_idx, window in enumerate(windows):
            started = time.perf_counter()
            clip = self.window_clip(inputs, target, weight, window, size, window_seed(cfg.seed, window_idx))
            with torch.inference_mode():
                frames = self.run_window(pipe, clip)
            frames = self._check_frames(frames, clip)
            clips.append(resize_frames(frames[:window.frame_count], inputs.size))
            seeds.append(clip.seed)
            seconds.append(round(time.perf_counter() - started, 3))
            if progress is not None:
                progress(window_idx + 1, len(windows))
        # 4. Join the windows, 5. composite over the target.
        shot = blend_windows(clips, windows, inputs.frame_count)
        frames = np.clip(weight[..., None] * shot + (1.0 - weight[..., None]) * target, 0.0, 1.0)
        record = self.record(pipe, inputs, rule, windows, seeds, seconds, size, weight)
        return RefineResult(frames=frames.astype(np.float32), record=record)

    # --- what subclasses may change -------------------------------------------------------------------------------

    def size_multiple(self, pipe) -> int:
        """Processing sides must be a multiple of this: the VAE's spatial factor times the transformer's patch."""
        patch = pipe.transformer.config.patch_size
        return int(pipe.vae_scale_factor_spatial * (patch[1] if isinstance(patch, (tuple, list)) else patch))

    def frame_rule(self, pipe) -> FrameRule:
        """The frame counts the model takes: ``k * temporal factor + 1``."""
        return FrameRule(int(pipe.vae_scale_factor_temporal))

    def check_settings(self, pipe) -> None:
        """Raise :class:`RefinerError` for settings this refiner cannot run with this pipeline."""

    def generation_weight(self, inputs: RefineInputs) -> np.ndarray:
        """Where the model's pixels are used, ``[F, H, W]`` in [0, 1] (1: all of them); keyframes are set apart."""
        return np.ones(inputs.guide.shape[:3], np.float32)

    def run_window(self, pipe, clip: WindowClip) -> np.ndarray:
        """Run the model on one window: ``[n, h, w, 3]`` float in [0, 1] at the processing size."""
        raise NotImplementedError

    def extra_record(self, inputs: RefineInputs, weight: np.ndarray) -> dict[str, Any]:
        return {}

    # --- shared steps ---------------------------------------------------------------------------------------------

    def target_and_weight(self, inputs: RefineInputs) -> tuple[np.ndarray, np.ndarray]:
        """The target (guide with keyframes in place) ``[F, H, W, 3]`` and generation weight ``[F, H, W]``."""
        target = np.clip(np.asarray(inputs.guide, np.float32), 0.0, 1.0)
        weight = self.generation_weight(inputs).astype(np.float32)
        for frame, idx in ((inputs.start_frame, 0), (inputs.end_frame, inputs.frame_count - 1)):
            if frame is not None:
                target[idx] = np.clip(np.asarray(frame, np.float32), 0.0, 1.0)
                weight[idx] = 0.0
        return target, weight

    def window_clip(self, inputs: RefineInputs, target: np.ndarray, weight: np.ndarray, window: Window,
                    size: tuple[int, int], seed: int) -> WindowClip:
        """One window's inputs, resized to the processing ``size`` and padded to the window's length."""
        last = inputs.frame_count - 1
        middle = (window.start + window.end - 1) // 2
        clip_target = resize_frames(window.take(target), size)
        return WindowClip(
            window=window,
            target=clip_target,
            generate=(resize_frames(window.take(weight), size) > 0).astype(np.float32),
            start_frame=clip_target[0] if inputs.start_frame is not None and window.start == 0 else None,
            end_frame=clip_target[window.frame_count - 1] if inputs.end_frame is not None and window.end == last + 1
            else None,
            end_idx=window.frame_count - 1,
            references=[np.asarray(frames[middle], np.float32)
                        for frames in list(inputs.references.values())[:self.config.reference_count]],
            fps=float(inputs.fps),
            seed=seed,
        )

    def record(self, pipe, inputs: RefineInputs, rule: FrameRule, windows: list[Window], seeds: list[int],
               seconds: list[float], size: tuple[int, int], weight: np.ndarray) -> dict[str, Any]:
        """What was done, JSON-serialisable: enough to map the output back to the model and settings."""
        cfg = self.config
        return {
            "refiner": self.name,
            "model": cfg.model or getattr(pipe, "name_or_path", None),  # None: a pipeline built in memory
            "pipeline_class": type(pipe).__name__,
            "dtype": str(pipe.transformer.dtype).removeprefix("torch."),
            "vae_dtype": str(pipe.vae.dtype).removeprefix("torch."),
            "device": str(pipe._execution_device),
            "config": asdict(cfg),
            "steps": cfg.steps,
            "strength": cfg.strength,
            "guidance_scale": cfg.guidance_scale,
            "frame_rule": str(rule),
            "windows": [[w.start, w.end] for w in windows],
            "window_lengths": [w.length for w in windows],
            "seeds": seeds,
            "guide_size": list(inputs.size),
            "processing_size": list(size),
            "seconds_per_window": seconds,
            "start_frame_kept": inputs.start_frame is not None,
            "end_frame_kept": inputs.end_frame is not None,
            **self.extra_record(inputs, weight),
        }

    @staticmethod
    def generator(clip: WindowClip):
        """A CPU generator seeded with the window's seed (the same numbers on any device)."""
        import torch

        return torch.Generator("cpu").manual_seed(clip.seed)

    @staticmethod
    def _check_frames(frames, clip: WindowClip) -> np.ndarray:
        frames = np.asarray(frames, np.float32)
        expected = (clip.window.length, clip.size[1], clip.size[0], 3)
        if frames.shape != expected:
            raise RefinerError(f"the model returned frames of shape {list(frames.shape)} for window "
                               f"[{clip.window.start}, {clip.window.end}); expected {list(expected)}")
        return frames


def _video_tensor(frames: np.ndarray):
    """``[n, h, w, 3]`` in [0, 1] -> torch ``[n, 3, h, w]`` (diffusers' video processor normalises to [-1, 1])."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()


class VideoToVideoRefiner(DiffusionRefiner):
    """``v2v``: the guide, noised to ``strength``, is denoised by Wan 2.1 or CogVideoX video-to-video."""

    name = "v2v"

    def frame_rule(self, pipe) -> FrameRule:
        patch_t = getattr(pipe.transformer.config, "patch_size_t", None) if self._is_cogvideox(pipe) else None
        return FrameRule(int(pipe.vae_scale_factor_temporal), int(patch_t or 1))

    def check_settings(self, pipe) -> None:
        if int(self.config.steps * self.config.strength) < 1:
            raise RefinerError(f"v2v: steps={self.config.steps} x strength={self.config.strength} leaves no "
                               f"denoising step (the pipeline runs int(steps x strength)); raise steps or strength")

    def run_window(self, pipe, clip: WindowClip) -> np.ndarray:
        cfg, (width, height) = self.config, clip.size
        extra = {}
        if self._is_cogvideox(pipe):  # its text positions are sized for exactly this many tokens
            extra["max_sequence_length"] = int(pipe.transformer.config.max_text_seq_length)
        out = pipe(video=_video_tensor(clip.target), prompt=cfg.prompt, negative_prompt=cfg.negative_prompt,
                   height=height, width=width, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                   strength=cfg.strength, generator=self.generator(clip), output_type="np", **extra)
        return out.frames[0]

    @staticmethod
    def _is_cogvideox(pipe) -> bool:
        return type(pipe).__name__.startswith("CogVideoX")


class LtxRefiner(DiffusionRefiner):
    """``ltx``: LTX-Video with the guide as a video condition (condition strength ``1 - strength``) and keyframes at
    strength 1."""

    name = "ltx"

    def size_multiple(self, pipe) -> int:
        # LTXConditionPipeline.check_inputs wants sides divisible by 32 whatever the VAE.
        return int(np.lcm(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size))

    def frame_rule(self, pipe) -> FrameRule:
        return FrameRule(int(pipe.vae_temporal_compression_ratio))

    def run_window(self, pipe, clip: WindowClip) -> np.ndarray:
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        cfg, (width, height) = self.config, clip.size
        # The guide first: a later condition at frame 0 overrides its strength there.
        conditions = [LTXVideoCondition(video=_video_tensor(clip.target), frame_index=0,
                                         strength=1.0 - cfg.strength)]
        if clip.start_frame is not None:
            conditions.append(LTXVideoCondition(image=_video_tensor(clip.start_frame[None]), frame_index=0,
                                                strength=1.0))
        if clip.end_frame is not None:
            conditions.append(LTXVideoCondition(image=_video_tensor(clip.end_frame[None]), frame_index=clip.end_idx,
                                                strength=1.0))
        out = pipe(conditions=conditions, prompt=cfg.prompt, negative_prompt=cfg.negative_prompt, height=height,
                   width=width, num_frames=clip.window.length, frame_rate=clip.fps, num_inference_steps=cfg.steps,
                   guidance_scale=cfg.guidance_scale, generator=self.generator(clip), output_type="np")
        return out.frames[0]


class WanVaceRefiner(DiffusionRefiner):
    """``wan-vace``: Wan VACE generates the unconfident pixels and keeps the confident ones (module docstring)."""

    name = "wan-vace"

    def generation_weight(self, inputs: RefineInputs) -> np.ndarray:
        """1 where confidence < threshold, 0 where confidence >= threshold + feather, linear in between."""
        cfg = self.config
        confidence = np.asarray(inputs.confidence, np.float32)
        if cfg.confidence_feather == 0:
            return (confidence < cfg.confidence_threshold).astype(np.float32)
        upper = cfg.confidence_threshold + cfg.confidence_feather
        return np.clip((upper - confidence) / cfg.confidence_feather, 0.0, 1.0).astype(np.float32)

    def run_window(self, pipe, clip: WindowClip) -> np.ndarray:
        from PIL import Image

        cfg, (width, height) = self.config, clip.size
        video = _video_tensor(clip.target)[None]  # [1, n, 3, h, w]: VACE reads the size from video[0]
        mask = _video_tensor(np.repeat(clip.generate[..., None], 3, axis=-1))[None]
        references = [Image.fromarray(np.round(np.clip(ref, 0, 1) * 255).astype(np.uint8)) for ref in clip.references]
        keep = KeepLatents(pipe, clip, num_references=len(references)) if (clip.generate == 0).any() else None
        out = pipe(video=video, mask=mask, reference_images=references or None, prompt=cfg.prompt,
                   negative_prompt=cfg.negative_prompt, height=height, width=width, num_frames=clip.window.length,
                   num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale, generator=self.generator(clip),
                   output_type="np", callback_on_step_end=keep, callback_on_step_end_tensor_inputs=["latents"])
        return out.frames[0]

    def extra_record(self, inputs: RefineInputs, weight: np.ndarray) -> dict[str, Any]:
        return {
            "confidence_threshold": self.config.confidence_threshold,
            "confidence_feather": self.config.confidence_feather,
            "generated_fraction": round(float((weight > 0).mean()), 4),
            "kept_exactly_fraction": round(float((weight == 0).mean()), 4),
            "reference_cameras": list(inputs.references)[:self.config.reference_count],
        }


class KeepLatents:
    """A ``callback_on_step_end`` that holds VACE's kept latents on the noised target.

    WanVACE denoises every latent; this pulls each latent cell whose pixels are all kept back to the target's
    latent noised to the current level, ``sigma * noise + (1 - sigma) * z_target`` (flow matching), after every step,
    so the generated pixels grow around the kept ones and the last step lands on ``z_target`` there. The pixel
    composite in :meth:`DiffusionRefiner.refine` then makes the kept pixels exact.
    """

    def __init__(self, pipe, clip: WindowClip, num_references: int) -> None:
        import torch

        device = pipe._execution_device
        video = pipe.video_processor.preprocess_video(_video_tensor(clip.target)[None], clip.size[1], clip.size[0])
        with torch.inference_mode():
            latent = pipe.vae.encode(video.to(device, pipe.vae.dtype)).latent_dist.mode().float()
        mean = torch.tensor(pipe.vae.config.latents_mean, device=device).view(1, -1, 1, 1, 1)
        std = torch.tensor(pipe.vae.config.latents_std, device=device).view(1, -1, 1, 1, 1)
        self.target = (latent - mean) / std  # the normalisation WanVACEPipeline applies to its own latents
        generator = torch.Generator("cpu").manual_seed(clip.seed + 1)
        self.noise = torch.randn(self.target.shape, generator=generator).to(device)
        self.keep = latent_keep_mask(torch.from_numpy(clip.generate == 0), int(pipe.vae_scale_factor_temporal),
                                     int(pipe.vae_scale_factor_spatial)).to(device)
        self.num_references = num_references

    def __call__(self, pipe, step_idx: int, timestep, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        import torch

        latents = callback_kwargs["latents"]
        sigma = float(pipe.scheduler.sigmas[pipe.scheduler.step_index])  # the level the step just reached
        noised = (sigma * self.noise + (1.0 - sigma) * self.target).to(latents.dtype)
        body = torch.where(self.keep, noised, latents[:, :, self.num_references:])
        return {"latents": torch.cat([latents[:, :, :self.num_references], body], dim=2)}


def latent_keep_mask(keep, temporal: int, spatial: int):
    """Latent cells all of whose pixels are kept: ``[n, h, w]`` bool -> ``[n', h / spatial, w / spatial]`` bool.

    Wan's causal VAE maps frame 0 to latent frame 0 and frames ``(j - 1) * t + 1 .. j * t`` to latent frame ``j``;
    ``n = k * t + 1`` and the sides are multiples of ``spatial``.
    """
    import torch

    n, h, w = keep.shape
    groups = [keep[:1]] + ([keep[1:].reshape((n - 1) // temporal, temporal, h, w).all(dim=1)] if n > 1 else [])
    frames = torch.cat(groups, dim=0)
    return frames.reshape(len(frames), h // spatial, spatial, w // spatial, spatial).all(dim=4).all(dim=2)


#: The diffusion refiners by name (the names the refine stage and the CLI use).
DIFFUSION_REFINERS: dict[str, type[DiffusionRefiner]] = {
    WanVaceRefiner.name: WanVaceRefiner,
    LtxRefiner.name: LtxRefiner,
    VideoToVideoRefiner.name: VideoToVideoRefiner,
}
