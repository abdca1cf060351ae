"""Rendering a dynamic splat scene from a camera at an instant: what training, guide, eval, localising and the
viewer all draw with (one place, so they cannot disagree). gsplat's ``rasterization`` on a GPU, reshoot's CPU twin
of it elsewhere (:mod:`reshoot.splat.rasterize`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from reshoot.cameras import Cameras
from reshoot.splat.rasterize import rasterization
from reshoot.splat.scene import DynamicScene


@dataclass(frozen=True)
class RenderOutput:
    rgb: Tensor  # [H, W, 3] in [0, 1]
    alpha: Tensor  # [H, W] coverage
    depth: Tensor  # [H, W] expected depth along the optical axis (0 where alpha is 0)


def render(scene: DynamicScene, camera: Cameras, t: float, appearance: Tensor | None = None,
           background: Tensor | None = None, active_sh_degree: int | None = None,
           meta: dict | None = None, part: Literal["all", "static", "dynamic"] = "all") -> RenderOutput:
    """Render one camera (``Cameras`` of length 1, pinhole) at normalised shot time ``t``.

    Args:
        appearance: optional [3, 4] colour matrix applied to the result (a training camera's).
        background: [3] colour behind the Gaussians (default black).
        meta: if given, filled with the rasterizer's meta and ``"visible_ids"`` (the Gaussians drawn); with
            ``meta["retain_means"]`` set, also ``"means"``, their centres, whose gradient backward keeps.
        part: draw every Gaussian, the set's (static) alone or the performance's (dynamic) alone.
    """
    if len(camera) != 1:
        raise ValueError(f"render takes one camera; got {len(camera)} ({', '.join(camera.camera_ids)})")
    if np.any(camera.distortion != 0):
        raise ValueError(f"camera {camera.camera_ids[0]!r} has lens distortion; render pinhole cameras "
                         "(undistort first, as ShotFootage does)")
    device = scene.params["means"].device
    viewmat = torch.tensor(np.asarray(camera.world_to_camera), dtype=torch.float32, device=device)
    K = torch.tensor(np.asarray(camera.K), dtype=torch.float32, device=device)
    return render_view(scene, viewmat, K, tuple(int(v) for v in camera.image_size[0]), t, appearance, background,
                       active_sh_degree, meta, part)


def render_view(scene: DynamicScene, viewmat: Tensor, K: Tensor, size: tuple[int, int], t: float,
                appearance: Tensor | None = None, background: Tensor | None = None,
                active_sh_degree: int | None = None, meta: dict | None = None,
                part: Literal["all", "static", "dynamic"] = "all") -> RenderOutput:
    """:func:`render` from a camera given as tensors: ``viewmat`` [1, 4, 4] world-to-camera, ``K`` [1, 3, 3], ``size``
    (width, height). Gradients flow to ``viewmat`` and ``K`` when they require them (e.g. to localise a camera)."""
    device = scene.params["means"].device
    visible = scene.visible_at(t, part=part)
    g = scene.at(t, active_sh_degree, visible)
    if meta is not None and meta.get("retain_means") and g.means.requires_grad:
        g.means.retain_grad()  # the caller reads the centres' gradient (a camera's pose refined from it)
    width, height = size
    bg = (background.to(device) if background is not None else torch.zeros(3, device=device))[None]
    colors, alphas, info = rasterization(g.means, g.quats, g.scales, g.opacities, g.colors, viewmat, K, width, height,
                                         sh_degree=g.sh_degree, render_mode="RGB+ED", backgrounds=None, packed=False)
    rgb, depth, alpha = colors[0, ..., :3], colors[0, ..., 3], alphas[0, ..., 0]
    rgb = rgb + (1 - alpha[..., None]) * bg[0]
    if appearance is not None:
        rgb = rgb @ appearance[:, :3].T + appearance[:, 3]
    if meta is not None:
        meta.update(info)
        meta["visible_ids"] = visible
        if meta.get("retain_means"):
            meta["means"] = g.means
    return RenderOutput(rgb, alpha, depth)
