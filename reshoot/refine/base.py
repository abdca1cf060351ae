"""One interface for every refiner: guide frames and what is known about them in, a coherent shot out.

A refiner is a small object with a ``name`` and ``refine(inputs, progress) -> RefineResult``. It never reads or
writes the workspace: the refine stage (:mod:`reshoot.stages.refine`) loads the guide frames, the confidence maps and
the real cameras' frames into :class:`RefineInputs`, calls the refiner, and writes its frames and record.

Conventions: frames are float32 RGB in [0, 1], ``[F, H, W, 3]``; per-pixel maps are float32 ``[F, H, W]`` in
[0, 1]; frame ``i`` of every array is output frame ``i`` of the camera path (the same instant of the performance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

#: ``progress(done, total)``: called by refiners as they go (the stage draws a bar with it).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class RefineInputs:
    """What a refiner gets.

    Attributes:
        guide: the guide frames rendered from the splat scene.  # [F, H, W, 3] float32 in [0, 1]
        confidence: how well the real cameras saw each pixel (reshoot.stages.guide).  # [F, H, W] float32 in [0, 1]
        alpha: coverage of the splat render (0 where nothing was drawn).  # [F, H, W] float32 in [0, 1]
        depth: expected depth along the optical axis, 0 where nothing was drawn, or None.  # [F, H, W] float32
        references: real cameras' frames at the same instants, nearest camera first: camera id -> frames.
            Sizes may differ from the guide's.  # each [F, h, w, 3] float32 in [0, 1]
        start_frame: a frame the shot must begin on exactly, or None.  # [H, W, 3] float32
        end_frame: a frame the shot must end on exactly, or None.  # [H, W, 3] float32
        fps: frames per second of the shot (for models that take it).
    """

    guide: np.ndarray
    confidence: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray | None = None
    references: dict[str, np.ndarray] = field(default_factory=dict)
    start_frame: np.ndarray | None = None
    end_frame: np.ndarray | None = None
    fps: float = 24.0

    def __post_init__(self) -> None:
        guide = np.asarray(self.guide)
        if guide.ndim != 4 or guide.shape[-1] != 3 or len(guide) == 0:
            raise ValueError(f"RefineInputs.guide: expected shape [F, H, W, 3] with F >= 1, got {list(guide.shape)}")
        f, h, w = guide.shape[:3]
        for name in ("confidence", "alpha", "depth"):
            value = getattr(self, name)
            if value is not None and np.asarray(value).shape != (f, h, w):
                raise ValueError(f"RefineInputs.{name}: expected shape [{f}, {h}, {w}] (the guide's), got "
                                 f"{list(np.asarray(value).shape)}")
        for name in ("start_frame", "end_frame"):
            value = getattr(self, name)
            if value is not None and np.asarray(value).shape != (h, w, 3):
                raise ValueError(f"RefineInputs.{name}: expected shape [{h}, {w}, 3] (a guide frame's), got "
                                 f"{list(np.asarray(value).shape)}")
        for camera_id, frames in self.references.items():
            shape = np.asarray(frames).shape
            if len(shape) != 4 or shape[0] != f or shape[-1] != 3:
                raise ValueError(f"RefineInputs.references[{camera_id!r}]: expected shape [{f}, h, w, 3], got "
                                 f"{list(shape)}")
        if not np.isfinite(guide).all():
            bad = int(np.argwhere(~np.isfinite(guide).all(axis=(1, 2, 3)))[0, 0])
            raise ValueError(f"RefineInputs.guide: frame {bad} has non-finite values")

    @property
    def frame_count(self) -> int:
        return int(self.guide.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the guide frames."""
        return int(self.guide.shape[2]), int(self.guide.shape[1])


@dataclass(frozen=True, eq=False)
class RefineResult:
    """What a refiner gives back.

    Attributes:
        frames: the refined shot, the guide's size and frame count.  # [F, H, W, 3] float32 in [0, 1]
        record: what was done, JSON-serialisable (model, settings, windows, seeds, seconds, ...).
    """

    frames: np.ndarray
    record: dict[str, Any]


class Refiner(Protocol):
    """A refiner: see the module docstring."""

    name: str

    def refine(self, inputs: RefineInputs, progress: Progress | None = None) -> RefineResult:
        ...
