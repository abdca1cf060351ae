"""The dynamic splat scene: static Gaussians for the set, and Gaussians that live and move over the shot.

The model follows Spacetime Gaussians (Li et al., CVPR 2024), cut down to what a few locked-off cameras
can constrain. Every Gaussian has the usual 3DGS parameters; a *dynamic* one also has

- a time centre ``t_c`` and a temporal scale ``s_t``: its opacity is ``sigmoid(opacity) * exp(-((t - t_c) /
  s_t)^2)``, so it exists only around its instant;
- polynomial motion about ``t_c``: ``mean(t) = mean + v (t - t_c) + a (t - t_c)^2``;
- a linear rotation change: ``quat(t) = normalise(quat + w (t - t_c))``.

Static Gaussians ignore all of those (their ``dynamic`` flag is 0). Time ``t`` is the shot's normalised
time: 0 at the first frame, 1 at the last (as nerfstudio's ``time``).

Why this model: the actor is seen by each camera at every frame, so each instant has its own visual hull
to start Gaussians from (see ``reshoot.splat.init``); short-lived Gaussians that may drift a little about
their instant render the actor where the footage shows it, without the smearing a single deformation
field shows when only four views constrain it, and cost nothing at instants where they are invisible.

Parameters live in a ``torch.nn.ParameterDict`` with gsplat's names (``means``, ``quats``, ``scales``,
``opacities``, ``sh0``, ``shN``) plus ``times``, ``time_scales``, ``velocities``, ``accels``,
``omegas`` and the non-trainable ``dynamic`` flag, so gsplat's densification strategies split, clone and
prune all of them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814  # the degree-0 spherical-harmonic constant: colour = 0.5 + SH_C0 * sh0
MIN_TIME_SCALE = 1e-3

#: parameter name -> trailing shape (after the Gaussian axis); K = (sh_degree + 1) ** 2
PARAM_SHAPES = {"means": (3,), "quats": (4,), "scales": (3,), "opacities": (), "sh0": (1, 3),
                "times": (), "time_scales": (), "velocities": (3,), "accels": (3,), "omegas": (4,), "dynamic": ()}


@dataclass(frozen=True)
class GaussiansAt:
    """The scene's Gaussians evaluated at one instant, ready for ``rasterization`` (activated values)."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz, normalised
    scales: Tensor  # [N, 3] world units
    opacities: Tensor  # [N] in [0, 1], temporal fade included
    colors: Tensor  # [N, K, 3] SH coefficients
    sh_degree: int

    def __len__(self) -> int:
        return self.means.shape[0]


class DynamicScene(torch.nn.Module):
    """Static and dynamic Gaussians (see the module docstring); ``params`` is the gsplat-style ParameterDict."""

    def __init__(self, params: dict[str, Tensor], sh_degree: int = 3) -> None:
        super().__init__()
        check_params(params, sh_degree)
        self.sh_degree = sh_degree
        self.params = torch.nn.ParameterDict({
            name: torch.nn.Parameter(value.detach().clone().float(), requires_grad=name != "dynamic")
            for name, value in params.items()})

    def __len__(self) -> int:
        return self.params["means"].shape[0]

    @property
    def num_dynamic(self) -> int:
        return int(self.params["dynamic"].sum().item())

    def visible_at(self, t: float, min_opacity: float = 1.0 / 255.0, part: str = "all") -> Tensor:
        """Indices of the Gaussians whose opacity at time ``t`` reaches ``min_opacity`` (no gradient), of ``part``:
        "all", "static" (the set) or "dynamic" (the performance).  # [M]"""
        with torch.no_grad():
            p = self.params
            dt = (t - p["times"]) / p["time_scales"].exp().clamp_min(MIN_TIME_SCALE)
            opacity = torch.sigmoid(p["opacities"]) * torch.where(p["dynamic"] > 0, torch.exp(-dt * dt), 1.0)
            keep = opacity >= min_opacity
            if part != "all":
                if part not in ("static", "dynamic"):
                    raise ValueError(f"part must be 'all', 'static' or 'dynamic'; got {part!r}")
                keep &= (p["dynamic"] > 0) == (part == "dynamic")
            return torch.nonzero(keep).squeeze(1)

    def at(self, t: float, active_sh_degree: int | None = None, index: Tensor | None = None) -> GaussiansAt:
        """The Gaussians at normalised shot time ``t``: all of them, or those at ``index`` [M] (cheaper)."""
        degree = self.sh_degree if active_sh_degree is None else min(active_sh_degree, self.sh_degree)
        p = self.params

        def take(value: Tensor) -> Tensor:  # index_select: its backward adds rows, cheaper than indexing's
            return value if index is None else value.index_select(0, index)

        dynamic = take(p["dynamic"])
        means, quats = take(p["means"]), take(p["quats"])
        opacities = torch.sigmoid(take(p["opacities"]))
        colors = torch.cat([take(p["sh0"]), take(p["shN"][:, :(degree + 1) ** 2 - 1])], dim=1)
        if bool((dynamic > 0).any()):  # motion: static Gaussians (dt = 0) stay out of it, and out of its backward
            dt = (t - take(p["times"])) * dynamic  # [M]; 0 for static Gaussians
            means = means + take(p["velocities"]) * dt[:, None] + take(p["accels"]) * (dt * dt)[:, None]
            quats = quats + take(p["omegas"]) * dt[:, None]
            fade = torch.exp(-(dt / take(p["time_scales"]).exp().clamp_min(MIN_TIME_SCALE)) ** 2)
            opacities = opacities * torch.where(dynamic > 0, fade, torch.ones_like(fade))
        return GaussiansAt(means, F.normalize(quats, dim=-1), torch.exp(take(p["scales"])), opacities, colors, degree)

    def dynamic_centre(self, t: float, min_opacity: float = 0.3) -> np.ndarray:
        """Where the moving things are at time ``t``: the opacity-weighted median position of the dynamic Gaussians
        at least ``min_opacity`` opaque then (NaNs when there are none).  # [3]"""
        with torch.no_grad():
            index = torch.nonzero(self.params["dynamic"] > 0).squeeze(1)
            g = self.at(t, 0, index)
            keep = g.opacities >= min_opacity
            if not keep.any():
                return np.full(3, np.nan)
            means, weights = g.means[keep].cpu().double().numpy(), g.opacities[keep].cpu().double().numpy()
        order = np.argsort(means, axis=0)
        cumulative = np.cumsum(weights[order], axis=0)
        middle = np.argmax(cumulative >= cumulative[-1] / 2, axis=0)
        return np.array([means[order[middle[k], k], k] for k in range(3)])

    def static_part(self) -> dict[str, Tensor]:
        """The static Gaussians' 3DGS parameters, detached, named as ``reshoot.splat.ply`` writes them."""
        keep = self.params["dynamic"] == 0
        p = self.params
        return {"means": p["means"][keep].detach(), "quats": F.normalize(p["quats"][keep].detach(), dim=-1),
                "scales_log": p["scales"][keep].detach(), "opacities_logit": p["opacities"][keep].detach(),
                "sh0": p["sh0"][keep].detach(), "shN": p["shN"][keep].detach()}

    def instant(self, t: float, min_opacity: float = 1.0 / 255.0) -> dict[str, Tensor]:
        """The scene frozen at time ``t`` as plain 3DGS parameters (as ``reshoot.splat.ply`` writes them), the
        Gaussians invisible then dropped."""
        with torch.no_grad():
            g = self.at(t)
            keep = g.opacities >= min_opacity
            return {"means": g.means[keep], "quats": g.quats[keep], "scales_log": torch.log(g.scales[keep]),
                    "opacities_logit": torch.logit(g.opacities[keep].clamp(1e-6, 1 - 1e-6)),
                    "sh0": self.params["sh0"][keep].detach(), "shN": self.params["shN"][keep].detach()}


def make_params(means: Tensor, rgb: Tensor, scales: Tensor, sh_degree: int, times: Tensor | None = None,
                time_scale: float = 0.05, opacity: float = 0.1) -> dict[str, Tensor]:
    """Fresh parameters for Gaussians at ``means`` [N, 3] with colours ``rgb`` [N, 3] in [0, 1] and world
    ``scales`` [N] (isotropic); with ``times`` [N] they are dynamic Gaussians centred on those instants."""
    n = means.shape[0]
    k = (sh_degree + 1) ** 2
    dynamic = times is not None
    return {
        "means": means.float(), "quats": torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
        "scales": torch.log(scales.float().clamp_min(1e-7))[:, None].repeat(1, 3),
        "opacities": torch.full((n,), math.log(opacity / (1 - opacity))),
        "sh0": ((rgb.float() - 0.5) / SH_C0)[:, None, :], "shN": torch.zeros(n, k - 1, 3),
        "times": times.float() if dynamic else torch.zeros(n),
        "time_scales": torch.full((n,), math.log(time_scale)), "velocities": torch.zeros(n, 3),
        "accels": torch.zeros(n, 3), "omegas": torch.zeros(n, 4), "dynamic": torch.full((n,), float(dynamic))}


def concat_params(*parts: dict[str, Tensor]) -> dict[str, Tensor]:
    """Several parameter sets as one (e.g. static then dynamic)."""
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def check_params(params: dict[str, Tensor], sh_degree: int) -> None:
    """Every parameter present, with one row per Gaussian and the right trailing shape."""
    shapes = {**PARAM_SHAPES, "shN": ((sh_degree + 1) ** 2 - 1, 3)}
    missing = sorted(set(shapes) - set(params))
    if missing:
        raise ValueError(f"scene parameters lack {missing}; make them with make_params()")
    n = params["means"].shape[0]
    for name, trailing in shapes.items():
        if tuple(params[name].shape) != (n, *trailing):
            raise ValueError(f"scene parameter {name!r} must have shape {[n, *trailing]}, got {list(params[name].shape)}")
