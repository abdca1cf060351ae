"""The one door to gsplat's private pure-torch helpers (``gsplat.cuda._torch_impl``, gsplat 1.5.x).

gsplat ships torch twins of its CUDA projection and spherical-harmonics kernels. They run on any
device and autograd differentiates them, so the CPU rasterizer (:mod:`reshoot.splat.rasterize`)
builds its projection from them. They are private names that may move between gsplat releases:
nothing else in reshoot imports them, and every wrapper here states the shapes it takes and gives.

Conventions (gsplat's): quaternions are wxyz and need not be normalised; ``viewmats`` are
world-to-camera 4x4 matrices with OpenCV axes (x right, y down, z forward); ``Ks`` are pixel
intrinsics whose pixel centres sit at +0.5.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gsplat.cuda import _torch_impl as _impl


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space 3D covariances ``R S S^T R^T`` of Gaussians.

    Args:
        quats: ``[..., 4]`` rotations, wxyz, normalised inside.
        scales: ``[..., 3]`` standard deviations along the rotated axes (not log-scales).

    Returns:
        ``[..., 3, 3]`` covariances.
    """
    covars, _ = _impl._quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    return covars


def world_to_cam(means: Tensor, covars: Tensor, viewmats: Tensor) -> tuple[Tensor, Tensor]:
    """Gaussians in each camera's frame.

    Args:
        means: ``[N, 3]`` world-space centres.
        covars: ``[N, 3, 3]`` world-space covariances.
        viewmats: ``[C, 4, 4]`` world-to-camera matrices.

    Returns:
        ``means_c [C, N, 3]`` and ``covars_c [C, N, 3, 3]`` in camera coordinates.
    """
    return _impl._world_to_cam(means, covars, viewmats)


def persp_proj(means_c: Tensor, covars_c: Tensor, Ks: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Pinhole (EWA) projection: ``means2d = K x / z`` and ``J Sigma J^T``.

    The Jacobian uses x/z and y/z clamped to 1.3x the field of view, as gsplat's ``persp_proj``.

    Args:
        means_c: ``[C, N, 3]`` camera-space centres (z must be non-zero).
        covars_c: ``[C, N, 3, 3]`` camera-space covariances.
        Ks: ``[C, 3, 3]`` intrinsics.
        width, height: image size in pixels (sets the clamping limits).

    Returns:
        ``means2d [C, N, 2]`` pixels and ``covars2d [C, N, 2, 2]`` (before the eps2d blur).
    """
    return _impl._persp_proj(means_c, covars_c, Ks, width, height)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate real SH colours of bands ``0..degree`` (raw values, without gsplat's +0.5).

    Args:
        degree: highest band used; ``(degree + 1) ** 2 <= K``.
        dirs: ``[..., 3]`` viewing directions (camera to Gaussian), normalised inside.
        coeffs: ``[..., K, 3]`` coefficients.

    Returns:
        ``[..., 3]`` colours.
    """
    return _impl._spherical_harmonics(degree, dirs, coeffs)


def fully_fused_projection(means: Tensor, covars: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                           eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
                           calc_compensations: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """gsplat's torch twin of its fused projection (pinhole), used as an independent check.

    Unlike the CUDA kernel it bounds radii at 3.33 sigma without the opacity-aware bound and
    ignores ``radius_clip``; means2d, conics and depths follow the same maths.

    Args:
        means: ``[N, 3]``; covars: ``[N, 3, 3]``; viewmats: ``[C, 4, 4]``; Ks: ``[C, 3, 3]``.

    Returns:
        ``radii [C, N, 2]`` int32, ``means2d [C, N, 2]``, ``depths [C, N]``, ``conics [C, N, 3]``
        (upper triangle of the inverse 2D covariance) and ``compensations [C, N]`` or None.
    """
    return _impl._fully_fused_projection(means, covars, viewmats, Ks, width, height, eps2d=eps2d,
                                         near_plane=near_plane, far_plane=far_plane,
                                         calc_compensations=calc_compensations, camera_model="pinhole")


def relocation(opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor) -> tuple[Tensor, Tensor]:
    """Torch twin of gsplat's ``relocation`` CUDA kernel (equation 9 of "3DGS as Markov Chain Monte Carlo").

    A Gaussian of opacity ``o`` split into ``n`` copies gets opacity ``1 - (1 - o) ** (1 / n)`` each and its
    scales multiplied by ``o / sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)^k / sqrt(k + 1) * o_new ** (k + 1)``,
    so that the copies together look like the original. Same arguments and results as
    ``gsplat.relocation.compute_relocation``.

    Args:
        opacities: ``[N]`` opacities (not logits).
        scales: ``[N, 3]`` scales (not logs).
        ratios: ``[N]`` copies per Gaussian, clamped in place to ``[1, n_max]`` as gsplat does.
        binoms: ``[n_max, n_max]`` binomial coefficients (MCMCStrategy's state).

    Returns:
        ``new_opacities [N]`` and ``new_scales [N, 3]``.
    """
    n_max = binoms.shape[0]
    n = ratios.clamp_(min=1, max=n_max).long()
    new_opacities = 1.0 - (1.0 - opacities) ** (1.0 / n.to(opacities.dtype))
    # terms[j, i, k] for i = 1..n_max (rows i - 1 of binoms) and k = 0..n_max - 1 (zero where k > i - 1)
    k = torch.arange(n_max, device=opacities.device, dtype=opacities.dtype)
    signs = torch.where(k % 2 == 0, 1.0, -1.0) / torch.sqrt(k + 1)
    powers = new_opacities[:, None] ** (k + 1)  # [N, n_max]
    per_i = (binoms.to(opacities)[None] * (signs * powers)[:, None, :]).sum(-1)  # [N, n_max]: i = 1..n_max
    keep = torch.arange(1, n_max + 1, device=opacities.device)[None] <= n[:, None]
    denominators = (per_i * keep).sum(-1)
    return new_opacities, scales * (opacities / denominators)[:, None]


def quat_scale_to_covar_preci(quats: Tensor, scales: Tensor, compute_covar: bool = True, compute_preci: bool = True,
                              triu: bool = False) -> tuple[Tensor | None, Tensor | None]:
    """Torch twin of ``gsplat.quat_scale_to_covar_preci`` (same arguments and results)."""
    return _impl._quat_scale_to_covar_preci(quats, scales, compute_covar, compute_preci, triu)


def enable_mcmc_on_cpu() -> None:
    """Let ``gsplat.strategy.MCMCStrategy`` run on CPU tensors.

    MCMCStrategy calls two CUDA-only functions through ``gsplat.strategy.ops``: ``compute_relocation`` and
    ``quat_scale_to_covar_preci``. This replaces those two names in that module with wrappers that call the
    torch twins above for CPU tensors and gsplat's own kernels for CUDA tensors, so CUDA runs are unchanged.
    Idempotent.
    """
    from gsplat.strategy import ops

    if getattr(ops.compute_relocation, "_reshoot_cpu_twin", False):
        return
    cuda_relocation, cuda_covar = ops.compute_relocation, ops.quat_scale_to_covar_preci

    def compute_relocation(opacities, scales, ratios, binoms):
        if opacities.is_cuda:
            return cuda_relocation(opacities, scales, ratios, binoms)
        return relocation(opacities, scales, ratios, binoms)

    def covar_preci(quats, scales, compute_covar=True, compute_preci=True, triu=False):
        if quats.is_cuda:
            return cuda_covar(quats, scales, compute_covar=compute_covar, compute_preci=compute_preci, triu=triu)
        return quat_scale_to_covar_preci(quats, scales, compute_covar, compute_preci, triu)

    compute_relocation._reshoot_cpu_twin = True
    ops.compute_relocation, ops.quat_scale_to_covar_preci = compute_relocation, covar_preci
