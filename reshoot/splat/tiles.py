"""Which Gaussians touch which tile: gsplat's ``isect_tiles`` + ``isect_offset_encode`` for the CPU rasterizer.

:func:`plan_tiles` lists, for every projected Gaussian (an *entry*: a camera and a Gaussian), the tiles of its
radius box that its alpha >= 1/255 ellipse reaches, sorted by (image, tile) with depth order kept within a tile,
and batches the tiles for the torch twin's compositing. With the compiled kernels (:mod:`reshoot.splat.kernels`)
the listing runs in C++ (``csrc/tiles.cpp``) and gives exactly the same plan. :class:`TilePlan` also lays out
what the torch twin composites (intersection rows, padded tile batches) and gsplat's tiling meta entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from reshoot.splat import kernels

PAIRS_PER_BATCH = 1 << 19  #: Gaussian-pixel pairs per compositing block (bounds memory, ~2 MB a tensor)
DEPTH_SLAB = 64  #: Gaussians per tile taken at once along depth


@dataclass
class Tiles:
    """A batch of B tiles, each with its intersections front to back, padded to K."""

    keys: Tensor  # [B] image * n_tiles + tile
    ids: Tensor  # [B, K] entry ids (0 where padding)
    slots: Tensor  # [B, K] intersection index (n_isects where padding)
    rows: Tensor  # [B, K, 12 + D] intersection rows (see TilePlan.rows); padding has alpha 0 and opacity 0


# Columns of an intersection row: sigma polynomial, mean offset from the tile centre, conic, opacity, colour.
_COEF, _LOCAL, _CONIC, _OPACITY, _COLOR = slice(0, 6), slice(6, 8), slice(8, 11), 11, slice(12, None)
_LOG2E = 1.0 / math.log(2.0)
_NEVER = -1e4  # log2 of a padding Gaussian's alpha


@dataclass
class TilePlan:
    """Which Gaussians touch which tile, depth-sorted, and how tiles are batched for compositing."""

    n_images: int
    width: int
    height: int
    tile_size: int
    tile_width: int
    tile_height: int
    flatten_ids: Tensor  # [n_isects] int64 entry ids, sorted by (image, tile, depth)
    isect_keys: Tensor  # [n_isects] int64 image * n_tiles + tile, sorted
    tile_keys: Tensor  # [T] int64 non-empty tiles, most crowded first
    tile_starts: Tensor  # [T] int64 first intersection of each tile
    tile_counts: Tensor  # [T] int64 Gaussians in each tile
    batches: list[tuple[int, int, int]]  # (first tile, end tile, max count) in tile_keys order
    tiles_per_gauss: Tensor  # [n_entries] int32
    entry_depths: Tensor  # [n_entries] detached depths (for gsplat's isect_ids)

    def basis(self, dtype: torch.dtype) -> Tensor:
        """``[P, 6]`` monomials (u^2, uv, v^2, u, v, 1) of each tile pixel's offset from the tile centre."""
        p = torch.arange(self.tile_size ** 2, device=self.flatten_ids.device)
        u = (p % self.tile_size).to(dtype) + (0.5 - self.tile_size / 2)
        v = (p // self.tile_size).to(dtype) + (0.5 - self.tile_size / 2)
        return torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)], dim=-1)

    def rows(self, table: Tensor) -> Tensor:
        """Per intersection ``[n_isects, 12 + D]``: log2(opacity exp(-sigma)) as coefficients of :meth:`basis`
        (from float64), the mean's offset from the tile centre, the conic, opacity and colour.

        Args: table ``[M, 6 + D]`` entry parameters (mean x, y, conic a, b, c, opacity, colour).
        """
        sel = table.index_select(0, self.flatten_ids)  # [n_isects, 6 + D]
        out = sel.new_empty(len(sel), 6 + sel.shape[1])
        out[:, 8:] = sel[:, 2:]
        tile, ts = self.isect_keys % (self.tile_width * self.tile_height), self.tile_size
        mu = sel[:, 0].double().sub_(((tile % self.tile_width) * ts).double().add_(ts / 2))
        mv = sel[:, 1].double().sub_(((tile // self.tile_width) * ts).double().add_(ts / 2))
        a, b, c = (sel[:, k].double() for k in (2, 3, 4))
        amu, bmv, bmu, cmv, k = a * mu, b * mv, b * mu, c * mv, -_LOG2E
        out[:, 0], out[:, 1], out[:, 2] = a * (0.5 * k), b * k, c * (0.5 * k)  # u^2, uv, v^2
        out[:, 3], out[:, 4] = (amu + bmv).mul_(-k), (bmu + cmv).mul_(-k)  # u, v
        const = amu.mul_(mu).add_(cmv.mul_(mv)).mul_(0.5).add_(bmu.mul_(mv)).mul_(k)
        out[:, 5] = const.add_(torch.log2(sel[:, 5].double().clamp_(min=1e-30)))  # 1: folds in the opacity
        out[:, 6], out[:, 7] = mu, mv
        return out

    def gather(self, batch: tuple[int, int, int], rows: Tensor) -> Tiles:
        """One batch of tiles with their intersection ``rows`` (from :meth:`rows`), padded with blanks."""
        lo, hi, K = batch
        ks = torch.arange(K, device=rows.device)
        mask = ks[None] < self.tile_counts[lo:hi, None]  # [B, K]
        n = len(self.flatten_ids)
        at = torch.where(mask, self.tile_starts[lo:hi, None] + ks[None], n)
        picked = rows.index_select(0, at.clamp(max=n - 1).reshape(-1)).reshape(mask.shape + rows.shape[-1:])
        picked[..., 5].masked_fill_(~mask, _NEVER)
        picked[..., _OPACITY].masked_fill_(~mask, 0.0)
        return Tiles(self.tile_keys[lo:hi], self.flatten_ids[at.clamp(max=n - 1)], at, picked)

    def untile(self, tiled: Tensor) -> Tensor:
        """``[I * n_tiles, P, D]`` in tile order to images ``[I, H, W, D]``."""
        ts, D = self.tile_size, tiled.shape[-1]
        x = tiled.reshape(self.n_images, self.tile_height, self.tile_width, ts, ts, D).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(self.n_images, self.tile_height * ts, self.tile_width * ts, D)[:, :self.height, :self.width]

    def meta(self, C: int, N: int | None) -> dict[str, Any]:
        """gsplat's tiling meta entries (``isect_ids`` encoded as its CUDA sort keys)."""
        n_tiles = self.tile_width * self.tile_height
        counts = torch.bincount(self.isect_keys, minlength=self.n_images * n_tiles)
        offsets = (torch.cumsum(counts, 0) - counts).to(torch.int32).reshape(C, self.tile_height, self.tile_width)
        depth_bits = self.entry_depths.float().view(torch.int32).long()[self.flatten_ids] & 0xFFFFFFFF
        tile_bits = n_tiles.bit_length()
        image, tile = self.isect_keys // n_tiles, self.isect_keys % n_tiles
        per_gauss = self.tiles_per_gauss if N is None else self.tiles_per_gauss.reshape(C, N)
        return {"tile_width": self.tile_width, "tile_height": self.tile_height, "tile_size": self.tile_size,
                "tiles_per_gauss": per_gauss, "isect_ids": (image << (32 + tile_bits)) | (tile << 32) | depth_bits,
                "flatten_ids": self.flatten_ids.to(torch.int32), "isect_offsets": offsets}


@torch.no_grad()
def plan_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, image_ids: Tensor, n_images: int, width: int,
               height: int, tile_size: int = 8, conics: Tensor | None = None, opacities: Tensor | None = None,
               pairs_per_batch: int | None = None) -> TilePlan:
    """Tile intersections as gsplat's ``isect_tiles`` + ``isect_offset_encode``, and compositing batches.

    Args: means2d ``[M, 2]``, radii ``[M, 2]`` (0 = culled), depths ``[M]``, image_ids ``[M]`` per entry;
    with conics ``[M, 3]`` and opacities ``[M]``, tiles of the radius box that the Gaussian's
    alpha >= 1/255 ellipse does not reach are dropped (they would add nothing). Tiles are batched
    most crowded first so that each batch pads little; a batch holds about ``pairs_per_batch``
    (default :data:`PAIRS_PER_BATCH`) Gaussian-pixel pairs per depth slab.
    """
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    centre, reach = means2d / tile_size, radii.to(means2d.dtype) / tile_size
    limit = torch.tensor([tw, th], device=means2d.device)
    lo = torch.minimum(torch.floor(centre - reach).clamp(min=0).long(), limit)
    span = torch.minimum(torch.ceil(centre + reach).clamp(min=0).long(), limit) - lo  # [M, 2] tiles
    per_gauss = span[:, 0] * span[:, 1] * (radii > 0).all(dim=-1)
    entries = torch.nonzero(per_gauss, as_tuple=True)[0]
    entries = entries[torch.sort(depths[entries], stable=True)[1]]  # front to back; ties by entry order
    compiled = kernels.kernels_for(means2d) if conics is not None and opacities is not None else None
    if compiled is not None:  # the compiled twin of the lines below
        flatten_ids, keys = compiled.tile_intersections(
            entries, means2d.contiguous(), conics.float().contiguous(), opacities.float().contiguous(),
            lo.contiguous(), span.contiguous(), image_ids.long().contiguous(), n_images, tw, th, tile_size)
    else:
        counts = per_gauss[entries]
        rep = torch.repeat_interleave(entries, counts)
        first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        local = torch.arange(len(rep), device=rep.device) - first  # which of its tiles
        lo_x, lo_y, width_t = (t.index_select(0, rep) for t in (lo[:, 0], lo[:, 1], span[:, 0]))
        tx, ty = lo_x + local % width_t, lo_y + local // width_t
        if conics is not None:
            keep = torch.nonzero(_reaches_tile(means2d, conics, opacities, rep, tx, ty, tile_size), as_tuple=True)[0]
            rep, tx, ty = rep[keep], tx[keep], ty[keep]
        keys, order = torch.sort(image_ids[rep] * (tw * th) + ty * tw + tx, stable=True)
        flatten_ids = rep[order]
    tile_keys, tile_counts = torch.unique_consecutive(keys, return_counts=True)
    tile_starts = torch.cumsum(tile_counts, 0) - tile_counts
    crowd = torch.sort(tile_counts, descending=True, stable=True)[1]
    tile_keys, tile_counts, tile_starts = tile_keys[crowd], tile_counts[crowd], tile_starts[crowd]
    batches, P, i, budget = [], tile_size * tile_size, 0, pairs_per_batch or PAIRS_PER_BATCH
    counts_list = tile_counts.tolist()
    while i < len(counts_list):
        K = counts_list[i]
        n = max(1, budget // (P * min(K, DEPTH_SLAB)))
        batches.append((i, min(i + n, len(counts_list)), K))
        i += n
    per_gauss = torch.bincount(flatten_ids, minlength=len(means2d)).to(torch.int32)
    return TilePlan(n_images, width, height, tile_size, tw, th, flatten_ids, keys, tile_keys, tile_starts,
                    tile_counts, batches, per_gauss, depths)


def _reaches_tile(means2d: Tensor, conics: Tensor, opacities: Tensor, rep: Tensor, tx: Tensor, ty: Tensor,
                  tile_size: int) -> Tensor:
    """``[n]`` whether some pixel centre of tile (tx, ty) can get alpha >= 1/255 from entry ``rep``.

    Minimises sigma = (p - m)^T conic (p - m) / 2 over the box of the tile's pixel centres (0 if the
    mean is inside, else the least over the four edges) against ln(255 opacity), with some slack.
    """
    per_entry = torch.stack([means2d[:, 0], means2d[:, 1], conics[:, 0], conics[:, 1], conics[:, 2],
                             conics[:, 1] / conics[:, 2], conics[:, 1] / conics[:, 0],
                             torch.log(255.0 * opacities.clamp(min=1e-30)) + 1e-3])
    mx, my, a, b, c, b_c, b_a, most = per_entry.float().index_select(1, rep)
    x0, y0 = tx.float() * tile_size + 0.5, ty.float() * tile_size + 0.5
    x1, y1 = x0 + (tile_size - 1), y0 + (tile_size - 1)
    inside = (mx >= x0) & (mx <= x1) & (my >= y0) & (my <= y1)
    least = torch.where(inside, 0.0, math.inf)
    for x in (x0, x1):  # on a vertical edge sigma is least at y = my - b / c (x - mx), kept on the edge
        dx = x - mx
        dy = torch.minimum(torch.maximum(my - b_c * dx, y0), y1) - my
        least = torch.minimum(least, 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy)
    for y in (y0, y1):
        dy = y - my
        dx = torch.minimum(torch.maximum(mx - b_a * dy, x0), x1) - mx
        least = torch.minimum(least, 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy)
    return least <= most
