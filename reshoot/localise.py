"""Placing a camera the registration never saw where the scene has it: its pose and focal length refined against
what it filmed, the scene held still.

Scoring a reshoot against a camera that was held out needs that camera in the registered world. The similarity
fitted on the registered cameras (:func:`reshoot.evaluation.scores.align_similarity`) places it only as well as the
registration's gauge allows: SfM's focal lengths and the scene's depth trade against each other, so a registered
world can be stretched by a percent along the cameras' axes, and a camera placed in it from the truth lands a few
pixels off everywhere. On the default sample the registered focal lengths come out 0.2-1.3 % long and the truth
overhead camera lands 2.4-2.9 px off in every frame: about 1.5 dB of every score, and nothing the shot can show.
Benchmarks register their test views in the same SfM as the training views (and never train on them) for this
reason. Here the held-out camera is localised against the finished scene instead: 7 numbers (a rotation, a
translation, one focal scale) fitted to its static pixels in a few frames, coarse to fine, the scene unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reshoot.cameras import Cameras
from reshoot.splat.render import render, render_view


@dataclass(frozen=True)
class LocaliseConfig:
    """How a held-out camera is localised."""

    pyramid: tuple[int, ...] = (4, 2, 1)
    """Image reductions fitted in turn (4: a quarter of the size first, for a wide basin; 1: full size last)."""
    steps: int = 15
    """Optimiser steps at each reduction."""
    lr: float = 2e-3
    """Adam's step for the rotation (radians), the translation (in median scene depths) and the log focal scale."""
    max_rotation_deg: float = 3.0
    """A correction larger than this is refused (the placement is kept): localising repairs a gauge, not a guess."""
    max_shift: float = 0.05
    """The same for the centre's move, as a share of the camera's median scene depth."""
    max_focal_change: float = 0.05
    """The same for the focal length's relative change."""


@dataclass(frozen=True)
class Localised:
    """A camera localised against a scene, and how far it moved."""

    camera: Cameras  # the localised camera (one)
    rotation_deg: float  # the rotation applied
    shift: float  # how far its centre moved, as a share of its median scene depth
    focal_change: float  # relative change of its focal length (0.01: 1 % longer)
    error_before: float  # mean absolute error over the fitted pixels at full size (0-1), as placed
    error_after: float  # the same, localised
    accepted: bool  # False: the fit moved it further than the config allows, or did not lower the error; kept as placed

    def fields(self) -> dict:
        """Everything but the camera (``Localised(camera, **fields)`` rebuilds it)."""
        return {"rotation_deg": self.rotation_deg, "shift": self.shift, "focal_change": self.focal_change,
                "error_before": self.error_before, "error_after": self.error_after, "accepted": self.accepted}

    def describe(self) -> str:
        what = "localised" if self.accepted else "kept as placed (the fit was refused)"
        return (f"{what}: turned {self.rotation_deg:.2f} deg, moved {100 * self.shift:.2f} % of its distance to the "
                f"scene, focal {100 * self.focal_change:+.2f} %; static pixels' mean error "
                f"{255 * self.error_before:.1f} -> {255 * self.error_after:.1f} levels")


def localise_camera(scene, camera: Cameras, views: Sequence[tuple[float, np.ndarray, np.ndarray | None]],
                    config: LocaliseConfig = LocaliseConfig()) -> Localised:
    """Refine ``camera`` (one, pinhole)'s pose and focal length so the frozen ``scene`` renders what it filmed.

    ``views``: (normalised shot time, image [H, W, 3] uint8 or float in [0, 1], pixels to leave out [H, W] bool or
    None) for each frame fitted, e.g. the actor's pixels: the fit is on the set, which is where a placement error
    shows and what the scene holds still.
    """
    if len(camera) != 1:
        raise ValueError(f"localise_camera takes one camera; got {len(camera)}")
    device = scene.params["means"].device
    width, height = (int(v) for v in camera.image_size[0])
    targets, keeps = [], []
    for _, image, left_out in views:
        image = np.asarray(image)
        if image.shape[:2] != (height, width):
            raise ValueError(f"localise_camera: a frame is {image.shape[1]}x{image.shape[0]}, the camera "
                             f"{width}x{height}")
        target = torch.as_tensor(image[..., :3], device=device).float()
        targets.append(target / 255.0 if image.dtype == np.uint8 else target)
        keep = torch.ones(height, width, device=device) if left_out is None else \
            (~torch.as_tensor(np.asarray(left_out, dtype=bool), device=device)).float()
        keeps.append(keep)
    W0 = torch.tensor(np.asarray(camera.world_to_camera), dtype=torch.float32, device=device)
    K0 = torch.tensor(np.asarray(camera.K), dtype=torch.float32, device=device)
    depth = _median_depth(scene, camera, views[0][0])
    rotation = torch.zeros(3, device=device, requires_grad=True)
    translation = torch.zeros(3, device=device, requires_grad=True)
    log_focal = torch.zeros(1, device=device, requires_grad=True)
    optimiser = torch.optim.Adam([rotation, translation, log_focal], lr=config.lr)

    def pose() -> tuple[Tensor, Tensor]:
        delta = torch.eye(4, device=device)
        delta = torch.cat([torch.cat([so3_exp(rotation), (translation * depth)[:, None]], 1), delta[3:]], 0)
        K = K0.clone()
        K[:, :2, :2] = K0[:, :2, :2] * torch.exp(log_focal)
        return delta[None] @ W0, K

    def error(reduce: int, grad: bool) -> Tensor:
        total = torch.zeros((), device=device)
        with torch.set_grad_enabled(grad):
            W, K = pose()
            for (t, _, _), target, keep in zip(views, targets, keeps):
                rgb = render_view(scene, W, K, (width, height), t).rgb
                total = total + _masked_l1(rgb, target, keep, reduce)
        return total / len(views)

    frozen = [p for p in scene.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        before = float(error(1, grad=False))
        for reduce in config.pyramid:
            for _ in range(config.steps):
                optimiser.zero_grad()
                error(reduce, grad=True).backward()
                optimiser.step()
        after = float(error(1, grad=False))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    with torch.no_grad():
        W, K = (v.cpu().numpy().astype(np.float64) for v in pose())
    turned = float(np.degrees(torch.linalg.norm(rotation).item()))
    shift = float(np.linalg.norm(_centre(W[0]) - camera.centers[0]) / depth)
    focal = float(np.exp(log_focal.item()) - 1)
    accepted = (after < before and turned <= config.max_rotation_deg and shift <= config.max_shift
                and abs(focal) <= config.max_focal_change)
    moved = replace(camera, world_to_camera=W, K=K) if accepted else camera
    return Localised(moved, turned, shift, focal, before, after if accepted else before, accepted)


def _masked_l1(rgb: Tensor, target: Tensor, keep: Tensor, reduce: int) -> Tensor:
    """Mean absolute error over the kept pixels, both images box-filtered by ``reduce`` first (a reduced pixel is
    kept where most of it is)."""
    if reduce > 1:
        rgb, target = (F.avg_pool2d(v.permute(2, 0, 1)[None], reduce, ceil_mode=True)[0].permute(1, 2, 0)
                       for v in (rgb, target))
        keep = (F.avg_pool2d(keep[None, None], reduce, ceil_mode=True)[0, 0] > 0.75).float()
    return ((rgb - target).abs().mean(-1) * keep).sum() / keep.sum().clamp(min=1)


def so3_exp(w: Tensor) -> Tensor:
    """Rotation matrix of the axis-angle vector ``w`` [3] (Rodrigues), differentiable at 0.  # [3, 3]"""
    theta2 = (w * w).sum()
    W = torch.zeros(3, 3, dtype=w.dtype, device=w.device)
    W[0, 1], W[0, 2], W[1, 0], W[1, 2], W[2, 0], W[2, 1] = -w[2], w[1], w[2], -w[0], -w[1], w[0]
    theta = torch.sqrt(theta2 + 1e-12)
    a = torch.where(theta2 > 1e-8, torch.sin(theta) / theta, 1 - theta2 / 6)
    b = torch.where(theta2 > 1e-8, (1 - torch.cos(theta)) / (theta2 + 1e-12), 0.5 - theta2 / 24)
    return torch.eye(3, dtype=w.dtype, device=w.device) + a * W + b * (W @ W)


def _centre(world_to_camera: np.ndarray) -> np.ndarray:
    return -world_to_camera[:3, :3].T @ world_to_camera[:3, 3]


@torch.no_grad()
def _median_depth(scene, camera: Cameras, t: float) -> float:
    """The camera's median distance to what it sees (the scale of its translation), 1 if it sees nothing."""
    out = render(scene, camera, t)
    seen = out.depth[out.alpha > 0.5]
    return float(seen.median()) if seen.numel() else 1.0
