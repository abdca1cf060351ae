"""Temporal windows and processing sizes for video models: the pure arithmetic behind the diffusion refiners.

A video model takes a fixed kind of clip: ``k * factor + 1`` frames (Wan: factor 4, LTX: factor 8) with sides a
multiple of its VAE-times-patch size (16 for Wan and CogVideoX, 32 for LTX). A shot is cut into overlapping windows of
such clips, each window is refined on its own, and the windows are joined again with a linear cross-fade over their
overlaps; frames are resized to the processing size on the way in and back to the guide's size on the way out.

Conventions: frames are float32 ``[F, H, W, C]``; a window is ``[start, end)`` in shot frames; sizes are
``(width, height)``. Nothing here imports torch or diffusers' pipelines, except :func:`resize_frames` (torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameRule:
    """Which frame counts a model takes: ``k * factor + 1`` for ``k >= 0`` whose latent count ``k + 1`` is a multiple
    of ``latent_multiple`` (CogVideoX 1.5 packs latent frames in pairs; everything else takes any ``k``).

    Attributes:
        factor: the VAE's temporal compression (4 for Wan and CogVideoX, 8 for LTX).
        latent_multiple: the number of latent frames must be a multiple of this.
    """

    factor: int = 4
    latent_multiple: int = 1

    def __post_init__(self) -> None:
        if self.factor < 1 or self.latent_multiple < 1:
            raise ValueError(f"FrameRule: factor and latent_multiple must be >= 1, got {self.factor} and "
                             f"{self.latent_multiple}")

    def is_valid(self, count: int) -> bool:
        """Whether a clip of ``count`` frames is one the model takes."""
        latents = (count - 1) // self.factor + 1
        return count >= 1 and (count - 1) % self.factor == 0 and latents % self.latent_multiple == 0

    def at_least(self, count: int) -> int:
        """The smallest valid frame count ``>= count``."""
        latents = -(-max(count - 1, 0) // self.factor) + 1
        latents = -(-latents // self.latent_multiple) * self.latent_multiple
        return (latents - 1) * self.factor + 1

    def at_most(self, count: int) -> int:
        """The largest valid frame count ``<= count``, or the smallest valid one where none is that small."""
        latents = (max(count, 1) - 1) // self.factor + 1
        latents = latents // self.latent_multiple * self.latent_multiple
        return (latents - 1) * self.factor + 1 if latents > 0 else self.at_least(1)

    def __str__(self) -> str:
        rule = f"k*{self.factor}+1"
        return rule if self.latent_multiple == 1 else f"{rule} with k+1 a multiple of {self.latent_multiple}"


@dataclass(frozen=True)
class Window:
    """One window of a shot: shot frames ``[start, end)`` run through the model as a clip of ``length`` frames.

    When ``length > end - start`` (a shot shorter than a valid clip) the clip is padded by repeating its last frame,
    and the padded frames are dropped from the model's output.
    """

    start: int
    end: int
    length: int

    @property
    def frame_count(self) -> int:
        """Shot frames the window covers (``end - start``)."""
        return self.end - self.start

    @property
    def padding(self) -> int:
        """Frames repeated at the end to reach ``length``."""
        return self.length - self.frame_count

    def take(self, frames: np.ndarray) -> np.ndarray:
        """This window's frames of a shot-long array ``[F, ...]``, padded to ``length`` by repeating the last."""
        clip = frames[self.start:self.end]
        if self.padding:
            clip = np.concatenate([clip, np.repeat(clip[-1:], self.padding, axis=0)], axis=0)
        return clip


def plan_windows(frame_count: int, window: int, overlap: int, rule: FrameRule) -> list[Window]:
    """Cut a shot of ``frame_count`` frames into overlapping windows the model takes.

    Every window has the same valid length: ``window`` rounded down to the rule (a shot shorter than that gets one
    window of the shortest valid length that holds it, padded). The fewest windows whose neighbours share at least
    ``overlap`` frames are spread evenly from the shot's first frame to its last, so overlaps differ by at most one
    frame. Every frame is covered.

    Args:
        frame_count: frames in the shot (>= 1).
        window: frames per window wanted; rounded down to ``rule`` (at least ``rule.at_least(2)``).
        overlap: frames shared by neighbouring windows, ``0 <= overlap < `` the rounded window.
        rule: the model's frame rule.
    """
    if frame_count < 1:
        raise ValueError(f"plan_windows: frame_count must be >= 1, got {frame_count}")
    length = max(rule.at_most(window), rule.at_least(2))
    if not 0 <= overlap < length:
        raise ValueError(f"plan_windows: overlap must be in [0, {length}) for windows of {length} frames "
                         f"(window={window} rounded to {rule}), got {overlap}")
    if frame_count <= length:
        return [Window(0, frame_count, rule.at_least(frame_count))]
    count = -(-(frame_count - overlap) // (length - overlap))  # ceil: the fewest windows with that overlap
    starts = [round(i * (frame_count - length) / (count - 1)) for i in range(count)]
    return [Window(start, start + length, length) for start in starts]


def crossfade_weights(windows: list[Window], frame_count: int) -> np.ndarray:
    """Per-window blending weights ``[len(windows), frame_count]`` that sum to 1 at every frame.

    Inside an overlap of ``n`` frames the later window's weight rises linearly ``1/(n+1), 2/(n+1), ..., n/(n+1)`` and
    the earlier one's falls to match; elsewhere a frame's only window has weight 1. (Where three windows meet, which
    only happens with overlaps over half a window, the same ramps are normalised to sum to 1.)
    """
    weights = np.zeros((len(windows), frame_count), np.float64)
    frames = np.arange(frame_count)
    for i, window in enumerate(windows):
        rise = np.ones(frame_count)
        fall = np.ones(frame_count)
        if i > 0 and windows[i - 1].end > window.start:
            rise = (frames - window.start + 1) / (windows[i - 1].end - window.start + 1)
        if i + 1 < len(windows) and windows[i + 1].start < window.end:
            fall = (window.end - frames) / (window.end - windows[i + 1].start + 1)
        inside = (frames >= window.start) & (frames < window.end)
        weights[i] = np.where(inside, np.clip(np.minimum(rise, fall), 0.0, 1.0), 0.0)
    total = weights.sum(axis=0)
    if (total <= 0).any():
        raise ValueError(f"crossfade_weights: frame {int(np.argmax(total <= 0))} is in no window of {windows}")
    return weights / total


def blend_windows(clips: list[np.ndarray], windows: list[Window], frame_count: int) -> np.ndarray:
    """Join per-window outputs into one shot with :func:`crossfade_weights`.

    Args:
        clips: each window's frames, ``[window.frame_count, ...]`` (padding already dropped).
        windows: the windows, as planned by :func:`plan_windows`.
        frame_count: frames in the shot.
    Returns:
        ``[frame_count, ...]`` float32.
    """
    if len(clips) != len(windows):
        raise ValueError(f"blend_windows: {len(clips)} clips for {len(windows)} windows")
    weights = crossfade_weights(windows, frame_count)
    out = np.zeros((frame_count, *clips[0].shape[1:]), np.float64)
    for clip, window, weight in zip(clips, windows, weights):
        if len(clip) != window.frame_count:
            raise ValueError(f"blend_windows: window [{window.start}, {window.end}) needs {window.frame_count} "
                             f"frames, got {len(clip)}")
        shape = (-1,) + (1,) * (clip.ndim - 1)
        out[window.start:window.end] += clip * weight[window.start:window.end].reshape(shape)
    return out.astype(np.float32)


def window_seed(seed: int, window_idx: int) -> int:
    """A window's seed: a fixed function of the shot's seed and the window's position (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, window_idx]).generate_state(1, np.uint32)[0])


def processing_size(size: tuple[int, int], multiple: int, max_side: int | None) -> tuple[int, int]:
    """The ``(width, height)`` a model processes a guide of ``size`` at.

    The guide is scaled down (never up) so its longer side is at most ``max_side``, then each side is rounded to the
    nearest multiple of ``multiple`` (at least one multiple). The aspect ratio changes by at most half a multiple per
    side; :func:`resize_frames` undoes the whole change afterwards.
    """
    width, height = size
    if width < 1 or height < 1 or multiple < 1:
        raise ValueError(f"processing_size: size and multiple must be positive, got size={size}, multiple={multiple}")
    scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))

    def fit(side: int) -> int:
        return max(multiple, int(round(side * scale / multiple)) * multiple)

    return fit(width), fit(height)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``[F, H, W, C]`` (or ``[F, H, W]``) float frames to ``size = (width, height)``, bilinear.

    Shrinking low-pass filters first (antialias), so it does not alias; a same-size call returns a float32 copy.
    """
    import torch

    frames = np.asarray(frames, np.float32)
    width, height = size
    if frames.shape[1:3] == (height, width):
        return frames.copy()
    planar = frames[..., None] if frames.ndim == 3 else frames
    tensor = torch.from_numpy(np.ascontiguousarray(planar)).permute(0, 3, 1, 2)
    shrinking = height < planar.shape[1] or width < planar.shape[2]
    resized = torch.nn.functional.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False,
                                              antialias=shrinking)
    out = resized.permute(0, 2, 3, 1).numpy()
    return out[..., 0] if frames.ndim == 3 else out
