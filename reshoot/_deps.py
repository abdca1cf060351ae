"""Lazy imports of heavy or optional dependencies, with an install hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(ImportError):
    """A dependency a feature needs is not installed; the message says how to install it."""


def require(module: str, install_hint: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"reshoot needs the Python package {module!r} for this step, and it could not be imported "
            f"({exc}). Install it with: {install_hint}"
        ) from exc
