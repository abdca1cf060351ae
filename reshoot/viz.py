"""Pictures for people: contact sheets and side-by-sides, as PIL images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reshoot.atomic import atomic_write_bytes

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
