"""reshoot's compiled CPU kernels: loaded (and built on first use) through torch's C++ extension API.

``csrc/composite.cpp`` composites tiles of projected Gaussians front to back, forward and backward,
parallel over tiles on torch's threads; ``csrc/project.cpp`` projects 3D Gaussians into pinhole cameras
(gsplat's EWA maths), forward and backward, parallel over Gaussians; ``csrc/tiles.cpp`` lists which Gaussians
touch which tile, sorted by tile in depth order. It is built with the system C++ compiler (g++) and ninja into
a cache folder (``$RESHOOT_KERNELS_CACHE``, else ``~/.cache/reshoot/kernels``), keyed by the source and
the torch version, so a build happens once per machine (about half a minute); ``cli/bootstrap.sh`` runs
it at set-up. If it cannot be built or loaded, :func:`composite_kernels` returns None after one clear
warning and the rasterizer falls back to its torch twin, which gives the same images, only slower.

Set ``RESHOOT_KERNELS=0`` to use the torch twin on purpose (for comparison or debugging).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

SOURCES = [Path(__file__).parent / "csrc" / name for name in ("bindings.cpp", "composite.cpp", "project.cpp",
                                                                 "tiles.cpp")]
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]  # for the machine it runs on


class KernelWarning(UserWarning):
    """The compiled kernels could not be used; the torch twin runs instead."""


def cache_dir() -> Path:
    """The build folder of this source and torch version."""
    import torch

    root = Path(os.environ.get("RESHOOT_KERNELS_CACHE") or Path.home() / ".cache" / "reshoot" / "kernels")
    key = hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES) + torch.__version__.encode() + " ".join(FLAGS + ["-fopenmp"]).encode()
                         + _cpu_features().encode())
    return root / f"kernels-{key.hexdigest()[:12]}"


def _cpu_features() -> str:
    """The CPU's instruction-set flags (-march=native builds for them: a shared cache must not mix CPUs)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.machine() + platform.processor()
    return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")


def enabled() -> bool:
    """False when ``RESHOOT_KERNELS=0`` (or ``off``/``false``) asks for the torch twin."""
    return os.environ.get("RESHOOT_KERNELS", "1").strip().lower() not in ("0", "off", "false", "no")


def build(verbose: bool = False) -> ModuleType:
    """Compile (if not already built for this source and torch) and load the kernels; raises on failure."""
    from torch.utils import cpp_extension

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    clear_stale_lock(folder)
    return cpp_extension.load(name="reshoot_kernels", sources=[str(path) for path in SOURCES], build_directory=str(folder),
                              extra_cflags=FLAGS + ["-fopenmp"], extra_ldflags=["-fopenmp"], verbose=verbose)


STALE_LOCK_S = 900.0
"""A build lock older than this is a build that died (a build takes about half a minute; 15 minutes allows a slow,
loaded machine): torch waits on its lock file for ever, so every later run would hang."""


def clear_stale_lock(folder: Path, now: float | None = None) -> bool:
    """Remove ``folder/lock`` left by a build that was killed (older than ``STALE_LOCK_S``), saying so; True if
    removed. A fresh lock is another process building: left alone, and torch waits for it."""
    import time

    lock = Path(folder) / "lock"
    try:
        age = (time.time() if now is None else now) - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < STALE_LOCK_S:
        return False
    warnings.warn(f"removing {lock}: a kernel build left it {age / 60:.0f} minutes ago and never finished (killed?); "
                  "building again", KernelWarning, stacklevel=2)
    lock.unlink(missing_ok=True)
    return True


@functools.cache
def composite_kernels() -> ModuleType | None:
    """The loaded kernels, or None (with one warning saying why and what to do) when they cannot be used."""
    if not enabled():
        return None
    try:
        return build()
    except Exception as error:  # noqa: BLE001 - any build or load failure means: use the torch twin
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        warnings.warn(f"reshoot's compiled CPU kernels are not available ({reason}); the torch rasterizer runs "
                      f"instead (same images, several times slower). To build them: install a C++ compiler "
                      f"(Debian: apt-get install g++) and run `python -m reshoot.splat.build_kernels`; build folder "
                      f"{cache_dir()}", KernelWarning, stacklevel=2)
        return None


_twin_only = False


def kernels_for(tensor: Any) -> ModuleType | None:
    """The compiled kernels for a float32 CPU tensor (what they take), else None: the torch twin runs."""
    if _twin_only or tensor.device.type != "cpu" or tensor.dtype != _float32():
        return None
    return composite_kernels()


@contextlib.contextmanager
def torch_twin() -> Iterator[None]:
    """Inside this block the rasterizer runs its torch twin alone (for comparisons, benchmarks and tests)."""
    global _twin_only
    saved, _twin_only = _twin_only, True
    try:
        yield
    finally:
        _twin_only = saved


def _float32() -> Any:
    import torch

    return torch.float32


def main() -> int:
    """``python -m reshoot.splat.build_kernels``: build the kernels now (silent when they already are)."""
    fresh = not any(cache_dir().glob("*.so"))
    if fresh:
        print("building reshoot's CPU kernels (once per machine, about half a minute)", file=sys.stderr)
    try:
        build(verbose="-v" in sys.argv)
    except Exception as error:  # noqa: BLE001 - report, do not trace back
        print(f"error: could not build reshoot's CPU kernels: {error}\nThe torch rasterizer will run instead "
              "(slower). Install a C++ compiler (Debian: apt-get install g++) and try again.", file=sys.stderr)
        return 1
    if fresh:
        print(f"reshoot's CPU kernels are built in {cache_dir()}", file=sys.stderr)
    return 0

