"""How a splat scene is trained: :class:`TrainConfig` and its ``PRESETS``, the densification strategy it picks
(gsplat's ``DefaultStrategy`` or ``MCMCStrategy``), and Adam's step on some rows only (the performance phase's).

:class:`reshoot.splat.train.Trainer` runs the loop with these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor


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
    set_refine_every: int = 0
    """In the set phase (``set_fraction``), while the set is thin (fewer static Gaussians than ``thin_set`` times
    the pixels of its largest view), densify and prune every this many steps, from step ``set_refine_start``
    (0: never; off in the presets). Densification grows the set geometrically, a share per refine step, so a set
    that starts thin (a real rig whose cameras are too far apart for stereo: caliscope's set starts on 2600 SfM
    points) covers its pictures only with many refine steps: refined every 25 from step 100, caliscope's set fitted
    its cameras' static pixels at 28.4-30.0 dB after 600 steps, against 19.4-21.4 refined every 100. But what
    grows there, with nothing to say how deep it is, fogs the angles no camera filmed: Panoptic's high cameras
    reshot from four low ones fell from 14.74 to 13.35 dB (the low cameras' own fit rose 23.44 -> 23.88), so it is
    off by default. A set that starts on dense stereo (the sample: about one Gaussian per pixel of a view) is not
    thin and is never refined this way."""
    set_refine_start: int = 0
    """See ``set_refine_every``."""
    thin_set: float = 0.5
    """See ``set_refine_every``: static Gaussians per pixel of the set's largest view below which it is thin."""
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
    set_fraction: float = 0.5
    """Share of the steps, first, that train the set alone: the static Gaussians only, on the set stills and on the
    footage's static pixels (outside each frame's motion mask), so the actor never trains the set. The rest train
    the performance: the dynamic Gaussians on whole frames, against the frozen set. 0: one phase, all Gaussians on
    every pixel."""
    still_share: float = 0.5
    """In the set phase, the share of steps on set stills (when there are any); the rest are set-camera frames."""
    layered: bool = True
    """In the performance phase, draw only the dynamic Gaussians, over a cached render of the frozen set (pixels
    where the set is nearer are left out): the same result for the performance, at a fraction of a step's cost."""
    depth_weight: float = 0.1
    """With dense set geometry (depth priors): weight of the set's rendered depth against it (mean relative error
    over the pixels the prior knows), in the set phase. 0: off."""
    coverage_weight: float = 0.1
    """With depth priors: in the set phase, each step also renders the set from a pseudo view (a virtual camera
    between and above the real ones, ``pseudo_views`` of them) and adds this weight times its transparency
    (1 - alpha) where the prior draws the set: the set stays solid from angles no camera filmed. 0: off."""
    pseudo_views: int = 16
    """How many pseudo views the coverage term draws from (reconstruct makes them with the depth priors)."""
    free_space_views: int = 2
    """With depth priors: at refine steps of the set phase, remove static Gaussians that at least this many views see
    through (more than ``free_space_margin`` in front of the set's surface there). 0: off."""
    free_space_margin: float = 0.05
    """How far in front of the prior surface, relative to its depth, a Gaussian hangs in free space."""
    performance_instants: int = 8
    """At the end of the set phase, remove static Gaussians the performance was seen behind: at up to this many
    instants of each locked-off set camera, where its motion mask shows the performance and the performance's
    Gaussians (as carved: the visual hull, which only ever reaches in front of the actor) draw it, a static Gaussian
    more than ``free_space_margin`` nearer is in space the camera saw the actor through; pruned when
    ``free_space_views`` such views say so. Without dense geometry (a real rig whose cameras are too far apart for
    stereo) the set grows Gaussians along its cameras' rays at any depth, and those hang in front of the actor
    from the other cameras (Panoptic, four low cameras: 914 removed, the high cameras' guide 14.59 -> 14.74 dB, the
    low cameras' own fit 22.45 -> 23.44 dB; the sample: 61 removed, the overhead shot unchanged). 0: off."""
    camera_clearance: float = 0.03
    """Remove static Gaussians nearer a training camera than this fraction of its median scene depth (before
    training and at refine steps of the set phase): other cameras filmed its body, which from its own view would
    cover the picture (the CMU Panoptic dome's cameras, filmed by each other, fogged whole views). 0: off."""
    inconsistent_camera_db: float = 6.0
    """After the set phase, a set camera whose static pixels the set renders this many dB (PSNR, in the camera's
    own learnt colours) below the rig's median camera sits out the performance phase, with a warning naming it: its
    registration or lens disagrees with the others, and its frames would smear the performance (on a sample shoot,
    one camera registered 1 deg off fitted at 17.9 dB against 29.7-32.1 for the rest and turned the actor into a
    ghost: 15.9 dB on the actor with it, 21.7 without). Needs 3 or more set cameras and keeps at least 2; 0: off."""
    pose_refine_lr: float = 0.0
    """In the set phase, refine each set camera's and set still's pose as the set learns (a turn, in radians, and a
    shift, in scene scales, per image, by Adam at this rate, from the drawn Gaussians' gradient; the first camera
    stays where registration put it, as the world's anchor), from step ``pose_refine_start``. The refined poses
    train the performance phase too. 0: off."""
    pose_refine_start: int = 100
    """See ``pose_refine_lr``: the set is too rough to say where a camera is before this step."""
    random_background: bool = False
    """In the set phase, draw each training view over a random colour instead of black (nerfstudio's splatfacto
    does so by default): a picture's pixel is a surface, so the set must cover it fully; over black, partly
    transparent Gaussians can learn brighter colours that are right only with black behind them."""
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse a schedule that cannot train, naming the reconstruct flag where there is one."""
        if self.strategy not in ("default", "mcmc"):
            raise ValueError(f"--strategy must be 'default' or 'mcmc' (or 'auto'); got {self.strategy!r}")
        if self.steps < 1:
            raise ValueError(f"--steps must be at least 1; got {self.steps}")
        if self.refine_every < 1 or min(self.set_refine_every, self.set_refine_start, self.thin_set) < 0 or \
                not 0 <= self.ssim_weight <= 1 or not 0 <= self.still_share <= 1:
            raise ValueError(f"refine_every must be at least 1; set_refine_every, set_refine_start and thin_set at "
                             f"least 0; ssim_weight and still_share between 0 and 1; got {self.refine_every}, "
                             f"{self.set_refine_every}, {self.set_refine_start}, {self.thin_set}, {self.ssim_weight}, "
                             f"{self.still_share}")
        if not 0 <= self.set_fraction < 1:
            raise ValueError(f"set_fraction (reconstruct's --set-fraction) must be at least 0 and below 1 (0: one "
                             f"phase); got {self.set_fraction:g}")
        if self.set_fraction > 0 and self.strategy == "mcmc":
            raise ValueError(f"--set-fraction {self.set_fraction:g} trains the set first, which the mcmc strategy "
                             "cannot (it relocates Gaussians across the set and the performance; --strategy auto is "
                             "mcmc on a GPU): pass --set-fraction 0, or --strategy default")
        start = round(self.set_fraction * self.steps)
        if self.set_fraction > 0 and self.refine_stop <= start:
            most = math.floor(100 * (self.refine_stop - 1) / self.steps) / 100
            use = f"--set-fraction {most:g} or less" if most > 0 else "--set-fraction 0"
            raise ValueError(f"--set-fraction {self.set_fraction:g} starts the performance phase at step {start} of "
                             f"{self.steps}, after densification stops (step {self.refine_stop}): the performance "
                             f"would never densify; use {use}")


PRESETS = {
    # 600 steps on the set, then 1800 on the performance (cheaper steps: the dynamic Gaussians over the cached set;
    # 1800 rather than 1200 gave the actor +0.2 to +0.6 dB on three sample shoots for about a minute more)
    "fast": TrainConfig(steps=2400, refine_start=225, refine_stop=2000, sh_degree_every=450, set_fraction=0.25),
    "quality": TrainConfig(steps=30000, sh_degree_every=1000, refine_start=500, refine_stop=15000, reset_every=3000,
                           checkpoint_every=2000, set_fraction=0.3),
}


@torch.no_grad()
def _adam_step(optimizer: torch.optim.Adam, rows: Tensor | None) -> None:
    """``optimizer.step()`` (one parameter), or Adam's update of only ``rows`` [R] of it: the same maths for those
    rows, the others left as they are (their state too), for a fraction of the work when few rows learn."""
    group = optimizer.param_groups[0]
    param = group["params"][0]
    state = optimizer.state.get(param)
    if rows is None or param.grad is None or not state:
        optimizer.step()
        return
    beta1, beta2 = group["betas"]
    state["step"] += 1
    step = float(state["step"])
    grad = param.grad.index_select(0, rows)
    exp_avg = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
    update = param.data.index_select(0, rows).addcdiv_(exp_avg, denom, value=-group["lr"] / (1 - beta1 ** step))
    param.data.index_copy_(0, rows, update)
    state["exp_avg"].index_copy_(0, rows, exp_avg)
    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)


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
