"""Training a dynamic splat scene on a shot's footage (rendering it is :mod:`reshoot.splat.render`'s).

The loop is 3DGS's (Kerbl et al. 2023) as gsplat's ``examples/simple_trainer.py`` runs it: one image a step,
loss ``(1 - w) * L1 + w * (1 - SSIM)``, Adam per parameter, means' learning rate decaying exponentially,
spherical-harmonic degree raised step by step, densify and prune with gsplat's ``DefaultStrategy``. Added:

- time: each step picks a camera and an instant and renders the scene *at that instant*; Gaussians
  invisible then are culled before rasterization, and their indices mapped back for the strategy;
- per-image appearance: a 3x4 colour matrix per training camera and set still (exposure, white balance), fixed
  at the identity for the first camera (the colour reference, so the scene's colours cannot drift) and for any
  camera not trained on;
- the set first, then the performance (``set_fraction``): the set phase trains the static Gaussians alone on the
  set stills and on the footage's static pixels (the performance's motion masks left out), pulled towards the dense
  geometry's depth (``depth_weight``) with the Gaussians the views see through removed (``free_space_views``);
  the performance phase trains the dynamic Gaussians on whole frames, drawn over a cached render of the frozen
  set (``layered``);
- checkpoints every ``checkpoint_every`` steps, and a resume from the latest (said on stderr); a checkpoint that
  cannot be read or that another run wrote is set aside (renamed, kept) and training starts afresh.

The configuration, its presets, the densification strategy and the row-wise Adam step are
:mod:`reshoot.splat.train_config`'s.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reshoot.atomic import atomic_write_bytes
from reshoot.cameras import Cameras
from reshoot.localise import so3_exp
from reshoot.metrics import psnr, ssim
from reshoot.progress import StepProgress
from reshoot.splat.data import SetStills, ShotFootage
from reshoot.splat.priors import DepthPriors, camera_bodies, inside_bodies, seen_through
from reshoot.splat.render import RenderOutput, render, render_view
from reshoot.splat.scene import DynamicScene
from reshoot.splat.train_config import TrainConfig, _adam_step, _make_strategy


@dataclass(frozen=True)
class _View:
    """One training image: what to render and what it should look like."""

    camera: Cameras  # one camera
    t: float  # normalised shot time
    image: np.ndarray  # [H', W', 3] uint8 (cropped to the camera's size in the step)
    keep: np.ndarray | None  # [H', W'] bool: pixels that count (None: all)
    appearance_idx: int  # row of Trainer.appearance
    static_only: bool  # render the set alone
    instant_idx: int = -1  # the footage's instant (-1: a set still)


class Trainer:
    """Trains a DynamicScene on ShotFootage; ``run()`` for the whole loop, ``step()`` for one step.

    Two phases (``TrainConfig.set_fraction``): the set first (static Gaussians on ``stills`` and on the footage
    outside ``moving``), then the performance (dynamic Gaussians on whole frames; the set's parameters frozen).
    """

    def __init__(self, footage: ShotFootage, scene: DynamicScene, config: TrainConfig = TrainConfig(),
                 scene_scale: float = 1.0, stills: SetStills | None = None, moving: np.ndarray | None = None,
                 priors: DepthPriors | None = None,
                 recarve: Callable[[list[str]], tuple[dict[str, Tensor], list[int]]] | None = None) -> None:
        """
        Args:
            stills: registered stills of the empty set (survey), trained on in the set phase.
            moving: [C, T, H, W] bool, the footage's pixels that show the performance (the actor, its shadow):
                left out of the set phase. None: every pixel is the set's.
            priors: the set's depth in every set camera and still (``reshoot.splat.priors``), from dense geometry.
            recarve: given the cameras that sat out (``inconsistent_camera_db``), the performance's Gaussians carved
                again without them, and how many start at each instant: their hulls replace the first ones (a
                camera whose registration disagrees carves a limb away, or leaves a phantom one).
        """
        if moving is not None and moving.shape != footage.images.shape[:4]:
            raise ValueError(f"moving must have the footage's shape {list(footage.images.shape[:4])}, got "
                             f"{list(moving.shape)}")
        self.footage, self.scene, self.config, self.scene_scale = footage, scene, config, scene_scale
        self.stills = stills if stills is not None and len(stills) else None
        self.moving = moving
        self.priors = priors
        self.recarve = recarve
        self.recarved: list[int] | None = None  # the performance's Gaussians per instant, if carved again
        self.pruned_before_performance = 0  # static Gaussians the performance was seen behind (_prune_seen_behind)
        self._set_layers: dict[int, RenderOutput] = {}  # camera -> the frozen set's render (performance phase)
        self._bodies: tuple[Tensor, Tensor] | None = None  # the cameras' balls (centres, radii), measured once
        self._locked = [bool(np.allclose(footage.world_to_camera[c][footage.valid[c]],
                                         footage.world_to_camera[c][footage.valid[c]][:1], atol=1e-9))
                        for c in range(len(footage.camera_ids))]
        self.set_steps = int(round(config.set_fraction * config.steps))
        self.step_idx = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        self.background_generator = torch.Generator().manual_seed(config.seed + 1)  # random_background's colours
        torch.manual_seed(config.seed)  # gsplat's split samples from the global generator
        device = scene.params["means"].device
        rows = len(footage.camera_ids) + (len(self.stills) if self.stills else 0)
        self.appearance = torch.nn.Parameter(torch.eye(3, 4, device=device).repeat(rows, 1, 1))
        # each image's pose change (``pose_refine_lr``), applied on the left of its world-to-camera; Adam's moments
        # (of a turn and a shift) and step count per image, stepped only on the image trained
        self.pose_change = torch.eye(4, device=device).repeat(rows, 1, 1)
        self._pose_moments = torch.zeros(2, rows, 6, device=device)
        self._pose_steps = torch.zeros(rows, device=device)
        self.poses_refined: dict[str, dict[str, float]] = {}  # image -> how far its pose moved (once baked)
        self.optimizers = self._make_optimizers()
        self.strategy = _make_strategy(config)
        self.strategy.check_sanity(scene.params, self.optimizers)
        self.strategy_state = (self.strategy.initialize_state() if config.strategy == "mcmc"
                               else self.strategy.initialize_state(scene_scale=scene_scale))
        self.pairs = np.argwhere(footage.valid)  # [M, 2] (camera, instant) with a frame
        # the set phase trains on the frames whose performance is masked: locked-off cameras with a motion mask
        # (a moving camera has no plate to find the actor against), or every frame if no masks were given
        masked = [moving is None or self._locked[c] and footage.valid[c].sum() >= 3  # as init.motion_masks
                  for c in range(len(footage.camera_ids))]
        self.set_pairs = self.pairs[[masked[c] for c, _ in self.pairs]] if len(self.pairs) else self.pairs
        if len(self.set_pairs) == 0 and self.stills is None:
            self.set_steps = 0  # nothing shows the set alone: one phase, as set_fraction 0
        sizes = [footage.cameras.image_size[c] for c in np.unique(self.set_pairs[:, 0])] if len(self.set_pairs) else []
        sizes += list(self.stills.cameras.image_size) if self.stills is not None else []
        self._set_view_pixels = max((int(w) * int(h) for w, h in sizes), default=0)  # the set's largest view
        self.history: list[dict] = []
        self.sat_out: dict[str, dict[str, float]] = {}  # camera id -> its set fit and the rig's median (dB)
        self.resumed_from: int | None = None  # the step a checkpoint resumed training at (None: from the start)

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c, s = self.config, self.scene_scale
        rates = {"means": c.lr_means * s, "scales": c.lr_scales, "quats": c.lr_quats, "opacities": c.lr_opacities,
                 "sh0": c.lr_sh0, "shN": c.lr_shN, "velocities": c.lr_motion * s, "accels": c.lr_motion * s,
                 "omegas": c.lr_quats, "times": c.lr_times, "time_scales": c.lr_time_scales}
        fused = self.scene.params["means"].dtype in (torch.float32, torch.float64)  # one pass per tensor, not ten
        optimizers = {name: torch.optim.Adam([{"params": self.scene.params[name], "lr": lr, "name": name}],
                                             eps=1e-15, fused=fused) for name, lr in rates.items()}
        self.appearance_optimizer = torch.optim.Adam([self.appearance], lr=c.lr_appearance if c.appearance else 0.0)
        return optimizers

    @property
    def in_set_phase(self) -> bool:
        return self.step_idx < self.set_steps

    @property
    def refine_schedule(self) -> tuple[int, int]:
        """When to densify and prune now, (after this step, every this many): ``set_refine_start`` and
        ``set_refine_every`` while the set phase's set is thin, else ``refine_start`` and ``refine_every``."""
        cfg = self.config
        if self.in_set_phase and cfg.set_refine_every and self.set_is_thin:
            return cfg.set_refine_start, cfg.set_refine_every
        return cfg.refine_start, cfg.refine_every

    def _refine_step(self) -> bool:
        start, every = self.refine_schedule
        return start < self.step_idx < self.config.refine_stop and self.step_idx % every == 0

    @property
    def set_is_thin(self) -> bool:
        """Whether the set has fewer static Gaussians than ``thin_set`` times the pixels of its largest view."""
        return int((self.scene.params["dynamic"] == 0).sum()) < self.config.thin_set * self._set_view_pixels

    def _random(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def _next_view(self) -> _View:
        """A set still (set phase, ``still_share`` of the time, or always if no footage frame has its performance
        masked) or a random (camera, instant) of the footage."""
        set_phase = self.in_set_phase
        share = self.config.still_share if len(self.set_pairs) else 1.0
        if set_phase and self.stills is not None and torch.rand(1, generator=self.generator).item() < share:
            s = self._random(len(self.stills))
            camera = self.stills.cameras.select([self.stills.cameras.camera_ids[s]])
            keep = self.stills.keep[s] if self.stills.keep is not None else None
            return _View(camera, 0.0, self.stills.images[s], keep, len(self.footage.camera_ids) + s, True)
        pairs = self.set_pairs if set_phase and len(self.set_pairs) else self.pairs
        c, t = pairs[self._random(len(pairs))]
        keep = None if self.footage.masks is None else self.footage.masks[c, t]
        if set_phase and self.moving is not None:
            keep = ~self.moving[c, t] if keep is None else keep & ~self.moving[c, t]
        return _View(self.footage.camera_at(c, t), float(self.footage.times[t]), self.footage.images[c, t], keep,
                     int(c), set_phase, int(t))

    def step(self) -> dict[str, float]:
        """One training step on a random view (see ``_next_view``); returns its loss and PSNR."""
        cfg = self.config
        if self.step_idx == 0:
            self._prune_camera_bodies()
        if self.step_idx == self.set_steps and self.set_steps > 0:
            self._bake_poses()
            self._prune_free_space()
            self.pruned_before_performance = self._prune_seen_behind()
            self._prune_camera_bodies()
            self._freeze_set()
            self._sit_out_inconsistent()
            if self.sat_out and self.recarve is not None:
                params, self.recarved = self.recarve(sorted(self.sat_out))
                self._replace_performance(params)
        view = self._next_view()
        device = self.scene.params["means"].device
        h, w = int(view.camera.image_size[0, 1]), int(view.camera.image_size[0, 0])
        target = torch.as_tensor(view.image[:h, :w], dtype=torch.float32, device=device) / 255.0
        meta: dict = {}
        degree = min(self.scene.sh_degree, self.step_idx // cfg.sh_degree_every)
        keep = None if view.keep is None else torch.as_tensor(view.keep[:h, :w], device=device)
        if self.set_steps and not view.static_only and cfg.layered:
            out, hidden = self._render_over_set(view, degree, meta)
            keep = ~hidden if keep is None else keep & ~hidden
        else:
            background = (torch.rand(3, generator=self.background_generator).to(device)
                          if cfg.random_background and view.static_only else None)
            out = self._render(view, degree, meta, background)
        if keep is not None:  # left-out pixels: the target is the render itself, no error
            target = torch.where(keep[..., None], target, out.rgb.detach())
        depth_loss = self._depth_loss(view, out) if view.static_only else None
        loss = (1 - cfg.ssim_weight) * F.l1_loss(out.rgb, target) + cfg.ssim_weight * (1 - ssim(out.rgb, target))
        if depth_loss is not None:
            loss = loss + cfg.depth_weight * depth_loss
        if view.static_only and cfg.coverage_weight > 0:
            loss = loss + cfg.coverage_weight * self._coverage_loss()
        if cfg.strategy == "mcmc":  # as gsplat's simple_trainer: keep opacities and scales small, so dead ones relocate
            p = self.scene.params
            loss = loss + cfg.opacity_reg * torch.sigmoid(p["opacities"]).mean() + cfg.scale_reg * p["scales"].exp().mean()
        self.strategy.step_pre_backward(self.scene.params, self.optimizers, self.strategy_state, self.step_idx, meta)
        loss.backward()
        self._step_pose(view, meta)
        if self.appearance.grad is not None:
            self.appearance.grad[0] = 0  # the first camera is the colour reference: the others are matched to it
        frozen = bool(self.set_steps) and not self.in_set_phase
        self._densify(meta)
        # the frozen set's rows must not move. Layered, they have no gradient and (``_freeze_set``) no momentum, so
        # Adam's fused step over every row leaves them exactly as they are, and costs half of stepping the
        # performance's rows alone (gathered and scattered back, as drawing the whole scene needs)
        rows = torch.nonzero(self.scene.params["dynamic"] > 0).squeeze(1) if frozen and not cfg.layered else None
        for optimizer in self.optimizers.values():
            _adam_step(optimizer, rows)
            optimizer.zero_grad(set_to_none=True)
        self.appearance_optimizer.step()
        self.appearance_optimizer.zero_grad(set_to_none=True)
        self._schedule_means_lr()
        self.step_idx += 1
        return {"loss": loss.item(), "psnr": psnr(out.rgb.detach().clamp(0, 1), target)}

    def _refines_poses(self, view: _View) -> bool:
        return self.config.pose_refine_lr > 0 and view.static_only and self.in_set_phase

    def _render(self, view: _View, degree: int, meta: dict, background: Tensor | None = None) -> RenderOutput:
        """The view's render (the set alone in the set phase), from its refined pose when poses are refined (then
        ``meta["means"]`` keeps the drawn Gaussians' centres, their gradient retained for ``_step_pose``)."""
        part = "static" if view.static_only else "all"
        appearance = self.appearance[view.appearance_idx]
        if not self._refines_poses(view):
            return render(self.scene, view.camera, view.t, appearance, background, active_sh_degree=degree, meta=meta,
                          part=part)
        device = self.scene.params["means"].device
        W0 = torch.tensor(np.asarray(view.camera.world_to_camera), dtype=torch.float32, device=device)
        K = torch.tensor(np.asarray(view.camera.K), dtype=torch.float32, device=device)
        meta["retain_means"] = True
        size = (int(view.camera.image_size[0, 0]), int(view.camera.image_size[0, 1]))
        return render_view(self.scene, self.pose_change[view.appearance_idx][None] @ W0, K, size, view.t, appearance,
                           background, active_sh_degree=degree, meta=meta, part=part)

    @torch.no_grad()
    def _step_pose(self, view: _View, meta: dict) -> None:
        """Adam's step on the trained image's pose change, from the drawn Gaussians' gradient: turning the camera by
        a small ``w`` and shifting it by ``e`` moves a centre ``m`` (camera axes) to ``m + w x m + e``, so the loss's
        gradient is ``sum m x g`` for the turn and ``sum g`` for the shift (``g`` its gradient at each centre, in
        camera axes). This leaves out how a turn also turns each Gaussian's shape (second order for small ones) and
        needs no gradient through the projection: the compiled kernels' step, at no extra cost. The first camera's
        pose stays as registered: the world's anchor."""
        cfg, row, means = self.config, view.appearance_idx, meta.get("means")
        if means is None or means.grad is None or row == 0 or self.step_idx < cfg.pose_refine_start or \
                not self._refines_poses(view):
            return
        W = self.pose_change[row] @ torch.tensor(np.asarray(view.camera.world_to_camera[0]), dtype=torch.float32,
                                                 device=means.device)
        R, t = W[:3, :3], W[:3, 3]
        m, g = means.detach() @ R.T + t, means.grad @ R.T  # centres and their gradient in camera axes
        grad = torch.cat([torch.linalg.cross(m, g).sum(0), g.sum(0) * self.scene_scale])
        first, second = self._pose_moments[0, row], self._pose_moments[1, row]
        first.mul_(0.9).add_(grad, alpha=0.1)
        second.mul_(0.999).addcmul_(grad, grad, value=0.001)
        self._pose_steps[row] += 1
        n = float(self._pose_steps[row])
        step = cfg.pose_refine_lr * (first / (1 - 0.9 ** n)) / ((second / (1 - 0.999 ** n)).sqrt() + 1e-12)
        update = torch.eye(4, device=means.device)
        update[:3, :3], update[:3, 3] = so3_exp(-step[:3]), -step[3:] * self.scene_scale
        self.pose_change[row] = update @ self.pose_change[row]

    @torch.no_grad()
    def _bake_poses(self) -> None:
        """At the end of the set phase, the refined poses become the footage's and the stills' (the performance
        trains from them), and ``poses_refined`` says how far each moved."""
        change = self.pose_change.double().cpu().numpy()
        if np.array_equal(change, np.broadcast_to(np.eye(4), change.shape)):
            return
        f, n = self.footage, len(self.footage.camera_ids)
        self.footage = f.moved(dict(zip(f.camera_ids, change[:n])))
        ids = list(f.camera_ids)
        if self.stills is not None:
            still = self.stills.cameras
            self.stills = replace(self.stills, cameras=replace(still, world_to_camera=change[n:] @ still.world_to_camera))
            ids += list(still.camera_ids)
        rotation = change[:, :3, :3]
        sine = np.linalg.norm(rotation - rotation.transpose(0, 2, 1), axis=(1, 2)) / (2 * np.sqrt(2))
        turned = np.degrees(np.arctan2(sine, (np.trace(rotation, axis1=1, axis2=2) - 1) / 2))  # exact when small
        moved = np.linalg.norm(change[:, :3, 3], axis=1) / self.scene_scale
        self.poses_refined = {i: {"turned_deg": float(a), "moved_scene_scale": float(d)}
                              for i, a, d in zip(ids, turned, moved)}

    def _densify(self, meta: dict) -> None:
        """gsplat's strategy over all Gaussians, from the rasterizer's meta over the visible ones."""
        if self.config.strategy == "mcmc":
            cfg = self.config
            if self._refine_step():
                self._kill_big()  # MCMC relocates dead Gaussians in this very step
            lr = self.optimizers["means"].param_groups[0]["lr"]
            self.strategy.step_post_backward(self.scene.params, self.optimizers, self.strategy_state, self.step_idx,
                                             meta, lr=lr)
            return
        visible = meta["visible_ids"]
        radii = meta["radii"][0]  # [n] or [n, 2]
        drawn = (radii > 0).all(dim=-1) if radii.dim() == 2 else radii > 0
        means2d = meta["means2d"]
        packed = torch.zeros(int(drawn.sum()), 2, device=visible.device)
        over_budget = len(self.scene) >= self.config.max_gaussians  # accumulate no gradient: nothing grows
        packed.grad = (means2d.grad[0][drawn].clone() if means2d.grad is not None and not over_budget
                       else torch.zeros_like(packed))
        if self.set_steps and not self.in_set_phase:  # the frozen set neither grows nor splits
            packed.grad[self.scene.params["dynamic"][visible[drawn]] == 0] = 0
        info = {"means2d": packed, "radii": radii[drawn], "gaussian_ids": visible[drawn], "width": meta["width"],
                "height": meta["height"], "n_cameras": 1}
        self.strategy.refine_start_iter, self.strategy.refine_every = self.refine_schedule  # gsplat reads its own
        self.strategy.step_post_backward(self.scene.params, self.optimizers, self.strategy_state, self.step_idx,
                                         info, packed=True)
        cfg = self.config
        if self._refine_step():
            self._prune_big()
            if self.in_set_phase:
                self._prune_free_space()
                self._prune_camera_bodies()
        if 0 < self.step_idx < cfg.refine_stop and self.step_idx % cfg.reset_every == 0 and \
                (self.in_set_phase or not self.set_steps):  # the frozen set's opacities are never reset
            # gsplat 1.5.3's DefaultStrategy never resets (its test `step % every == 0 & step > 0` is always
            # False: `&` binds first), so reset here as 3DGS does
            from gsplat.strategy.ops import reset_opa

            reset_opa(self.scene.params, self.optimizers, self.strategy_state, value=2 * cfg.prune_opacity)

    @torch.no_grad()
    def _kill_big(self) -> int:
        """MCMC's way to prune: Gaussians larger than ``prune_scale3d`` x the scene scale get an opacity below its
        ``min_opacity``, so MCMCStrategy relocates them onto live ones (the count stays as MCMC plans it)."""
        p = self.scene.params
        big = p["scales"].exp().max(dim=-1).values > self.config.prune_scale3d * self.scene_scale
        p["opacities"][big] = math.log(self.config.prune_opacity / 2 / (1 - self.config.prune_opacity / 2))
        return int(big.sum())

    @torch.no_grad()
    def _prune_big(self) -> int:
        """Remove Gaussians larger than ``prune_scale3d`` x the scene scale (gsplat's ``remove`` op)."""
        from gsplat.strategy.ops import remove

        p = self.scene.params
        prune = p["scales"].exp().max(dim=-1).values > self.config.prune_scale3d * self.scene_scale
        if self.set_steps:  # each phase prunes its own Gaussians: the frozen set stays as the set phase left it
            prune &= (p["dynamic"] > 0) != self.in_set_phase
        if prune.any():
            remove(params=p, optimizers=self.optimizers, state=self.strategy_state, mask=prune)
        return int(prune.sum())

    def _render_over_set(self, view: _View, degree: int, meta: dict) -> tuple[RenderOutput, Tensor]:
        """The performance phase's render: the dynamic Gaussians alone, composited over the frozen set's render
        (cached per locked-off camera). Returns it and the pixels where the set hides the performance (its depth
        nearer than theirs), which this composite cannot show and which are left out of the loss.  # [H, W] bool"""
        layer = self._set_layer(view)
        ahead = render(self.scene, view.camera, view.t, active_sh_degree=degree, meta=meta, part="dynamic")
        rgb = ahead.rgb + (1 - ahead.alpha[..., None]) * layer.rgb
        appearance = self.appearance[view.appearance_idx]
        rgb = rgb @ appearance[:, :3].T + appearance[:, 3]
        hidden = ((layer.alpha > 0.5) & (ahead.alpha.detach() > 0.05)
                  & (layer.depth < ahead.depth.detach() * (1 - self.config.free_space_margin)))
        alpha = ahead.alpha + (1 - ahead.alpha) * layer.alpha
        return RenderOutput(rgb, alpha, ahead.depth), hidden

    @torch.no_grad()
    def _set_layer(self, view: _View) -> RenderOutput:
        """The frozen set seen by a footage view (identity appearance); one render per locked-off camera."""
        c = view.appearance_idx
        if not self._locked[c]:  # a moving camera sees the set anew at every frame: not worth keeping
            return render(self.scene, view.camera, view.t, part="static")
        if c not in self._set_layers:
            self._set_layers[c] = render(self.scene, view.camera, view.t, part="static")
        return self._set_layers[c]

    def _depth_loss(self, view: _View, out: RenderOutput) -> Tensor | None:
        """Mean relative error of the set's rendered depth against the prior, where the prior knows it."""
        if self.priors is None or self.config.depth_weight <= 0:
            return None
        if view.instant_idx >= 0 and not self._locked[view.appearance_idx]:
            return None  # the prior is drawn at a camera's first pose: it holds only for a locked-off camera
        prior = self.priors.view(view.appearance_idx)
        h, w = out.depth.shape
        known = prior[:h, :w] > 0
        if view.keep is not None:
            known = known & view.keep[:h, :w]
        if not known.any():
            return None
        known_t = torch.as_tensor(known, device=out.depth.device)
        truth = torch.as_tensor(prior[:h, :w], device=out.depth.device)[known_t]
        return ((out.depth[known_t] - truth).abs() / truth).mean()

    def _coverage_loss(self) -> Tensor | float:
        """Transparency of the set in a random pseudo view, over the pixels where the prior draws the set."""
        priors = self.priors
        if priors is None or priors.pseudo_cameras is None or not len(priors.pseudo):
            return 0.0
        i = self._random(len(priors.pseudo))
        known = torch.as_tensor(priors.pseudo[i] > 0)
        if not known.any():
            return 0.0
        camera = priors.pseudo_cameras.select([priors.pseudo_cameras.camera_ids[i]])
        out = render(self.scene, camera, 0.0, active_sh_degree=0, part="static")
        return (1 - out.alpha[known.to(out.alpha.device)]).mean()

    @torch.no_grad()
    def _prune_free_space(self) -> int:
        """Remove static Gaussians hanging in space the views see through (``reshoot.splat.priors.seen_through``)."""
        from gsplat.strategy.ops import remove

        cfg = self.config
        if self.priors is None or cfg.free_space_views <= 0:
            return 0
        views = [(self.footage.cameras.K[c], self.footage.cameras.world_to_camera[c], prior)
                 for c, prior in enumerate(self.priors.cameras) if self._locked[c]]
        if self.stills is not None:
            views += [(self.stills.cameras.K[s], self.stills.cameras.world_to_camera[s], prior)
                      for s, prior in enumerate(self.priors.stills)]
        p = self.scene.params
        count = seen_through(p["means"].detach(), views, cfg.free_space_margin)
        prune = (count >= cfg.free_space_views) & (p["dynamic"] == 0)
        if prune.any():
            remove(params=p, optimizers=self.optimizers, state=self.strategy_state, mask=prune)
        return int(prune.sum())

    def _prune_camera_bodies(self) -> int:
        """Remove static Gaussians inside a training camera's body (``reshoot.splat.priors.camera_bodies``; the balls
        are measured once, on the set as it starts)."""
        from gsplat.strategy.ops import remove

        if self.config.camera_clearance <= 0 or (self.set_steps and not self.in_set_phase
                                                  and self.step_idx != self.set_steps):
            return 0
        p = self.scene.params
        static = p["dynamic"] == 0
        if self._bodies is None:
            views = [(self.footage.cameras.K[c], self.footage.world_to_camera[c][np.flatnonzero(valid)[0]],
                      tuple(int(v) for v in self.footage.cameras.image_size[c]))
                     for c, valid in enumerate(self.footage.valid) if valid.any()]
            if self.stills is not None:
                views += [(self.stills.cameras.K[s], self.stills.cameras.world_to_camera[s],
                           tuple(int(v) for v in self.stills.cameras.image_size[s])) for s in range(len(self.stills))]
            self._bodies = camera_bodies(p["means"].detach()[static], views, self.config.camera_clearance)
        prune = inside_bodies(p["means"].detach(), *self._bodies) & static
        if prune.any():
            remove(params=p, optimizers=self.optimizers, state=self.strategy_state, mask=prune)
        return int(prune.sum())

    @torch.no_grad()
    def _prune_seen_behind(self) -> int:
        """Remove static Gaussians the set cameras saw the performance behind (``performance_instants``)."""
        from gsplat.strategy.ops import remove

        cfg = self.config
        if cfg.performance_instants <= 0 or self.moving is None or cfg.free_space_views <= 0:
            return 0
        views = []
        for c in range(len(self.footage.camera_ids)):
            valid = np.flatnonzero(self.footage.valid[c])
            if not self._locked[c] or not len(valid):
                continue
            for t in valid[np.unique(np.linspace(0, len(valid) - 1, min(cfg.performance_instants, len(valid)))
                                     .round().astype(int))]:
                camera = self.footage.camera_at(c, t)
                h, w = int(camera.image_size[0, 1]), int(camera.image_size[0, 0])
                out = render(self.scene, camera, float(self.footage.times[t]), part="dynamic")
                drawn = torch.as_tensor(self.moving[c, t][:h, :w], device=out.alpha.device) & (out.alpha > 0.5)
                if drawn.any():
                    views.append((self.footage.cameras.K[c], self.footage.world_to_camera[c, t],
                                  torch.where(drawn, out.depth, 0.0).cpu().numpy()))
        p = self.scene.params
        prune = (seen_through(p["means"].detach(), views, cfg.free_space_margin) >= cfg.free_space_views) \
            & (p["dynamic"] == 0)
        if prune.any():
            remove(params=p, optimizers=self.optimizers, state=self.strategy_state, mask=prune)
        return int(prune.sum())

    @torch.no_grad()
    def _freeze_set(self) -> None:
        """From the performance phase on, the set's Gaussians keep what the set phase taught them: their Adam
        momentum is cleared, so Adam's steps (no gradient reaches them, layered) leave them as they are."""
        static = self.scene.params["dynamic"] == 0
        for optimizer in self.optimizers.values():
            for state in optimizer.state.values():
                if "exp_avg" in state:
                    state["exp_avg"][static] = 0
        for name in ("grad2d", "count", "radii"):  # what the set phase gathered must not grow the set later
            value = self.strategy_state.get(name)
            if isinstance(value, Tensor) and len(value) == len(static):
                value[static] = 0

    @torch.no_grad()
    def set_fits(self, instants: int = 3) -> dict[str, float]:
        """PSNR (dB) of each set camera's static pixels (the performance's motion masks left out) as the set renders
        them, in the camera's own learnt colours, over up to ``instants`` of its frames."""
        fits = {}
        for c, camera_id in enumerate(self.footage.camera_ids):
            if not self._locked[c]:
                continue
            valid = np.flatnonzero(self.footage.valid[c])
            errors = []
            for t in valid[np.unique(np.linspace(0, len(valid) - 1, min(instants, len(valid))).round().astype(int))]:
                camera = self.footage.camera_at(c, t)
                h, w = int(camera.image_size[0, 1]), int(camera.image_size[0, 0])
                out = render(self.scene, camera, float(self.footage.times[t]), self.appearance[c], part="static")
                target = torch.as_tensor(self.footage.images[c, t][:h, :w], device=out.rgb.device).float() / 255.0
                keep = np.ones((h, w), bool) if self.moving is None else ~self.moving[c, t][:h, :w]
                if self.footage.masks is not None:
                    keep &= self.footage.masks[c, t][:h, :w]
                if keep.any():
                    errors.append(((out.rgb.clamp(0, 1) - target) ** 2).mean(-1)[torch.as_tensor(keep)].mean().item())
            if errors:
                fits[camera_id] = float(-10 * np.log10(max(np.mean(errors), 1e-10)))
        return fits

    def _sit_out_inconsistent(self) -> None:
        """Leave out of the performance phase the set cameras the set cannot explain (``inconsistent_camera_db``)."""
        margin = self.config.inconsistent_camera_db
        fits = self.set_fits() if margin > 0 else {}
        if len(fits) < 3:
            return
        median = float(np.median(list(fits.values())))
        worst_first = sorted((f, c) for c, f in fits.items() if f < median - margin)
        for fit, camera_id in worst_first[:len(fits) - 2]:
            self.sat_out[camera_id] = {"set_fit_db": fit, "rig_median_db": median}
            c = self.footage.camera_ids.index(camera_id)
            self.pairs = self.pairs[self.pairs[:, 0] != c]
            _tell(f"warning: reconstruct: {camera_id} sits out the performance phase: the set renders its static "
                  f"pixels at {fit:.1f} dB, the rig's median camera at {median:.1f} dB, so its registration or lens "
                  f"disagrees with the other cameras. Check it in register's preview and re-register (more survey stills "
                  f"near it help), or leave it out with --holdout {camera_id}")

    @torch.no_grad()
    def _replace_performance(self, params: dict[str, Tensor]) -> None:
        """The dynamic Gaussians replaced by ``params`` (fresh: no Adam momentum, no densification statistics)."""
        from gsplat.strategy.ops import _update_param_with_optimizer, remove

        p = self.scene.params
        remove(params=p, optimizers=self.optimizers, state=self.strategy_state, mask=p["dynamic"] > 0)
        n = len(params["means"])

        def grow(value: Tensor) -> Tensor:
            return torch.cat([value, value.new_zeros((n, *value.shape[1:]))])

        _update_param_with_optimizer(
            lambda name, q: torch.nn.Parameter(torch.cat([q, params[name].to(q.device, q.dtype)]),
                                               requires_grad=q.requires_grad),
            lambda key, value: grow(value), p, self.optimizers)
        for key, value in self.strategy_state.items():
            if isinstance(value, Tensor):
                self.strategy_state[key] = grow(value)

    def _schedule_means_lr(self) -> None:
        """Positions' (and motions') learning rates decay exponentially to 1 % over each phase (3DGS's schedule)."""
        start, length = ((0, self.set_steps) if self.in_set_phase
                         else (self.set_steps, self.config.steps - self.set_steps))
        factor = 0.01 ** (min(1.0, (self.step_idx - start) / max(1, length)))
        c, s = self.config, self.scene_scale
        for name, base in (("means", c.lr_means * s), ("velocities", c.lr_motion * s), ("accels", c.lr_motion * s)):
            for group in self.optimizers[name].param_groups:
                group["lr"] = base * factor

    def run(self, checkpoint: Path | None = None, description: str = "training", until: int | None = None) -> list[dict]:
        """Train to ``config.steps`` (or step ``until``), resuming from ``checkpoint`` if it exists (see
        :meth:`resume`) and saving to it as it goes."""
        if checkpoint is not None:
            self.resume(Path(checkpoint))
        start = time.perf_counter()
        with StepProgress(description, total=self.config.steps, completed=self.step_idx) as bar, \
                _finish_step_on_interrupt() as stop:
            while self.step_idx < min(self.config.steps, until or self.config.steps):
                figures = self.step()
                if stop:  # Ctrl-C or SIGTERM during the step: keep what was learnt, the next run resumes from it
                    if checkpoint is not None:
                        self.save(checkpoint)
                    raise KeyboardInterrupt
                if self.step_idx % max(1, min(50, self.config.steps // 60)) == 0 or self.step_idx == self.config.steps:
                    self.history.append({"step": self.step_idx, **figures, "gaussians": len(self.scene),
                                         "seconds": time.perf_counter() - start})
                bar.update(1, loss=figures["loss"], psnr=figures["psnr"], gaussians=len(self.scene))
                if checkpoint is not None and self.step_idx % self.config.checkpoint_every == 0:
                    self.save(checkpoint)
        if checkpoint is not None:
            self.save(checkpoint)
        return self.history

    def save(self, path: Path) -> None:
        import io

        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    def state_dict(self) -> dict:
        return {"step": self.step_idx, "params": {k: v.detach() for k, v in self.scene.params.items()},
                "sh_degree": self.scene.sh_degree, "appearance": self.appearance.detach(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "appearance_optimizer": self.appearance_optimizer.state_dict(),
                "strategy_state": self.strategy_state, "generator": self.generator.get_state(),
                "background_generator": self.background_generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "history": self.history, "config": asdict(self.config), "camera_ids": self.footage.camera_ids,
                "pruned_before_performance": self.pruned_before_performance, "recarved": self.recarved,
                "pose_change": self.pose_change, "pose_moments": self._pose_moments,
                "pose_steps": self._pose_steps}

    def resume(self, checkpoint: Path) -> bool:
        """Load ``checkpoint`` if there is one, saying so on stderr; return whether training resumes from it.

        A checkpoint that cannot be read (truncated, corrupt) or that another run wrote (other cameras, stills,
        strategy or Gaussians) is set aside, renamed ``<name>.corrupt`` or ``<name>.other-run`` beside it (kept,
        never deleted), with a warning naming it; training then starts from step 0.
        """
        if not checkpoint.is_file():
            return False
        try:  # onto this run's device (a GPU run's checkpoint on a CPU machine, then refused below as another run's)
            state = torch.load(checkpoint, weights_only=False, map_location=self.scene.params["means"].device)
            if not _is_checkpoint(state):
                raise ValueError("not a training checkpoint of this version of reshoot")
        except Exception as error:  # noqa: BLE001 - whatever cannot be read is of no use to resume from
            kept = _set_aside(checkpoint, "corrupt")
            _tell(f"warning: reconstruct: the checkpoint {checkpoint} cannot be read ({_first_line(error)}); it is set "
                  f"aside as {kept.name} and training starts from step 0")
            return False
        other = self.checkpoint_mismatch(state)
        if other is not None:
            kept = _set_aside(checkpoint, "other-run")
            _tell(f"warning: reconstruct: the checkpoint {checkpoint} is of no use to this run: {other}; it is set "
                  f"aside as {kept.name} and training starts from step 0")
            return False
        self.load_state_dict(state)
        self.resumed_from = self.step_idx
        if 0 < self.set_steps < self.step_idx:
            self._bake_poses()  # the footage is loaded as registered: the set phase's poses again
            self._sit_out_inconsistent()  # as the run that wrote it did when its set phase ended
        _tell(f"reconstruct: resuming from the checkpoint at step {self.step_idx} of {self.config.steps} "
              f"({checkpoint}); pass --force to start over")
        return True

    def checkpoint_mismatch(self, state: object) -> str | None:
        """Why a loaded checkpoint cannot resume this trainer (None: it can); checked before anything is changed."""
        if not _is_checkpoint(state):
            return "it is not a training checkpoint of this version of reshoot"
        saved = (state.get("config") or {}).get("strategy", "default")
        if saved != self.config.strategy:
            return (f"it was trained with the {saved!r} densification strategy, this run uses "
                    f"{self.config.strategy!r} (--strategy auto is mcmc on a GPU, default on a CPU)")
        cameras = list(state.get("camera_ids", []))
        if tuple(state["appearance"].shape) != tuple(self.appearance.shape) or cameras != list(self.footage.camera_ids):
            return (f"it was trained on {len(state['appearance'])} images of cameras {cameras}, this run has "
                    f"{len(self.appearance)} images of {list(self.footage.camera_ids)} (survey stills or cameras "
                    "changed)")
        params = state["params"]
        if set(params) != set(self.scene.params) or \
                any(tuple(params[k].shape[1:]) != tuple(v.shape[1:]) for k, v in self.scene.params.items()) or \
                len({len(v) for v in params.values()}) != 1:
            return "its Gaussians have other parameters (another spherical-harmonics degree or scene layout)"
        if not 0 <= state["step"] <= self.config.steps:
            return f"it stopped at step {state['step']}, beyond this run's {self.config.steps} steps"
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of a trainer of the same footage and config (ValueError if it is not)."""
        other = self.checkpoint_mismatch(state)
        if other is not None:
            raise ValueError(f"the checkpoint cannot resume this run: {other}; pass --force to start over")
        for name, value in state["params"].items():
            self.scene.params[name] = torch.nn.Parameter(value.clone(), requires_grad=name != "dynamic")
        self.appearance = torch.nn.Parameter(state["appearance"].clone())
        self.optimizers = self._make_optimizers()
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.appearance_optimizer.load_state_dict(state["appearance_optimizer"])
        self.strategy_state = state["strategy_state"]
        self.generator.set_state(state["generator"].cpu())  # random states are CPU tensors wherever it was loaded
        if state.get("background_generator") is not None:
            self.background_generator.set_state(state["background_generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([r.cpu() for r in state["cuda_rng"]])
        self.step_idx, self.history = state["step"], list(state["history"])
        self.pruned_before_performance, self.recarved = state.get("pruned_before_performance", 0), state.get("recarved")
        if state.get("pose_change") is not None:
            self.pose_change = state["pose_change"].clone()
            self._pose_moments, self._pose_steps = state["pose_moments"].clone(), state["pose_steps"].clone()


def _is_checkpoint(state: object) -> bool:
    """Whether a loaded object has what :meth:`Trainer.state_dict` writes."""
    keys = {"step", "params", "appearance", "optimizers", "appearance_optimizer", "strategy_state", "generator",
            "torch_rng", "history"}
    return isinstance(state, dict) and keys <= set(state) and isinstance(state["params"], dict) and \
        isinstance(state["appearance"], Tensor)


def _set_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` to ``<name>.<suffix>`` beside it (``<name>.<suffix>-2``, ... if that is taken) and return the
    new path: a file set aside is kept, never deleted or overwritten."""
    target, n = path.with_name(f"{path.name}.{suffix}"), 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.{suffix}-{n}"), n + 1
    path.rename(target)
    return target


def _first_line(error: BaseException) -> str:
    """An exception as one short line: its type and the first sentence of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0].split('. ')[0][:160]}" if text else type(error).__name__


def _tell(message: str) -> None:
    """One line for the person running training, on stderr (shown also when RESHOOT_QUIET hides the progress
    bars: it is news, not progress)."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _finish_step_on_interrupt() -> Iterator[list[int]]:
    """While training, Ctrl-C (SIGINT) and SIGTERM only note themselves in the yielded list, so the step in flight
    finishes whole (a checkpoint saved mid-step could pair parameters with another step's optimiser state); a second
    one interrupts at once. Outside the main thread (where signals cannot be handled) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []

    def note(signum: int, frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
