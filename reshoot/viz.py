"""Pictures for people: contact sheets and side-by-sides, as PIL images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reshoot.atomic import atomic_write_bytes
from reshoot.cameras import Cameras

_LABEL_PX = 18
_GAP_PX = 4


def contact_sheet(rows: dict[str, list[tuple[str, np.ndarray]]], title: str = "") -> Image.Image:
    """A grid of images: one row per key (e.g. a camera), ``(caption, image [H, W, 3] uint8)`` per cell.

    Cells are scaled to the first image's height; each row starts with its name, each cell has its caption.
    """
    font = ImageFont.load_default(size=13)
    cell_h = next(iter(rows.values()))[0][1].shape[0]
    scaled = {name: [(cap, _fit_height(img, cell_h)) for cap, img in cells] for name, cells in rows.items()}
    name_w = 8 + max(int(font.getlength(name)) for name in rows)
    widths = [sum(img.shape[1] + _GAP_PX for _, img in cells) for cells in scaled.values()]
    title_h = _LABEL_PX + 10 if title else 0
    sheet = Image.new("RGB", (name_w + max(widths) + _GAP_PX, title_h + len(rows) * (cell_h + _LABEL_PX + _GAP_PX)),
                      (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((6, 4), title, fill=(240, 240, 240), font=ImageFont.load_default(size=16))
    y = title_h
    for name, cells in scaled.items():
        draw.text((4, y + _LABEL_PX + cell_h // 2 - 6), name, fill=(240, 240, 240), font=font)
        x = name_w
        for caption, img in cells:
            draw.text((x + 2, y + 2), caption, fill=(200, 200, 200), font=font)
            sheet.paste(Image.fromarray(img), (x, y + _LABEL_PX))
            x += img.shape[1] + _GAP_PX
        y += cell_h + _LABEL_PX + _GAP_PX
    return sheet


def save_png(image: Image.Image | np.ndarray, path: Path) -> None:
    """Write a PNG atomically (8- or 16-bit follows the array's dtype)."""
    import io

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def top_view(cameras: Cameras, points: np.ndarray | None = None, paths: dict[str, np.ndarray] | None = None,
             size_px: int = 640, title: str = "", secondary: Cameras | None = None) -> Image.Image:
    """The scene from above (world +Z up): camera frusta with their ids, points, and named XY paths.

    Args:
        cameras: drawn as a dot at the centre and a wedge of the horizontal field of view.
        points: e.g. the sparse point cloud, drawn as grey dots.  # [P, 3]
        paths: name -> positions, drawn as lines (e.g. the actor's path, a new camera path).  # [T, 3]
        secondary: more cameras drawn small, grey and unlabelled (e.g. survey stills).
    """
    centres = cameras.centers
    extent = [centres[:, :2]] + ([secondary.centers[:, :2]] if secondary is not None and len(secondary) else [])
    if points is not None and len(points):
        extent.append(np.percentile(points[:, :2], [1, 99], axis=0))
    for path in (paths or {}).values():
        extent.append(np.asarray(path)[:, :2])
    lo, hi = np.min([e.min(0) for e in extent], 0), np.max([e.max(0) for e in extent], 0)
    span = float(max(hi - lo)) * 1.15 + 1e-6
    centre = (lo + hi) / 2

    def px(xy: np.ndarray) -> np.ndarray:  # world XY to image pixels, +Y up the image
        rel = (np.asarray(xy)[..., :2] - centre) / span
        return np.stack([(0.5 + rel[..., 0]) * size_px, (0.5 - rel[..., 1]) * size_px], -1)

    image = Image.new("RGB", (size_px, size_px), (250, 250, 247))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    if points is not None:
        for x, y in px(points):
            draw.ellipse([float(x) - 1, float(y) - 1, float(x) + 1, float(y) + 1], fill=(120, 120, 120))
    palette = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]
    for k, (name, path) in enumerate((paths or {}).items()):
        line = [tuple(map(float, p)) for p in px(path)]
        color = palette[(k + 3) % len(palette)]
        draw.line(line, fill=color, width=3)
        draw.text((line[-1][0] + 4, line[-1][1]), name, fill=color, font=font)
    def wedge(cams: Cameras, i: int, length: float) -> tuple:
        half_fov = np.arctan(cams.image_size[i, 0] / 2 / cams.K[i, 0, 0])
        look = cams.camera_to_world[i, :3, 2]
        heading = np.arctan2(look[1], look[0])
        ends = [cams.centers[i, :2] + length * np.array([np.cos(heading + s * half_fov), np.sin(heading + s * half_fov)])
                for s in (-1, 1)]
        return tuple(px(cams.centers[i])), tuple(px(ends[0])), tuple(px(ends[1]))

    for i in range(len(secondary) if secondary is not None else 0):
        draw.polygon(wedge(secondary, i, span * 0.04), outline=(150, 150, 150), fill=(215, 215, 215))
    for i, camera_id in enumerate(cameras.camera_ids):
        c, a, b = wedge(cameras, i, span * 0.08)
        color = palette[i % len(palette)]
        draw.polygon([c, a, b], outline=color, fill=tuple(int(v * 0.3 + 178) for v in color))
        draw.ellipse([c[0] - 4, c[1] - 4, c[0] + 4, c[1] + 4], fill=color)
        draw.text((c[0] + 6, c[1] - 14), camera_id, fill=color, font=font)
    if title:
        draw.text((8, 6), title, fill=(30, 30, 30), font=ImageFont.load_default(size=15))
    scale_m = 10 ** np.floor(np.log10(span / 4))
    bar = px(np.array([[lo[0], lo[1]], [lo[0] + scale_m, lo[1]]]))
    y = size_px - 14
    draw.line([(12, y), (12 + bar[1, 0] - bar[0, 0], y)], fill=(30, 30, 30), width=2)
    draw.text((12, y - 16), f"{scale_m:g} units", fill=(30, 30, 30), font=font)
    return image
