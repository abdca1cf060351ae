"""Lazy imports of heavy or optional dependencies, with an install hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(ImportError):
    """A dependency a feature needs is not installed; the message says how to install it."""


#: Modules that must be loaded before another one. pycolmap's extension exports the zlib and libpng
#: it links statically (deflate, png_write_row, ...); loaded first, they bind in place of the system
#: zlib that Pillow and OpenCV use, and PNG writing then corrupts the heap and aborts the process.
LOAD_FIRST = {"pycolmap": ("PIL.Image", "cv2")}


def require(module: str, install_hint: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the command that installs it."""
    for first in LOAD_FIRST.get(module, ()):
        importlib.import_module(first)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"reshoot needs the Python package {module!r} for this step, and it could not be imported "
            f"({exc}). Install it with: {install_hint}"
        ) from exc
