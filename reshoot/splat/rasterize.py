"""Gaussian rasterization on any device: gsplat's CUDA kernels on a GPU, reshoot's own elsewhere.

:func:`rasterization` has the call shape and maths of ``gsplat.rasterization`` (gsplat 1.5.3): CUDA
tensors go to gsplat; anything else runs :func:`rasterize_cpu`. On float32 CPU tensors its projection and
compositing run in compiled C++ kernels (:mod:`reshoot.splat.kernels`, ``csrc/``); otherwise, or when they
cannot be built, in the torch twin below, which the kernels are tested against. Both follow gsplat's kernels
and are differentiable: projection as ``cuda/csrc/ProjectionEWA3DGSFused.cu`` (EWA, x/z and y/z clamped to
1.3x the field of view, eps2d blur, antialiased compensation, near/far, opacity and image culling,
per-axis radii ceil(min(3.33, sqrt(2 ln(255 opacity))) sigma)); colours as ``rendering.py`` (SH along
camera-to-Gaussian directions, ``clamp_min(sh + 0.5, 0)``, depth channels); tiles as
``IntersectTile.cu``; compositing as ``RasterizeToPixels3DGSFwd.cu``/``Bwd.cu`` (front to back,
alpha = min(0.999, opacity exp(-sigma)), skipped below 1/255, a pixel stops before the Gaussian that
would take its transmittance to <= 1e-4).

On CPU, tiles are 8 pixels and keep only the Gaussians whose alpha >= 1/255 ellipse reaches them;
tiles with similar counts are batched into dense ``[tiles, pixels, Gaussians]`` blocks walked in depth
slabs (stopping when every pixel of a batch is opaque), sigma comes from one matrix product per slab,
and a hand-written backward recomputes alphas rather than storing them: time and memory follow the
Gaussian-pixel pairs that can matter. See docs/rasterizer.md.

Conventions: quats wxyz (need not be normalised); scales are standard deviations (not logs); viewmats
world-to-camera with OpenCV axes; Ks in pixels; pixel centres at +0.5.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from reshoot.splat import _gsplat_torch as gst
from reshoot.splat import kernels
from reshoot.splat.tiles import _COEF, _COLOR, _CONIC, _LOCAL, _OPACITY, DEPTH_SLAB, TilePlan, Tiles, plan_tiles

ALPHA_THRESHOLD = 1.0 / 255.0  #: pairs with a smaller alpha are skipped (gsplat's ALPHA_THRESHOLD)
MAX_ALPHA = 0.999  #: alpha is clamped to this
MIN_TRANSMITTANCE = 1e-4  #: a pixel stops before the Gaussian that would take T to this or below
RADIUS_SIGMAS = 3.33  #: the largest radius in standard deviations (gsplat's ``extend``)
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
RASTERIZE_MODES = ("classic", "antialiased")
CPU_TILE_SIZE = 8  #: tile side on CPU: 8 wastes fewer pairs on small Gaussians than gsplat's 16


def rasterization(
    means: Tensor,  # [N, 3]
    quats: Tensor | None,  # [N, 4]
    scales: Tensor | None,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D], [C, N, D], or SH [N, K, 3] / [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, radius_clip: float = 0.0, eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = True,
    tile_size: int | None = None,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: str = "RGB",  # "RGB" | "D" | "ED" | "RGB+D" | "RGB+ED"
    sparse_grad: bool = False, absgrad: bool = False,
    rasterize_mode: str = "classic",  # "classic" | "antialiased"
    channel_chunk: int = 32,
    *,
    camera_model: str = "pinhole",
    covars: Tensor | None = None,  # [N, 3, 3]
    **gsplat_options: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render Gaussians into C cameras: ``gsplat.rasterization`` on CUDA, :func:`rasterize_cpu` elsewhere.

    Arguments and results are gsplat's (see its docstring; quats wxyz, viewmats world-to-camera with
    OpenCV axes); ``gsplat_options`` (distortion, UT, distributed, ...) go to gsplat on CUDA and are
    refused elsewhere. ``tile_size`` defaults to gsplat's 16 on CUDA and to :data:`CPU_TILE_SIZE`
    elsewhere; it and ``channel_chunk`` change speed, not results.

    Returns:
        ``render_colors [C, H, W, D']`` (D' = D, 1 for "D"/"ED", D + 1 for "RGB+D"/"RGB+ED"),
        ``render_alphas [C, H, W, 1]`` and gsplat's ``meta`` dict.
    """
    if means.is_cuda:
        import gsplat  # lazy: loads (and on first use JIT-builds) the CUDA kernels

        return gsplat.rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=near_plane,
            far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d, sh_degree=sh_degree, packed=packed,
            tile_size=tile_size or 16, backgrounds=backgrounds, render_mode=render_mode, sparse_grad=sparse_grad,
            absgrad=absgrad, rasterize_mode=rasterize_mode, channel_chunk=channel_chunk,
            camera_model=camera_model, covars=covars, **gsplat_options)
    if camera_model != "pinhole":
        raise NotImplementedError(f"rasterization on {means.device.type}: camera_model must be 'pinhole' "
                                  f"(got {camera_model!r}); other lens models need CUDA (gsplat)")
    if sparse_grad:
        raise NotImplementedError(f"rasterization on {means.device.type}: sparse_grad=True needs CUDA (gsplat); "
                                  "the torch path gives dense gradients")
    used = {k: v for k, v in gsplat_options.items() if v not in (None, False)}
    if used:
        raise NotImplementedError(f"rasterization on {means.device.type}: options {sorted(used)} need CUDA "
                                  "(gsplat); the torch path supports gsplat's pinhole arguments only")
    return rasterize_cpu(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                         near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
                         sh_degree=sh_degree, packed=packed, tile_size=tile_size or CPU_TILE_SIZE,
                         backgrounds=backgrounds, render_mode=render_mode, absgrad=absgrad,
                         rasterize_mode=rasterize_mode, covars=covars)


def rasterize_cpu(
    means: Tensor,  # [N, 3]
    quats: Tensor | None,  # [N, 4]
    scales: Tensor | None,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D], [C, N, D], or SH [N, K, 3] / [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, radius_clip: float = 0.0, eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = True,
    tile_size: int = CPU_TILE_SIZE,
    backgrounds: Tensor | None = None,  # [C, D]
    render_mode: str = "RGB",  # "RGB" | "D" | "ED" | "RGB+D" | "RGB+ED"
    absgrad: bool = False,
    rasterize_mode: str = "classic",  # "classic" | "antialiased"
    covars: Tensor | None = None,  # [N, 3, 3]
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """gsplat's rasterization (pinhole, no batch dimensions) in torch ops, for CPU or any device.

    Same arguments, results and meta keys as ``gsplat.rasterization``; differentiable with respect
    to means, quats, scales (or covars), opacities, colors, backgrounds and viewmats. With
    ``packed=True`` the per-view meta entries are ``[nnz, ...]`` over visible (camera, Gaussian)
    pairs, else ``[C, N, ...]`` with ``radii == 0`` where culled (other entries there are zero).
    With ``absgrad=True`` the backward pass sets ``meta["means2d"].absgrad``.
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds,
                  render_mode, rasterize_mode, covars, tile_size)
    C, N = viewmats.shape[0], means.shape[0]
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane=near_plane,
                             far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
                             antialiased=rasterize_mode == "antialiased", covars=covars)
    meta: dict[str, Any] = {"batch_ids": None, "camera_ids": None, "gaussian_ids": None}
    if packed:
        camera_ids, gaussian_ids = torch.nonzero(proj.valid, as_tuple=True)  # row-major: by camera, then Gaussian
        meta.update(batch_ids=torch.zeros_like(camera_ids), camera_ids=camera_ids, gaussian_ids=gaussian_ids)
        entries = {k: v[camera_ids, gaussian_ids] for k, v in proj.per_view().items()}
        valid_idx = torch.arange(len(camera_ids), device=means.device)
    else:
        entries = proj.per_view()
        valid_idx = torch.nonzero(proj.valid.reshape(-1), as_tuple=True)[0]
        camera_ids, gaussian_ids = valid_idx // N, valid_idx % N
    meta.update(entries)
    n_entries = entries["depths"].numel()
    feats = entries["depths"].reshape(-1, 1)  # [M, 1] for "D" and "ED"
    if render_mode.startswith("RGB"):
        rgb = _entry_colors(colors, sh_degree, means, viewmats, camera_ids, gaussian_ids, valid_idx, n_entries)
        feats = rgb if render_mode == "RGB" else torch.cat([rgb, feats], dim=-1)
    image_ids = camera_ids if packed else torch.arange(C, device=means.device).repeat_interleave(N)
    flat = {k: v.detach().flatten(0, 0 if packed else 1) for k, v in entries.items()}  # [M, ...] entries
    plan = plan_tiles(flat["means2d"], flat["radii"], flat["depths"], image_ids, C, width, height, tile_size,
                      conics=flat["conics"], opacities=flat["opacities"])
    tiled_colors, tiled_alphas = _Composite.apply(entries["means2d"], entries["conics"], entries["opacities"],
                                                  feats, plan, absgrad)
    render_colors, render_alphas = plan.untile(tiled_colors), plan.untile(tiled_alphas)
    if backgrounds is not None and render_mode not in ("D", "ED"):
        bg = backgrounds if render_mode == "RGB" else torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], -1)
        render_colors = render_colors + (1.0 - render_alphas) * bg[:, None, None, :]
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat([render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)],
                                  dim=-1)
    meta.update(plan.meta(C, N if not packed else None), width=width, height=height, n_batches=1, n_cameras=C)
    return render_colors, render_alphas, meta


@dataclass
class Projection:
    """Gaussians projected into C cameras (dense, ``[C, N, ...]``); culled entries have radii 0."""

    radii: Tensor  # [C, N, 2] int32, pixels per axis; 0 where culled
    means2d: Tensor  # [C, N, 2] pixels
    depths: Tensor  # [C, N] camera z
    conics: Tensor  # [C, N, 3] upper triangle of the inverse blurred 2D covariance (a, b, c)
    opacities: Tensor  # [C, N] opacities (times the compensation when antialiased)
    valid: Tensor  # [C, N] bool

    def per_view(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("radii", "means2d", "depths", "conics", "opacities")}


def project_gaussians(means: Tensor, quats: Tensor | None, scales: Tensor | None, opacities: Tensor,
                      viewmats: Tensor, Ks: Tensor, width: int, height: int, *, near_plane: float = 0.01,
                      far_plane: float = 1e10, radius_clip: float = 0.0, eps2d: float = 0.3,
                      antialiased: bool = False, covars: Tensor | None = None) -> Projection:
    """gsplat's fused EWA projection (``ProjectionEWA3DGSFused.cu``) in differentiable torch ops.

    Args: means ``[N, 3]``, quats ``[N, 4]`` and scales ``[N, 3]`` (or covars ``[N, 3, 3]``),
    opacities ``[N]``, viewmats ``[C, 4, 4]``, Ks ``[C, 3, 3]``.
    """
    compiled = None if covars is not None or viewmats.requires_grad else kernels.kernels_for(means)
    if compiled is not None:  # the compiled twin of the lines below
        means2d, cov2d, depths = _Project.apply(means, quats, scales, viewmats, Ks, width, height, near_plane,
                                                far_plane, compiled)
        xx, xy, yy = cov2d.unbind(-1)
        in_depth = (depths >= near_plane) & (depths <= far_plane)
    else:
        if covars is None:
            covars = gst.quat_scale_to_covar(quats, scales)  # [N, 3, 3]
        means_c, covars_c = gst.world_to_cam(means, covars, viewmats)  # [C, N, 3], [C, N, 3, 3]
        depths = means_c[..., 2]
        in_depth = (depths >= near_plane) & (depths <= far_plane)
        unit_z = torch.zeros_like(means_c[:1, :1]).index_fill_(-1, torch.tensor([2], device=means.device), 1.0)
        means_c = torch.where(in_depth[..., None], means_c, unit_z)  # culled ones never divide by a zero z
        means2d, cov = gst.persp_proj(means_c, covars_c, Ks, width, height)
        xx, xy, yy = cov[..., 0, 0], (cov[..., 0, 1] + cov[..., 1, 0]) / 2.0, cov[..., 1, 1]
    det_orig = xx * yy - xy * xy
    xx, yy = xx + eps2d, yy + eps2d
    det = xx * yy - xy * xy
    ok = in_depth & (det > 0)
    det = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([yy / det, -xy / det, xx / det], dim=-1)
    opac = opacities[None].expand_as(depths)
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_orig / det, min=0.0))
    with torch.no_grad():
        extend = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp(max=RADIUS_SIGMAS)  # gsplat's opacity-aware bound
        var = torch.stack([xx, yy], dim=-1).clamp(min=0.0)
        radius = torch.ceil(extend[..., None] * torch.sqrt(var))  # [C, N, 2]
        ok = ok & (opac >= ALPHA_THRESHOLD) & ~((radius[..., 0] <= radius_clip) & (radius[..., 1] <= radius_clip))
        ok = ok & (means2d[..., 0] + radius[..., 0] > 0) & (means2d[..., 0] - radius[..., 0] < width)
        ok = ok & (means2d[..., 1] + radius[..., 1] > 0) & (means2d[..., 1] - radius[..., 1] < height)
        radii = torch.where(ok[..., None], radius, 0.0).to(torch.int32)

    def keep(x: Tensor) -> Tensor:  # zero the culled entries, as gsplat leaves them unused
        return torch.where(ok.reshape(ok.shape + (1,) * (x.dim() - 2)), x, torch.zeros_like(x))

    return Projection(radii, keep(means2d), keep(depths), keep(conics), keep(opac), ok)


def _entry_colors(colors: Tensor, sh_degree: int | None, means: Tensor, viewmats: Tensor, camera_ids: Tensor,
                  gaussian_ids: Tensor, valid_idx: Tensor, n_entries: int) -> Tensor:
    """Per-entry features ``[n_entries, D]``: the given colours, or SH evaluated as gsplat does."""
    per_camera = colors.dim() == (4 if sh_degree is not None else 3)
    picked = colors[camera_ids, gaussian_ids] if per_camera else colors[gaussian_ids]  # [V, D] or [V, K, 3]
    if sh_degree is not None:
        campos = torch.inverse(viewmats)[:, :3, 3]  # [C, 3]
        dirs = means[gaussian_ids] - campos[camera_ids]
        picked = torch.clamp_min(gst.spherical_harmonics(sh_degree, dirs, picked) + 0.5, 0.0)
    if len(valid_idx) == n_entries:  # packed: every entry is visible
        return picked
    return picked.new_zeros(n_entries, picked.shape[-1]).index_put((valid_idx,), picked)


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of projected Gaussians into tiles, with gsplat's backward maths."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, plan: TilePlan, absgrad: bool):
        # means2d [..., 2], conics [..., 3], opacities [...], colors [M, D]; "..." flattens to M entries
        ctx.absgrad, ctx.means2d, ctx.kernels = absgrad, means2d, kernels.kernels_for(colors)
        if ctx.kernels is not None:
            table = _table(means2d, conics, opacities, colors).detach().contiguous()
            out, alphas, last = ctx.kernels.composite_forward(
                table, plan.flatten_ids, plan.tile_keys, plan.tile_starts, plan.tile_counts,
                plan.n_images * plan.tile_width * plan.tile_height, plan.tile_size, plan.tile_width,
                plan.tile_width * plan.tile_height)
            ctx.plan = plan
            ctx.save_for_backward(means2d, conics, opacities, colors, table, alphas, last)
            ctx.mark_non_differentiable(last)
            return out, alphas
        rows = plan.rows(_table(means2d, conics, opacities, colors))
        n_tiles, P, D = plan.n_images * plan.tile_width * plan.tile_height, plan.tile_size ** 2, colors.shape[-1]
        out, alphas = colors.new_zeros(n_tiles, P, D), colors.new_zeros(n_tiles, P, 1)
        basis = plan.basis(colors.dtype)
        for batch in plan.batches:
            tiles = plan.gather(batch, rows)
            color, T = _blend_batch(tiles, basis)
            out[tiles.keys], alphas[tiles.keys] = color, (1.0 - T)[..., None]
        ctx.plan, ctx.rows = plan, rows  # rows: no grad, kept as is
        ctx.save_for_backward(means2d, conics, opacities, colors, out, alphas)
        return out, alphas

    @staticmethod
    def backward(ctx, v_out, v_alphas):
        if ctx.kernels is not None:
            return _compiled_backward(ctx, v_out, v_alphas)
        means2d, conics, opacities, colors, out, alphas = ctx.saved_tensors
        plan, rows = ctx.plan, ctx.rows
        sums = rows.new_zeros(len(rows) + 1, 6 + colors.shape[1])  # per intersection (+ a sink for padding)
        abs_grads = colors.new_zeros(len(colors), 2) if ctx.absgrad else None
        basis = plan.basis(colors.dtype)
        for batch in plan.batches:
            tiles = plan.gather(batch, rows)
            g, gA = v_out[tiles.keys], v_alphas[tiles.keys, :, 0]
            T_final = 1.0 - alphas[tiles.keys, :, 0]
            totals = (g * out[tiles.keys]).sum(-1)  # [B, P] g . colour: the later-Gaussian sums start from it
            _blend_batch_backward(tiles, basis, g, T_final * gA - totals, sums, abs_grads)
        grads = colors.new_zeros(len(colors), 6 + colors.shape[1])  # d loss / d (mean, conic, opacity, colour)
        grads.index_add_(0, plan.flatten_ids, _entry_grads(rows, sums[:-1]))
        if abs_grads is not None:
            ctx.means2d.absgrad = abs_grads.reshape(means2d.shape)
        return (grads[:, :2].reshape(means2d.shape), grads[:, 2:5].reshape(conics.shape),
                grads[:, 5].reshape(opacities.shape), grads[:, 6:], None, None)


class _Project(torch.autograd.Function):
    """The compiled EWA projection (csrc/project.cpp): means2d, cov2d (xx, xy, yy) and depths, differentiable
    with respect to means, quats and scales."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, compiled):
        args = (viewmats.detach().float().contiguous(), Ks.detach().float().contiguous(), int(width), int(height),
                float(near_plane), float(far_plane))
        inputs = (means.detach().contiguous(), quats.detach().contiguous(), scales.detach().contiguous())
        ctx.args, ctx.kernels = args, compiled
        ctx.save_for_backward(*inputs)
        return tuple(compiled.project_forward(*inputs, *args))

    @staticmethod
    def backward(ctx, v_means2d, v_cov2d, v_depths):
        v_means, v_quats, v_scales = ctx.kernels.project_backward(*ctx.saved_tensors, *ctx.args, v_means2d, v_cov2d,
                                                                  v_depths)
        return v_means, v_quats, v_scales, None, None, None, None, None, None, None


def _compiled_backward(ctx, v_out: Tensor, v_alphas: Tensor) -> tuple:
    """_Composite's backward through the compiled kernels: per intersection gradients, summed per entry."""
    means2d, conics, opacities, colors, table, alphas, last = ctx.saved_tensors
    plan = ctx.plan
    per_isect, abs_isect = ctx.kernels.composite_backward(
        table, plan.flatten_ids, plan.tile_keys, plan.tile_starts, plan.tile_counts, alphas, last, v_out, v_alphas,
        plan.tile_size, plan.tile_width, plan.tile_width * plan.tile_height, ctx.absgrad)
    grads = table.new_zeros(table.shape).index_add_(0, plan.flatten_ids, per_isect)
    if ctx.absgrad:
        ctx.means2d.absgrad = table.new_zeros(len(table), 2).index_add_(0, plan.flatten_ids, abs_isect) \
            .reshape(means2d.shape)
    return (grads[:, :2].reshape(means2d.shape), grads[:, 2:5].reshape(conics.shape),
            grads[:, 5].reshape(opacities.shape), grads[:, 6:], None, None)


def _table(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor) -> Tensor:
    """Entry parameters side by side, ``[M, 6 + D]``: mean x, y, conic a, b, c, opacity, colour."""
    return torch.cat([means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.reshape(-1, 1), colors], dim=-1)


@functools.cache
def _below(value: float, dtype: torch.dtype) -> float:
    """The largest number of ``dtype`` below ``value`` (so ``x > _below(v)`` is ``x >= v``)."""
    return float(torch.nextafter(torch.tensor(value, dtype=dtype), torch.tensor(0.0, dtype=dtype)))


def _raw_alpha(tiles: Tiles, basis: Tensor, s0: int, s1: int) -> Tensor:
    """``opacity exp(-sigma)`` ``[B, P, S]`` of depth slab ``s0:s1``, not yet clamped or thresholded (the conics
    are positive definite: gsplat's ``sigma < 0`` skip only fires on rounding and is not repeated)."""
    log2_alpha = torch.matmul(basis, tiles.rows[:, s0:s1, _COEF].transpose(1, 2))
    return log2_alpha.clamp_(min=-120.0).exp2_()  # no subnormals (slow on some CPUs); all far below 1/255


def _clamp_alpha(alpha: Tensor) -> Tensor:
    """In place: alpha = min(0.999, raw), and 0 where below 1/255 (gsplat skips those pairs)."""
    alpha.clamp_(max=MAX_ALPHA)
    return torch.nn.functional.threshold_(alpha, _below(ALPHA_THRESHOLD, alpha.dtype), 0.0)


def _transmittance(alpha: Tensor, T_all: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(T_before, cum, 1 - alpha)``, each ``[B, P, S]``: transmittance before and after each pair. ``T_all``
    ``[B, P]`` multiplies every non-skipped Gaussian so far, the one that ended the pixel included: a pair is
    blended while ``cum`` stays > 1e-4, which is gsplat's ``break``."""
    one_minus = 1.0 - alpha
    cum = torch.cumprod(one_minus, dim=-1).mul_(T_all[..., None])
    return torch.cat([T_all[..., None], cum[..., :-1]], dim=-1), cum, one_minus


def _stopped(cum: Tensor) -> Tensor | None:
    """``[B, P, S]`` 1.0 where blended, 0.0 after the pixel stopped; None when no pixel of the batch stopped."""
    if bool((cum[..., -1] > MIN_TRANSMITTANCE).all()):
        return None
    return torch.nn.functional.threshold(cum, MIN_TRANSMITTANCE, 0.0).ceil_()  # T in (1e-4, 1] -> 1


def _blend_batch(tiles: Tiles, basis: Tensor) -> tuple[Tensor, Tensor]:
    """Colour ``[B, P, D]`` (no background) and final transmittance ``[B, P]`` of a batch of tiles."""
    rows = tiles.rows
    B, K, P = rows.shape[0], rows.shape[1], basis.shape[0]
    out_t = rows.new_zeros(B, rows.shape[-1] - _COLOR.start, P)  # [B, D, P]
    T_all = rows.new_ones(B, P)
    T_final = T_all
    for s0 in range(0, K, DEPTH_SLAB):
        s1 = min(K, s0 + DEPTH_SLAB)
        alpha = _clamp_alpha(_raw_alpha(tiles, basis, s0, s1))
        T_before, cum, _ = _transmittance(alpha, T_all)
        weights = alpha.mul_(T_before)
        blended = _stopped(cum)
        if blended is None:
            T_final = cum[..., -1]
        else:  # T drops by each blended weight (a pixel stopped earlier has none left)
            T_final = T_final - weights.mul_(blended).sum(-1)
        out_t.baddbmm_(rows[:, s0:s1, _COLOR].transpose(1, 2), weights.transpose(1, 2))
        T_all = cum[..., -1]
        if bool((T_all <= MIN_TRANSMITTANCE).all()):
            break
    return out_t.transpose(1, 2), T_final


def _blend_batch_backward(tiles: Tiles, basis: Tensor, g: Tensor, base: Tensor, sums: Tensor,
                          abs_grads: Tensor | None) -> None:
    """One tile batch's backward (gsplat's ``RasterizeToPixels3DGSBwd.cu``): per intersection, the pixel sums
    of -d loss/d sigma times (u^2, uv, v^2, u, v, 1) and of d loss/d colour go to ``sums [n_isects + 1, 6 + D]``.

    g ``[B, P, D]``: gradient of the colours; base ``[B, P]``: T_final * (alpha gradient) - g . colour, so
    d loss / d alpha_i = T_i g.c_i + (base + g.(colour of i and those in front)) / (1 - alpha_i).
    """
    rows = tiles.rows
    B, K, P = rows.shape[0], rows.shape[1], basis.shape[0]
    T_all, front = rows.new_ones(B, P), rows.new_zeros(B, P)
    basis_t, g_t = basis.T.contiguous(), g.transpose(1, 2)  # [6, P], [B, D, P]
    for s0 in range(0, K, DEPTH_SLAB):
        s1 = min(K, s0 + DEPTH_SLAB)
        raw = _raw_alpha(tiles, basis, s0, s1)
        alpha = _clamp_alpha(raw.clone())
        live = torch.nn.functional.threshold(raw, _below(ALPHA_THRESHOLD, raw.dtype), 0.0)  # raw where blended
        if bool((rows[:, s0:s1, _OPACITY] > MAX_ALPHA).any()):  # clamped alphas pass no gradient to sigma, opacity
            live.sub_(torch.nn.functional.threshold(raw, MAX_ALPHA, 0.0))
        T_before, cum, one_minus = _transmittance(alpha, T_all)
        weights = alpha.mul_(T_before)
        blended = _stopped(cum)
        if blended is not None:
            weights.mul_(blended)
            live.mul_(blended)
        g_dot_c = torch.bmm(g, rows[:, s0:s1, _COLOR].transpose(1, 2))  # [B, P, S]
        through = torch.mul(weights, g_dot_c).cumsum_(-1).add_(front[..., None])
        front = through[..., -1].clone()
        v_alpha = through.add_(base[..., None]).div_(one_minus).add_(T_before.mul_(g_dot_c))
        v_raw = live.mul_(v_alpha)  # raw * d loss / d alpha = -d loss / d sigma
        moments = torch.matmul(basis_t, v_raw).transpose(1, 2)  # [B, S, 6]
        v_colors = torch.bmm(g_t, weights).transpose(1, 2)  # [B, S, D]
        slots = tiles.slots[:, s0:s1].reshape(-1)
        sums.index_copy_(0, slots, torch.cat([moments, v_colors], -1).reshape(len(slots), -1))
        if abs_grads is not None:
            _add_abs_grads(tiles, basis_t, s0, s1, v_raw, abs_grads)
        T_all = cum[..., -1]
        if bool((T_all <= MIN_TRANSMITTANCE).all()):
            break


def _entry_grads(rows: Tensor, sums: Tensor) -> Tensor:
    """Per intersection gradients ``[n, 6 + D]`` (mean, conic, opacity, colour) from its ``rows [n, 12 + D]`` and
    ``sums [n, 6 + D]``: pixel sums of -d loss/d sigma times (u^2, uv, v^2, u, v, 1), and of d loss/d colour.

    With dx = mu - u, dy = mv - v (mean minus pixel, as gsplat), d sigma / d mean = (a dx + b dy, b dx + c dy)
    and d sigma / d conic = (dx^2 / 2, dx dy, dy^2 / 2); the sums over pixels expand into the moments.
    """
    m_uu, m_uv, m_vv, m_u, m_v, m_1 = (-sums[:, :6]).unbind(1)  # sums of d loss / d sigma times the monomials
    mu, mv = rows[:, _LOCAL].unbind(-1)
    a, b, c = rows[:, _CONIC].unbind(-1)
    op = rows[:, _OPACITY]
    sx, sy = mu * m_1 - m_u, mv * m_1 - m_v  # sums of d loss / d sigma * dx, * dy
    sxx = mu * mu * m_1 - 2 * mu * m_u + m_uu
    sxy = mu * mv * m_1 - mu * m_v - mv * m_u + m_uv
    syy = mv * mv * m_1 - 2 * mv * m_v + m_vv
    v_opacity = -m_1 / torch.where(op > 0, op, 1.0)  # sum of exp(-sigma) d loss / d alpha
    entry = torch.stack([a * sx + b * sy, b * sx + c * sy, 0.5 * sxx, sxy, 0.5 * syy, v_opacity], dim=-1)
    return torch.cat([entry, sums[:, 6:]], dim=-1)


def _add_abs_grads(tiles: Tiles, basis_t: Tensor, s0: int, s1: int, v_raw: Tensor, abs_grads: Tensor) -> None:
    """absgrad (AbsGS): sums over pixels of |d loss / d mean| per pixel, ``[M, 2]``."""
    rows = tiles.rows[:, None, s0:s1]
    dx = rows[..., 6] - basis_t[3][None, :, None]  # [B, P, S]
    dy = rows[..., 7] - basis_t[4][None, :, None]
    a, b, c = rows[..., _CONIC].unbind(-1)
    v = v_raw.abs()
    sums = torch.stack([(a * dx + b * dy).abs_().mul_(v).sum(1), (b * dx + c * dy).abs_().mul_(v).sum(1)], -1)
    abs_grads.index_add_(0, tiles.ids[:, s0:s1].reshape(-1), sums.reshape(-1, 2))


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds,
                  render_mode, rasterize_mode, covars, tile_size) -> None:
    """Raise ValueError naming the argument, the expected and the actual shape."""
    def check(name: str, tensor: Tensor, ok: bool, expected: str) -> None:
        if not ok:
            raise ValueError(f"rasterization: `{name}` must have shape {expected}, got {list(tensor.shape)}")

    check("means", means, means.dim() == 2 and means.shape[-1] == 3, "[N, 3] (batch dimensions are CUDA-only)")
    check("viewmats", viewmats, viewmats.dim() == 3 and viewmats.shape[1:] == (4, 4), "[C, 4, 4]")
    N, C = means.shape[0], viewmats.shape[0]
    if covars is None and (quats is None or scales is None):
        raise ValueError("rasterization: give `quats` and `scales`, or `covars`")
    shapes = {"opacities": (opacities, (N,)), "Ks": (Ks, (C, 3, 3))}
    shapes.update({"covars": (covars, (N, 3, 3))} if covars is not None else
                  {"quats": (quats, (N, 4)), "scales": (scales, (N, 3))})
    for name, (tensor, shape) in shapes.items():
        check(name, tensor, tuple(tensor.shape) == shape, str(list(shape)))
    extra = 0 if sh_degree is None else 1  # SH coefficients have one more dimension
    per_gauss = colors.dim() == 2 + extra and colors.shape[0] == N
    per_view = colors.dim() == 3 + extra and colors.shape[:2] == (C, N)
    if sh_degree is None:
        check("colors", colors, per_gauss or per_view, f"[N, D] or [C, N, D] with N={N}, C={C} (or give sh_degree)")
    else:
        K = (sh_degree + 1) ** 2
        check("colors", colors, (per_gauss or per_view) and colors.shape[-1] == 3 and colors.shape[-2] >= K,
              f"[N, K, 3] or [C, N, K, 3] SH coefficients with N={N}, C={C}, K >= (sh_degree + 1) ** 2 = {K}")
    if backgrounds is not None:
        D = 3 if sh_degree is not None else colors.shape[-1]
        check("backgrounds", backgrounds, tuple(backgrounds.shape) == (C, D), f"[C, D] = [{C}, {D}]")
    if render_mode not in RENDER_MODES or rasterize_mode not in RASTERIZE_MODES:
        raise ValueError(f"rasterization: render_mode must be one of {RENDER_MODES} (got {render_mode!r}) and "
                         f"rasterize_mode one of {RASTERIZE_MODES} (got {rasterize_mode!r})")
    if int(width) <= 0 or int(height) <= 0 or int(tile_size) <= 0:
        raise ValueError(f"rasterization: width, height, tile_size must be positive; got {width}, {height}, "
                         f"{tile_size}")
