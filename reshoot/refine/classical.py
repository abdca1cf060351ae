"""The classical refiner: fills what the splat scene left uncovered and removes flicker, on CPU in seconds.

No model weights: OpenCV's DIS optical flow between guide frames, its Telea inpainting, and arithmetic. For each
output frame ``t``:

1. **Fill from neighbours** (flow-guided propagation). The guide is a splat render over black, so a pixel of
   coverage ``alpha`` holds ``alpha x colour``; the uncovered part, ``1 - alpha``, is missing. The neighbouring guide
   frames ``t - k .. t + k`` are warped onto frame ``t`` with the optical flow from ``t`` to each, and where a
   neighbour covered a pixel (its warped coverage above ``hole_alpha``) its colour (``rgb / alpha``) is averaged,
   weighted by that coverage: a moving camera or actor uncovers in one frame what another frame saw.
2. **Inpaint** the pixels no neighbour covered (OpenCV's Telea method on the frame's own colours).
3. **Composite**: ``rgb + (1 - alpha) x fill`` (the premultiplied guide over the filled background).
4. **Remove flicker**: the filled frames ``t - m .. t + m`` (``m = smooth_window``) are warped onto frame ``t`` and
   each pixel takes their median. Splat floaters that pop in for a frame are outvoted by their neighbours, and
   what moves is followed by the flow. (Averaging instead of the median, even with an agreement test, smeared the
   flow's errors around moving things and kept the floaters: on a test shot it raised flicker where the median
   lowered it.)

Confident pixels are not kept exactly (step 4 changes every pixel a little); the diffusion refiners do keep them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from reshoot.refine.base import Progress, RefineInputs, RefineResult


@dataclass(frozen=True)
class ClassicalConfig:
    """Settings of the classical refiner."""

    window: int = 3
    """Neighbouring frames on each side used to fill holes."""
    hole_alpha: float = 0.5
    """A neighbour's pixel counts as seen where its warped coverage (alpha) exceeds this."""
    smooth_window: int = 1
    """Neighbouring frames on each side in the median that removes flicker (0: no flicker removal)."""
    inpaint_radius_px: int = 5
    """Neighbourhood radius of OpenCV's inpainting for pixels no neighbour covered."""

    def __post_init__(self) -> None:
        if self.window < 0 or not 0 <= self.hole_alpha < 1 or self.smooth_window < 0:
            raise ValueError(f"ClassicalConfig: window >= 0, 0 <= hole_alpha < 1 and smooth_window >= 0; got "
                             f"{self.window}, {self.hole_alpha}, {self.smooth_window}")


class ClassicalRefiner:
    """Flow-guided filling, inpainting and flicker removal (see the module docstring)."""

    name = "classical"

    def __init__(self, config: ClassicalConfig = ClassicalConfig()) -> None:
        self.config = config

    def refine(self, inputs: RefineInputs, progress: Progress | None = None) -> RefineResult:
        cfg, start = self.config, time.perf_counter()
        guide = np.clip(np.asarray(inputs.guide, np.float32), 0, 1)
        alpha = np.clip(np.asarray(inputs.alpha, np.float32), 0, 1)
        count = len(guide)
        flows = FlowCache(guide)
        filled = np.empty_like(guide)
        total = 2 * count
        for t in range(count):
            filled[t] = self._fill(guide, alpha, t, flows)
            flows.forget_targets_before(t + 1)  # memory bounded by the window (flicker removal computes its own)
            if progress:
                progress(t + 1, total)
        out = filled.copy()
        if cfg.smooth_window > 0:
            for t in range(count):
                out[t] = self._smooth(filled, t, flows)
                flows.forget_targets_before(t + 1)
                if progress:
                    progress(count + t + 1, total)
        if inputs.start_frame is not None:
            out[0] = inputs.start_frame
        if inputs.end_frame is not None:
            out[-1] = inputs.end_frame
        seconds = time.perf_counter() - start
        holes = float((alpha < cfg.hole_alpha).mean())
        return RefineResult(np.clip(out, 0, 1), {
            "refiner": self.name, "config": asdict(self.config), "frames": count, "seconds": seconds,
            "seconds_per_frame": seconds / count, "hole_fraction": holes, "flows_computed": flows.computed})

    def _fill(self, guide: np.ndarray, alpha: np.ndarray, t: int, flows: FlowCache) -> np.ndarray:
        """Frame ``t`` with its uncovered part filled from neighbours, then by inpainting."""
        cfg = self.config
        total = np.zeros(guide.shape[1:], np.float32)
        weight = np.zeros(guide.shape[1:3], np.float32)
        for s in _neighbours(t, len(guide), cfg.window, include_self=True):
            rgb_s, alpha_s = (guide[s], alpha[s]) if s == t else flows.warp_pair(s, t, guide[s], alpha[s])
            seen = alpha_s > cfg.hole_alpha
            colour = rgb_s / np.maximum(alpha_s, 1e-3)[..., None]
            w = np.where(seen, alpha_s, 0)
            total += colour * w[..., None]
            weight += w
        fill = total / np.maximum(weight, 1e-6)[..., None]
        unseen = weight <= 1e-6
        if unseen.any():
            base = np.where(unseen[..., None], 0, fill)
            fill = cv2.inpaint((np.clip(base, 0, 1) * 255).astype(np.uint8), unseen.astype(np.uint8),
                               cfg.inpaint_radius_px, cv2.INPAINT_TELEA).astype(np.float32) / 255
            fill = np.where(unseen[..., None], fill, base)
        return guide[t] + (1 - alpha[t])[..., None] * np.clip(fill, 0, 1)

    def _smooth(self, filled: np.ndarray, t: int, flows: FlowCache) -> np.ndarray:
        """Frame ``t``: the per-pixel median of it and its flow-warped neighbours."""
        samples = [filled[t]] + [flows.warp(s, t, filled[s])
                                 for s in _neighbours(t, len(filled), self.config.smooth_window, include_self=False)]
        return np.median(np.stack(samples), axis=0)


class FlowCache:
    """Optical flow between guide frames (OpenCV DIS), computed once per pair and reused."""

    def __init__(self, frames: np.ndarray) -> None:
        self.gray = [cv2.cvtColor((np.clip(f, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in frames]
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.flows: dict[tuple[int, int], np.ndarray] = {}
        self._computed = 0
        h, w = self.gray[0].shape
        self.grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)

    @property
    def computed(self) -> int:
        return self._computed

    def forget_targets_before(self, target: int) -> None:
        """Drop the flows onto frames before ``target`` (memory stays bounded by the window, not the shot)."""
        for key in [k for k in self.flows if k[0] < target]:
            del self.flows[key]

    def flow(self, target: int, source: int) -> np.ndarray:
        """For each pixel of frame ``target``, where it is in frame ``source``.  # [H, W, 2]"""
        key = (target, source)
        if key not in self.flows:
            self.flows[key] = self.grid + self.dis.calc(self.gray[target], self.gray[source], None)
            self._computed += 1
        return self.flows[key]

    def warp(self, source: int, target: int, image: np.ndarray) -> np.ndarray:
        """``image`` (of frame ``source``) moved onto frame ``target``."""
        where = self.flow(target, source)
        return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def warp_pair(self, source: int, target: int, rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An RGB frame and its coverage moved together; pixels that came from outside the frame get coverage 0."""
        where = self.flow(target, source)
        h, w = alpha.shape
        inside = (where[..., 0] >= 0) & (where[..., 0] <= w - 1) & (where[..., 1] >= 0) & (where[..., 1] <= h - 1)
        moved = cv2.remap(np.dstack([rgb, alpha]), where[..., 0], where[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        return moved[..., :3], np.where(inside, moved[..., 3], 0)


def _neighbours(t: int, count: int, window: int, include_self: bool) -> list[int]:
    return [s for s in range(max(0, t - window), min(count, t + window + 1)) if include_self or s != t]
