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
