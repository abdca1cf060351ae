"""Training a dynamic splat scene on a shot's footage, and rendering it from any camera at any instant.

The loop is 3DGS's (Kerbl et al. 2023) as gsplat's ``examples/simple_trainer.py`` runs it: one image a step,
loss ``(1 - w) * L1 + w * (1 - SSIM)``, Adam per parameter, means' learning rate decaying exponentially,
spherical-harmonic degree raised step by step, densify and prune with gsplat's ``DefaultStrategy``. Added:

- time: each step picks a camera and an instant and renders the scene *at that instant*; Gaussians
  invisible then are culled before rasterization, and their indices mapped back for the strategy;
- per-camera appearance: a 3x4 colour matrix per training camera (exposure, white balance), fixed at the
  identity for the first (the colour reference, so the scene's colours cannot drift) and for any camera not
  trained on;
- checkpoints every ``checkpoint_every`` steps, and a resume from the latest.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reshoot.atomic import atomic_write_bytes
from reshoot.cameras import Cameras
from reshoot.metrics import psnr, ssim
from reshoot.progress import StepProgress
from reshoot.splat.data import ShotFootage
from reshoot.splat.rasterize import rasterization
from reshoot.splat.scene import DynamicScene


@dataclass(frozen=True)
class TrainConfig:
    """How the scene is trained (see ``PRESETS``)."""

    steps: int = 1200
    """Training steps (one image each)."""
    ssim_weight: float = 0.2
    """Weight of the (1 - SSIM) term in the loss; the rest is L1."""
    sh_degree_every: int = 300
    """Raise the colours' spherical-harmonic degree by one every this many steps."""
    lr_means: float = 1.6e-4
    """Learning rate of the positions (times the scene scale), decaying to 1 % of it by the last step."""
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    lr_motion: float = 8e-4
    """Learning rate of dynamic Gaussians' velocities and accelerations (times the scene scale)."""
    lr_times: float = 1e-4
    lr_time_scales: float = 5e-3
    lr_appearance: float = 1e-3
    refine_start: int = 150
    """Densify and prune from this step ..."""
    refine_stop: int = 1000
    """... to this one ..."""
    refine_every: int = 100
    """... every this many steps."""
    reset_every: int = 100000
    """Reset opacities every this many steps (3DGS: 3000; off in short runs)."""
    grow_grad2d: float = 2e-4
    """Densify Gaussians whose mean screen-space gradient exceeds this (gsplat's default)."""
    prune_opacity: float = 0.005
    appearance: bool = True
    """Learn a colour correction per training camera."""
    prune_scale3d: float = 0.1
    """Prune Gaussians larger than this times the scene scale (at refine steps): a novel view far from the
    cameras sees them as fog. (gsplat's DefaultStrategy only does this after an opacity reset.)"""
    max_gaussians: int = 400_000
    """Stop densifying beyond this many Gaussians (memory and CPU time); MCMC's ``cap_max``."""
    strategy: Literal["default", "mcmc"] = "default"
    """gsplat's densification strategy: ``default`` (3DGS: clone, split, prune by gradient and opacity) or ``mcmc``
    (3DGS as Markov Chain Monte Carlo: relocate dead Gaussians, add 5 % per refine step up to ``max_gaussians``,
    noise on positions; gsplat's CUDA kernels on GPU, their torch twins on CPU)."""
    opacity_reg: float = 0.01
    """MCMC only: weight of the mean opacity in the loss (gsplat's simple_trainer value)."""
    scale_reg: float = 0.01
    """MCMC only: weight of the mean scale in the loss (gsplat's simple_trainer value)."""
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.refine_every < 1 or not 0 <= self.ssim_weight <= 1:
            raise ValueError(f"TrainConfig: steps and refine_every must be >= 1 and ssim_weight in [0, 1]; got "
                             f"{self.steps}, {self.refine_every}, {self.ssim_weight}")
        if self.strategy not in ("default", "mcmc"):
            raise ValueError(f"TrainConfig: strategy must be 'default' or 'mcmc'; got {self.strategy!r}")


PRESETS = {
    "fast": TrainConfig(),
    "quality": TrainConfig(steps=30000, sh_degree_every=1000, refine_start=500, refine_stop=15000, reset_every=3000,
                           checkpoint_every=2000),
}


@dataclass(frozen=True)
class RenderOutput:
    rgb: Tensor  # [H, W, 3] in [0, 1]
    alpha: Tensor  # [H, W] coverage
    depth: Tensor  # [H, W] expected depth along the optical axis (0 where alpha is 0)


def render(scene: DynamicScene, camera: Cameras, t: float, appearance: Tensor | None = None,
           background: Tensor | None = None, active_sh_degree: int | None = None,
           meta: dict | None = None) -> RenderOutput:
    """Render one camera (``Cameras`` of length 1, pinhole) at normalised shot time ``t``.

    Args:
        appearance: optional [3, 4] colour matrix applied to the result (a training camera's).
        background: [3] colour behind the Gaussians (default black).
        meta: if given, filled with the rasterizer's meta and ``"visible_ids"`` (the Gaussians drawn).
    """
    if len(camera) != 1:
        raise ValueError(f"render takes one camera; got {len(camera)} ({', '.join(camera.camera_ids)})")
    if np.any(camera.distortion != 0):
        raise ValueError(f"camera {camera.camera_ids[0]!r} has lens distortion; render pinhole cameras "
                         "(undistort first, as ShotFootage does)")
    device = scene.params["means"].device
    visible = scene.visible_at(t)
    g = scene.at(t, active_sh_degree, visible)
    width, height = (int(v) for v in camera.image_size[0])
    viewmat = torch.tensor(np.asarray(camera.world_to_camera), dtype=torch.float32, device=device)
    K = torch.tensor(np.asarray(camera.K), dtype=torch.float32, device=device)
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
    return RenderOutput(rgb, alpha, depth)


def _make_strategy(config: TrainConfig):
    """gsplat's DefaultStrategy or MCMCStrategy with this config's schedule."""
    from gsplat.strategy import DefaultStrategy, MCMCStrategy

    if config.strategy == "mcmc":
        from reshoot.splat._gsplat_torch import enable_mcmc_on_cpu

        enable_mcmc_on_cpu()  # CUDA tensors still take gsplat's kernels
        return MCMCStrategy(cap_max=config.max_gaussians, refine_start_iter=config.refine_start,
                            refine_stop_iter=config.refine_stop, refine_every=config.refine_every,
                            min_opacity=config.prune_opacity, verbose=False)
    return DefaultStrategy(prune_opa=config.prune_opacity, grow_grad2d=config.grow_grad2d,
                           refine_start_iter=config.refine_start, refine_stop_iter=config.refine_stop,
                           reset_every=config.reset_every, refine_every=config.refine_every, verbose=False)


class Trainer:
    """Trains a DynamicScene on ShotFootage; ``run()`` for the whole loop, ``step()`` for one step."""

    def __init__(self, footage: ShotFootage, scene: DynamicScene, config: TrainConfig = TrainConfig(),
                 scene_scale: float = 1.0) -> None:
        self.footage, self.scene, self.config, self.scene_scale = footage, scene, config, scene_scale
        self.step_idx = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)  # gsplat's split samples from the global generator
        device = scene.params["means"].device
        self.appearance = torch.nn.Parameter(torch.eye(3, 4, device=device).repeat(len(footage.camera_ids), 1, 1))
        self.optimizers = self._make_optimizers()
        self.strategy = _make_strategy(config)
        self.strategy.check_sanity(scene.params, self.optimizers)
        self.strategy_state = (self.strategy.initialize_state() if config.strategy == "mcmc"
                               else self.strategy.initialize_state(scene_scale=scene_scale))
        self.pairs = np.argwhere(footage.valid)  # [M, 2] (camera, instant) with a frame
        self.history: list[dict] = []

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c, s = self.config, self.scene_scale
        rates = {"means": c.lr_means * s, "scales": c.lr_scales, "quats": c.lr_quats, "opacities": c.lr_opacities,
                 "sh0": c.lr_sh0, "shN": c.lr_shN, "velocities": c.lr_motion * s, "accels": c.lr_motion * s,
                 "omegas": c.lr_quats, "times": c.lr_times, "time_scales": c.lr_time_scales}
        optimizers = {name: torch.optim.Adam([{"params": self.scene.params[name], "lr": lr, "name": name}],
                                             eps=1e-15) for name, lr in rates.items()}
        self.appearance_optimizer = torch.optim.Adam([self.appearance], lr=c.lr_appearance if c.appearance else 0.0)
        return optimizers

    def step(self) -> dict[str, float]:
        """One training step on a random (camera, instant); returns its loss and PSNR."""
        cfg = self.config
        camera_idx, instant_idx = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=self.generator))]
        device = self.scene.params["means"].device
        target = torch.as_tensor(self.footage.images[camera_idx, instant_idx], dtype=torch.float32, device=device) / 255.0
        camera = self.footage.camera_at(camera_idx, instant_idx)
        meta: dict = {}
        degree = min(self.scene.sh_degree, self.step_idx // cfg.sh_degree_every)
        out = render(self.scene, camera, float(self.footage.times[instant_idx]), self.appearance[camera_idx],
                     active_sh_degree=degree, meta=meta)
        h, w = int(camera.image_size[0, 1]), int(camera.image_size[0, 0])
        target = target[:h, :w]
        if self.footage.masks is not None:  # masked-out pixels: the target is the render itself, no error
            keep = torch.as_tensor(self.footage.masks[camera_idx, instant_idx, :h, :w], device=device)[..., None]
            target = torch.where(keep, target, out.rgb.detach())
        loss = (1 - cfg.ssim_weight) * F.l1_loss(out.rgb, target) + cfg.ssim_weight * (1 - ssim(out.rgb, target))
        if cfg.strategy == "mcmc":  # as gsplat's simple_trainer: keep opacities and scales small, so dead ones relocate
            p = self.scene.params
            loss = loss + cfg.opacity_reg * torch.sigmoid(p["opacities"]).mean() + cfg.scale_reg * p["scales"].exp().mean()
        self.strategy.step_pre_backward(self.scene.params, self.optimizers, self.strategy_state, self.step_idx, meta)
        loss.backward()
        if self.appearance.grad is not None:
            self.appearance.grad[0] = 0  # the first camera is the colour reference: the others are matched to it
        self._densify(meta)
        for optimizer in (*self.optimizers.values(), self.appearance_optimizer):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        self._decay_means_lr()
        self.step_idx += 1
        return {"loss": loss.item(), "psnr": psnr(out.rgb.detach().clamp(0, 1), target)}

    def _densify(self, meta: dict) -> None:
        """gsplat's strategy over all Gaussians, from the rasterizer's meta over the visible ones."""
        if self.config.strategy == "mcmc":
            cfg = self.config
            if cfg.refine_start < self.step_idx < cfg.refine_stop and self.step_idx % cfg.refine_every == 0:
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
        packed.grad = (means2d.grad[0][drawn] if means2d.grad is not None and not over_budget
                       else torch.zeros_like(packed))
        info = {"means2d": packed, "radii": radii[drawn], "gaussian_ids": visible[drawn], "width": meta["width"],
                "height": meta["height"], "n_cameras": 1}
        self.strategy.step_post_backward(self.scene.params, self.optimizers, self.strategy_state, self.step_idx,
                                         info, packed=True)
        cfg = self.config
        if cfg.refine_start < self.step_idx < cfg.refine_stop and self.step_idx % cfg.refine_every == 0:
            self._prune_big()
        if 0 < self.step_idx < cfg.refine_stop and self.step_idx % cfg.reset_every == 0:
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
        if prune.any():
            remove(params=p, optimizers=self.optimizers, state=self.strategy_state, mask=prune)
        return int(prune.sum())

    def _decay_means_lr(self) -> None:
        factor = 0.01 ** (1.0 / max(1, self.config.steps))
        for name in ("means", "velocities", "accels"):
            for group in self.optimizers[name].param_groups:
                group["lr"] *= factor

    def run(self, checkpoint: Path | None = None, description: str = "training", until: int | None = None) -> list[dict]:
        """Train to ``config.steps`` (or step ``until``), resuming from ``checkpoint`` if it exists and saving to it
        as it goes."""
        if checkpoint is not None and Path(checkpoint).is_file():
            self.load_state_dict(torch.load(checkpoint, weights_only=False))
        start = time.perf_counter()
        with StepProgress(description, total=self.config.steps, completed=self.step_idx) as bar:
            while self.step_idx < min(self.config.steps, until or self.config.steps):
                figures = self.step()
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
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "history": self.history, "config": asdict(self.config), "camera_ids": self.footage.camera_ids}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("config", {}).get("strategy", "default")
        if saved != self.config.strategy:
            raise ValueError(f"the checkpoint was trained with the {saved!r} densification strategy, this run uses "
                             f"{self.config.strategy!r} (--strategy auto picks by device): pass --strategy {saved}, "
                             "or --force to start over")
        for name, value in state["params"].items():
            self.scene.params[name] = torch.nn.Parameter(value.clone(), requires_grad=name != "dynamic")
        self.appearance = torch.nn.Parameter(state["appearance"].clone())
        self.optimizers = self._make_optimizers()
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.appearance_optimizer.load_state_dict(state["appearance_optimizer"])
        self.strategy_state = state["strategy_state"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step_idx, self.history = state["step"], list(state["history"])
