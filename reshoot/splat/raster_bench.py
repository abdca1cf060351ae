"""Benchmark of the CPU rasterizer: forward + backward time and memory, tiled vs all Gaussian-pixel pairs.

:func:`bench_rasterizer` returns rows like :mod:`reshoot.bench`'s (``benchmark``, ``result``, ``target``,
``pass``, ``detail``). Scenes look like a trained splat seen by its camera: Gaussians spread through the
view frustum 2-10 units deep, anisotropic, each a few to a few tens of pixels across, opacities
skewed towards opaque.

Memory is the growth of the process's resident set (``/proc/self/statm``, sampled every millisecond by a
thread) above what it held before the call, after glibc's ``malloc_trim`` has handed freed memory back:
it counts every allocation torch makes (``tracemalloc`` sees none), the saved tensors the backward pass
needs included. It is measured on a run of its own, after the timed ones.
"""

from __future__ import annotations

import ctypes
import math
import os
import statistics
import threading
import time
from typing import Any, Callable

import torch
from torch import Tensor

from reshoot.splat.rasterize import project_gaussians, rasterize_cpu

#: The all-pairs compositor is measured only where its pairs fit in this many bytes (else extrapolated).
ALL_PAIRS_BUDGET_BYTES = 3 << 30


def frustum_scene(n: int, width: int, height: int, n_cameras: int = 1, seed: int = 0) -> dict[str, Any]:
    """``n`` Gaussians filling one camera's frustum (2-10 units deep), seen by ``n_cameras`` cameras turned
    a little about the first one; keyword arguments for :func:`rasterize_cpu` (colours ``[n, 3]``)."""
    g = torch.Generator().manual_seed(seed)
    f = 0.8 * width
    z = 2.0 + 8.0 * torch.rand(n, generator=g)
    u = (torch.rand(n, generator=g) * 1.1 - 0.05) * width
    v = (torch.rand(n, generator=g) * 1.1 - 0.05) * height
    means = torch.stack([(u - width / 2) * z / f, (v - height / 2) * z / f, z], dim=-1)
    sigma_px = 0.5 * torch.exp(torch.rand(n, generator=g) * math.log(12.0))  # 0.5-6 px: 3-40 px across
    scales = (sigma_px * z / f)[:, None] * (0.3 + 0.7 * torch.rand(n, 3, generator=g))
    viewmats = torch.eye(4).repeat(n_cameras, 1, 1)
    for i in range(1, n_cameras):
        a = 0.05 * i  # radians about the y axis
        viewmats[i, 0, 0] = viewmats[i, 2, 2] = math.cos(a)
        viewmats[i, 0, 2], viewmats[i, 2, 0] = math.sin(a), -math.sin(a)
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return {"means": means, "quats": torch.randn(n, 4, generator=g), "scales": scales,
            "opacities": torch.rand(n, generator=g).sqrt(), "colors": torch.rand(n, 3, generator=g),
            "viewmats": viewmats, "Ks": K.repeat(n_cameras, 1, 1), "width": width, "height": height}


def composite_all_pairs(scene: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """The plain baseline: every Gaussian against every pixel in one tensor, autograd for the backward.

    Same projection and thresholds as the tiled rasterizer; ``[C, H, W, 3]`` colours and ``[C, H, W, 1]`` alphas.
    """
    W, H = scene["width"], scene["height"]
    proj = project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["viewmats"],
                             scene["Ks"], W, H)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2)
    colors, alphas = [], []
    for c in range(len(proj.depths)):
        keep = torch.nonzero(proj.valid[c], as_tuple=True)[0]
        keep = keep[torch.sort(proj.depths[c, keep])[1]]
        d = proj.means2d[c, keep] - pix  # [HW, n, 2]
        k = proj.conics[c, keep]
        sigma = 0.5 * (k[:, 0] * d[..., 0] ** 2 + k[:, 2] * d[..., 1] ** 2) + k[:, 1] * d[..., 0] * d[..., 1]
        a = torch.clamp(proj.opacities[c, keep] * torch.exp(-sigma), max=0.999)
        a = torch.where(a >= 1 / 255, a, 0.0)
        cum = torch.cumprod(1 - a, dim=-1)
        T = torch.cat([torch.ones_like(cum[:, :1]), cum[:, :-1]], dim=-1)
        w = torch.where(cum > 1e-4, a * T, 0.0)
        colors.append((w @ scene["colors"][keep]).reshape(H, W, -1))
        alphas.append(w.sum(-1).reshape(H, W, 1))
    return torch.stack(colors), torch.stack(alphas)


def bench_rasterizer(sizes=((320, 180), (640, 360)), counts=(5000, 20000, 100000), repeats: int = 3,
                     n_cameras: int = 4) -> list[dict[str, Any]]:
    """Forward + backward time and peak memory of the tiled CPU rasterizer, against the all-pairs one.

    One row per (size, count); a row for ``n_cameras`` cameras at once at the largest size and middle
    count; a row checking tiled against all-pairs values on a small scene; all-pairs rows measured where
    its pairs fit :data:`ALL_PAIRS_BUDGET_BYTES`, else extrapolated from its measured cost per pair.
    """
    setting = f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} at start"
    rows, single = [_agreement_row()], {}
    ns_per_pair, bytes_per_pair, calib = _all_pairs_cost(repeats)
    for width, height in sizes:
        for n in counts:
            scene = frustum_scene(n, width, height)
            fwd, bwd, peak = _measure(lambda: rasterize_cpu(**scene, packed=False), scene, repeats)
            single[width, height, n] = fwd + bwd
            pairs = width * height * n
            rows.append({"benchmark": f"rasterize {width}x{height}, {_count(n)} Gaussians, fwd+bwd (tiled CPU)",
                         "result": f"{fwd + bwd:.3f} s (fwd {fwd:.3f} + bwd {bwd:.3f}), peak +{peak / 2**20:.0f} MB",
                         "target": "measured", "pass": True,
                         "detail": f"median of {repeats}; {setting}"})
            rows.append(_all_pairs_row(scene, pairs, fwd + bwd, ns_per_pair, bytes_per_pair, calib, repeats))
    width, height = sizes[-1]
    n = counts[len(counts) // 2]
    scene = frustum_scene(n, width, height, n_cameras=n_cameras)
    fwd, bwd, peak = _measure(lambda: rasterize_cpu(**scene, packed=False), scene, repeats)
    rows.append({"benchmark": f"rasterize {width}x{height}, {_count(n)} Gaussians, {n_cameras} cameras at once",
                 "result": f"{(fwd + bwd) / n_cameras:.3f} s a camera (fwd+bwd {fwd + bwd:.3f} s), "
                           f"peak +{peak / 2**20:.0f} MB", "target": "measured", "pass": True,
                 "detail": f"one camera: {single[width, height, n]:.3f} s; cameras 0.05 rad apart; "
                           f"median of {repeats}; {setting}"})
    return rows


def _measure(render: Callable[[], tuple], scene: dict[str, Any], repeats: int) -> tuple[float, float, int]:
    """Median forward and backward seconds over ``repeats`` runs after a warm-up, then the peak resident-memory
    growth (bytes) of one more run, measured apart so that handing memory back does not slow the timed runs."""
    leaves = [scene[k].requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "colors")]
    weights, fwds, bwds = None, [], []

    def step() -> tuple[float, float]:
        nonlocal weights
        start = time.perf_counter()
        colors, alphas = render()[:2]
        mid = time.perf_counter()
        if weights is None:
            weights = torch.rand(colors.shape, generator=torch.Generator().manual_seed(0))
        ((colors * weights).sum() + alphas.sum()).backward()
        for leaf in leaves:
            leaf.grad = None
        return mid - start, time.perf_counter() - mid

    for run in range(repeats + 1):  # the first run warms up
        fwd, bwd = step()
        if run:
            fwds.append(fwd)
            bwds.append(bwd)
    _release_free_memory()
    with _PeakRSS() as rss:
        step()
    for leaf in leaves:
        leaf.requires_grad_(False)
    return statistics.median(fwds), statistics.median(bwds), rss.peak


def _all_pairs_cost(repeats: int) -> tuple[float, float, str]:
    """The all-pairs compositor's measured seconds and bytes per Gaussian-pixel pair on a mid-sized scene."""
    width, height, n = 96, 54, 1500
    scene = frustum_scene(n, width, height, seed=1)
    fwd, bwd, peak = _measure(lambda: composite_all_pairs(scene), scene, repeats)
    pairs = width * height * n
    return (fwd + bwd) / pairs * 1e9, peak / pairs, f"{width}x{height}, {_count(n)} Gaussians"


def _all_pairs_row(scene: dict[str, Any], pairs: int, tiled_s: float, ns_per_pair: float, bytes_per_pair: float,
                   calib: str, repeats: int) -> dict[str, Any]:
    need = pairs * bytes_per_pair
    label = f"{scene['width']}x{scene['height']}, {_count(len(scene['means']))} Gaussians"
    if need <= ALL_PAIRS_BUDGET_BYTES:
        fwd, bwd, peak = _measure(lambda: composite_all_pairs(scene), scene, repeats)
        took, how, mem = fwd + bwd, f"measured, median of {repeats}", peak
    else:
        took, how, mem = pairs * ns_per_pair * 1e-9, (
            f"extrapolated: its {need / 2**30:.0f} GB of pairs exceed {ALL_PAIRS_BUDGET_BYTES / 2**30:.0f} GB; "
            f"measured {ns_per_pair:.0f} ns and {bytes_per_pair:.0f} bytes a pair at {calib}"), need
    return {"benchmark": f"  all-pairs compositor, {label}, fwd+bwd",
            "result": f"{took:.2f} s, {mem / 2**20:.0f} MB: tiled is {took / tiled_s:.0f}x faster",
            "target": "tiled faster", "pass": took > tiled_s, "detail": how}


def _agreement_row() -> dict[str, Any]:
    """Tiled and all-pairs images agree on a small scene (same maths, different bookkeeping)."""
    scene = frustum_scene(2000, 96, 54, seed=2)
    ours, alphas, _ = rasterize_cpu(**scene)
    ref, ref_alphas = composite_all_pairs(scene)
    err = max(float((ours - ref).abs().max()), float((alphas - ref_alphas).abs().max()))
    return {"benchmark": "tiled vs all-pairs values, 96x54, 2k Gaussians", "result": f"max difference {err:.1e}",
            "target": "< 1e-5", "pass": err < 1e-5, "detail": "colours and alphas"}


def _count(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc), so resident-set growth shows new allocations."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _PeakRSS:
    """Context manager: ``peak`` = the largest resident-set growth over its entry value, in bytes."""

    def __enter__(self) -> "_PeakRSS":
        self.base = self.peak_rss = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.001):
            self.peak_rss = max(self.peak_rss, _rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak_rss, _rss()) - self.base


def _rss() -> int:
    """Resident set size in bytes (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
