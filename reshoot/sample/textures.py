"""Procedural textures for the sample set: rich, non-repeating detail so SfM finds features.

All functions are pure: a seeded ``numpy.random.Generator`` in, an ``uint8`` RGB image out.
"""

from __future__ import annotations

import numpy as np


def value_noise(rng: np.random.Generator, size: int, octaves: int = 5, base_cells: int = 4) -> np.ndarray:
    """Multi-octave smooth noise in [0, 1].  # [size, size]"""
    out = np.zeros((size, size))
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        grid = rng.random((cells + 1, cells + 1))
        coords = np.linspace(0, cells, size, endpoint=False)
        i0 = coords.astype(int)
        f = coords - i0
        f = f * f * (3 - 2 * f)  # smoothstep
        a = grid[i0][:, i0] * (1 - f)[None, :] + grid[i0][:, i0 + 1] * f[None, :]
        b = grid[i0 + 1][:, i0] * (1 - f)[None, :] + grid[i0 + 1][:, i0 + 1] * f[None, :]
        out += amplitude * (a * (1 - f)[:, None] + b * f[:, None])
        total += amplitude
        amplitude *= 0.55
    return out / total


def _palette_blend(noise: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Map noise in [0, 1] through a piecewise-linear colour ramp.  # [H, W, 3] float in [0, 1]"""
    positions = np.linspace(0, 1, len(colors))
    return np.stack([np.interp(noise, positions, colors[:, c]) for c in range(3)], axis=-1)


def _stamp_shapes(rng: np.random.Generator, image: np.ndarray, count: int, max_radius: float) -> None:
    """Scatter random filled discs and rectangles of random colours over ``image`` (in place)."""
    size = image.shape[0]
    for _ in range(count):
        color = rng.random(3)
        cx, cy = rng.random(2) * size
        r = (0.2 + 0.8 * rng.random()) * max_radius * size
        disc = rng.random() < 0.5
        h = r if disc else r * (0.3 + rng.random())
        x0, x1 = max(0, int(cx - r)), min(size, int(cx + r) + 1)
        y0, y1 = max(0, int(cy - h)), min(size, int(cy + h) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        if disc:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        else:
            mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < h)
        patch = image[y0:y1, x0:x1]
        patch[mask] = 0.35 * patch[mask] + 0.65 * color


def patterned(rng: np.random.Generator, size: int, base_colors: np.ndarray, shapes: int = 60,
              max_radius: float = 0.06, contrast: float = 1.0) -> np.ndarray:
    """Coloured noise with scattered shapes: the general-purpose set texture.  # [size, size, 3] uint8"""
    noise = value_noise(rng, size)
    noise = np.clip(0.5 + contrast * (noise - 0.5) * 2.2, 0, 1)
    image = _palette_blend(noise, np.asarray(base_colors, dtype=np.float64))
    _stamp_shapes(rng, image, shapes, max_radius)
    fine = value_noise(rng, size, octaves=3, base_cells=32)
    image *= (0.8 + 0.4 * fine)[..., None]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def floor_tiles(rng: np.random.Generator, size: int, tiles: int = 8) -> np.ndarray:
    """Stone tiles, each with its own tone and speckle, dark grout between.  # [size, size, 3] uint8"""
    noise = value_noise(rng, size, octaves=6, base_cells=8)
    tone = rng.uniform(0.45, 0.85, (tiles, tiles, 3)) * np.array([1.0, 0.92, 0.8])
    idx = (np.arange(size) * tiles // size)
    image = tone[idx][:, idx] * (0.7 + 0.6 * noise)[..., None]
    _stamp_shapes(rng, image, 120, 0.025)
    grout = (np.arange(size) % (size // tiles)) < max(2, size // 256)
    image[grout, :] *= 0.35
    image[:, grout] *= 0.35
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def cloth(rng: np.random.Generator, size: int, color: np.ndarray, stripes: int = 7) -> np.ndarray:
    """Striped fabric for the actor's clothes.  # [size, size, 3] uint8"""
    color = np.asarray(color, dtype=np.float64)
    v = np.arange(size) / size
    stripe = (np.floor(v * stripes) % 2)[:, None]
    noise = value_noise(rng, size, octaves=4, base_cells=8)
    image = color[None, None, :] * (0.65 + 0.35 * stripe[..., None]) * (0.8 + 0.4 * noise[..., None])
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)
