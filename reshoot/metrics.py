"""Image quality figures: PSNR and SSIM (also the SSIM term of the training loss), over a whole image or a region.

Images are float tensors in [0, 1], channels last: ``[H, W, 3]`` or a batch ``[B, H, W, 3]``.
SSIM follows Wang et al. 2004 as 3DGS uses it: an 11x11 Gaussian window of sigma 1.5, C1 = 0.01^2,
C2 = 0.03^2, computed per channel and averaged ("valid" borders are not dropped: the window is zero-padded,
as in 3DGS's training loss).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(image: Tensor, reference: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of ``image`` against ``reference`` (both in [0, 1]).

    Args:
        mask: optional [..., H, W] bool/float; only those pixels count.
    """
    _check_pair(image, reference)
    err = (image.float() - reference.float()) ** 2
    if mask is not None:
        weight = mask.float()[..., None].expand_as(err)
        mse = (err * weight).sum() / weight.sum().clamp_min(1.0)
    else:
        mse = err.mean()
    return float(10.0 * math.log10(1.0 / max(float(mse), 1e-12)))


def colour_matched(images: list[Tensor], references: list[Tensor], stride: int = 4) -> list[Tensor]:
    """The images through the one affine colour map (3x4, least squares over every image's pixels, every
    ``stride``-th in each direction) that brings them closest to their references, clamped to [0, 1].

    For scoring a camera whose white balance and exposure differ from the colours a scene renders in (a camera it
    never trained on): the map has 12 numbers for the whole shot, so it corrects the camera's colour response, not
    the scene's geometry (as the colour-corrected metrics of Mip-NeRF 360's raw scenes).
    """
    if len(images) != len(references) or not images:
        raise ValueError(f"colour_matched needs as many references as images (and at least one); got {len(images)} "
                         f"and {len(references)}")
    x = torch.cat([i[::stride, ::stride].reshape(-1, 3) for i in images]).double()
    y = torch.cat([r[::stride, ::stride].reshape(-1, 3) for r in references]).double()
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    colour = torch.linalg.lstsq(x1, y).solution  # [4, 3]
    return [(i.double() @ colour[:3] + colour[3]).clamp(0, 1).to(i.dtype) for i in images]


def flicker(frames: Tensor, reference: Tensor | None = None) -> float:
    """Temporal flicker of a shot ``[F, H, W, 3]`` in [0, 1], in 8-bit levels (0-255).

    Without ``reference``: the mean absolute change from one frame to the next. With ``reference`` (the true shot,
    same shape): the mean absolute difference between the two shots' frame-to-frame changes, so motion that really
    happened costs nothing and only change the truth does not have (flicker, popping, swimming) counts.
    """
    if frames.dim() != 4 or frames.shape[0] < 2 or (reference is not None and reference.shape != frames.shape):
        raise ValueError(f"flicker: expected [F >= 2, H, W, 3] frames (and a reference of the same shape); got "
                         f"{list(frames.shape)}" + ("" if reference is None else f" and {list(reference.shape)}"))
    change = frames[1:].float() - frames[:-1].float()
    if reference is not None:
        change = change - (reference[1:].float() - reference[:-1].float())
    return float(change.abs().mean()) * 255.0


def ssim(image: Tensor, reference: Tensor, window: int = 11, sigma: float = 1.5, mask: Tensor | None = None) -> Tensor:
    """Mean structural similarity (a scalar tensor, differentiable).

    Args:
        mask: optional [..., H, W] bool/float; the SSIM map is averaged over those pixels only (the window still
            sees their neighbours).
    """
    value = ssim_map(image, reference, window, sigma)
    if mask is None:
        return value.mean()
    weight = mask.to(value.dtype).expand_as(value)
    return (value * weight).sum() / weight.sum().clamp_min(1.0)


def ssim_map(image: Tensor, reference: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel structural similarity, averaged over the channels.  # [H, W] or [B, H, W], as the input"""
    _check_pair(image, reference)
    x = _as_nchw(image)
    y = _as_nchw(reference)
    channels = x.shape[1]
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window).contiguous()

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, kernel, padding=window // 2, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sigma_x = blur(x * x) - mu_x**2
    sigma_y = blur(y * y) - mu_y**2
    sigma_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    value = value.mean(dim=1)  # [B, H, W]
    return value[0] if image.dim() == 3 else value


def region_scores(image: Tensor, reference: Tensor, actor: Tensor | None = None) -> dict[str, float | None]:
    """PSNR (dB) and SSIM of one image ``[H, W, 3]`` against its reference over the whole frame, the set and the actor.

    ``actor``: ``[H, W]`` bool, where the actor is; the set is every other pixel. A region's PSNR is over its pixels
    only (squared error averaged over them and the channels); its SSIM is the SSIM map averaged over them. Without
    ``actor`` the set and actor figures are None, and so is a region with no pixels in this image.
    """
    _check_pair(image, reference)
    if actor is not None and tuple(actor.shape) != tuple(image.shape[:-1]):
        raise ValueError(f"region_scores: the actor mask must be {list(image.shape[:-1])} (the image's height and "
                         f"width); got {list(actor.shape)}")
    with torch.no_grad():
        similarity = ssim_map(image, reference)
        scores: dict[str, float | None] = {"psnr_db": psnr(image, reference), "ssim": float(similarity.mean())}
        for name, region in (("set", None if actor is None else ~actor.bool()),
                             ("actor", None if actor is None else actor.bool())):
            present = region is not None and bool(region.any())
            scores[f"{name}_psnr_db"] = psnr(image, reference, region) if present else None
            scores[f"{name}_ssim"] = float(similarity[region].mean()) if present else None
        scores["actor_fraction"] = None if actor is None else float(actor.float().mean())
    return scores


def _as_nchw(image: Tensor) -> Tensor:
    image = image.float()
    if image.dim() == 3:
        image = image[None]
    return image.permute(0, 3, 1, 2)


def _check_pair(image: Tensor, reference: Tensor) -> None:
    if image.shape != reference.shape or image.dim() not in (3, 4) or image.shape[-1] not in (1, 3):
        raise ValueError(f"images must both be [H, W, 3] or [B, H, W, 3] and the same shape; got "
                         f"{list(image.shape)} and {list(reference.shape)}")
