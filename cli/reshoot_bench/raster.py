"""Benchmark of the CPU rasterizer: forward + backward per step of the compiled kernels, the torch twin and the
all-pairs reference, on the same scenes; peak memory; Gaussian-pixel pairs per second per core.

:func:`bench_rasterizer` returns rows like :mod:`reshoot_bench`'s (``benchmark``, ``result``, ``target``,
``pass``, ``detail``), each with ``measured``: the numbers behind its ``result`` (seconds, bytes, pairs).
Scenes look like a trained splat seen by its camera: Gaussians spread through the view frustum 2-10 units deep,
anisotropic, each a few to a few tens of pixels across, opacities skewed towards opaque, colours as degree-3
spherical harmonics rendered as training renders them (``sh_degree=3``, ``render_mode="RGB+ED"``,
``packed=False``; see :func:`reshoot.splat.render.render`).

Engines: ``compiled`` is :func:`reshoot.splat.rasterize.rasterization` as it runs by default (the C++ kernels of
:mod:`reshoot.splat.kernels`); ``twin`` is the same call with the kernels switched off (its pure-torch twin);
``all-pairs`` is :func:`composite_all_pairs`, every Gaussian against every pixel with autograd's backward. It
costs time and memory in proportion to N x H x W, so it runs only where its extrapolated cost fits a memory and
a time budget; elsewhere its row says what it would need, extrapolated from its measured cost per pair.

Gaussian-pixel pairs: the tiled compositor takes, for each (Gaussian, tile) intersection left after the
ellipse test, every pixel of the tile, so its pairs are ``intersections x tile_size ** 2`` (from the meta:
``len(meta["flatten_ids"]) * meta["tile_size"] ** 2``; pixels that turned opaque skip the rest). All pairs
are ``N x H x W``. Rates are those pairs divided by the forward + backward seconds of a step and by torch's
thread count (``torch.get_num_threads()``): "per core" assumes each thread had a core of its own.

Memory is the growth of the process's resident set (``/proc/self/statm``, sampled every millisecond by a
thread) above what it held before the call, after glibc's ``malloc_trim`` has handed freed memory back:
it counts every allocation torch and the kernels make (``tracemalloc`` sees none), the saved tensors the
backward pass needs included. It is measured on a run of its own, after the timed ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from reshoot.progress import progress_enabled
from reshoot.splat import _gsplat_torch as gst
from reshoot.splat import kernels
from reshoot.splat import rasterize as R
from reshoot.splat.scene import SH_C0

SIZES = ((320, 180), (640, 360))  #: image sizes (width, height) of the default grid
COUNTS = (20_000, 100_000, 400_000)  #: Gaussian counts of the default grid
RENDER_MODE = "RGB+ED"  #: what training renders (reshoot.splat.render.render)
#: The all-pairs compositor runs only where its extrapolated peak memory fits in this many bytes ...
ALL_PAIRS_BUDGET_BYTES = 3 << 30
#: ... and its extrapolated forward + backward step in this many seconds.
ALL_PAIRS_BUDGET_S = 60.0
#: A step whose warm-up took longer than this is timed once, not ``repeats`` times.
LONG_STEP_S = 5.0
#: Compiled and twin must agree to this: colours and alphas (absolute), depth and gradients (relative to the largest).
AGREEMENT_TOLERANCE = 1e-4
#: ... on all but this share of the pixels and of the Gaussians (rounding can tip a pair across a threshold).
AGREEMENT_SHARE = 1e-4
GRAD_KEYS = ("means", "quats", "scales", "opacities", "colors")


def frustum_scene(n: int, width: int, height: int, n_cameras: int = 1, seed: int = 0,
                  sh_degree: int | None = None) -> dict[str, Any]:
    """``n`` Gaussians filling one camera's frustum (2-10 units deep), seen by ``n_cameras`` cameras turned
    a little about the first one; keyword arguments for :func:`rasterize_cpu`: colours ``[n, 3]``, or with
    ``sh_degree`` SH coefficients ``[n, (sh_degree + 1) ** 2, 3]`` (the same base colours, plus small
    view-dependent bands as a trained splat has)."""
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
    colors = torch.rand(n, 3, generator=g)
    if sh_degree is not None:
        rest = 0.05 * torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=g)
        colors = torch.cat([((colors - 0.5) / SH_C0)[:, None], rest], dim=1)
    return {"means": means, "quats": torch.randn(n, 4, generator=g), "scales": scales,
            "opacities": torch.rand(n, generator=g).sqrt(), "colors": colors,
            "viewmats": viewmats, "Ks": K.repeat(n_cameras, 1, 1), "width": width, "height": height}


def composite_all_pairs(scene: dict[str, Any], sh_degree: int | None = None,
                        render_mode: str = "RGB") -> tuple[Tensor, Tensor]:
    """The plain baseline: every Gaussian against every pixel in one tensor, autograd for the backward.

    Same projection, colours (SH as gsplat) and thresholds as the tiled rasterizer; ``render_mode`` "RGB" or
    "RGB+ED". Returns ``[C, H, W, D']`` colours and ``[C, H, W, 1]`` alphas.
    """
    W, H = scene["width"], scene["height"]
    proj = R.project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["opacities"],
                               scene["viewmats"], scene["Ks"], W, H)
    campos = torch.inverse(scene["viewmats"])[:, :3, 3]  # [C, 3]
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2)
    colors, alphas = [], []
    for c in range(len(proj.depths)):
        keep = torch.nonzero(proj.valid[c], as_tuple=True)[0]
        keep = keep[torch.sort(proj.depths[c, keep])[1]]
        feats = scene["colors"][keep]  # [n, D] or SH [n, K, 3]
        if sh_degree is not None:
            dirs = scene["means"][keep] - campos[c]
            feats = torch.clamp_min(gst.spherical_harmonics(sh_degree, dirs, feats) + 0.5, 0.0)
        if render_mode == "RGB+ED":
            feats = torch.cat([feats, proj.depths[c, keep, None]], dim=-1)
        d = proj.means2d[c, keep] - pix  # [HW, n, 2]
        k = proj.conics[c, keep]
        sigma = 0.5 * (k[:, 0] * d[..., 0] ** 2 + k[:, 2] * d[..., 1] ** 2) + k[:, 1] * d[..., 0] * d[..., 1]
        a = torch.clamp(proj.opacities[c, keep] * torch.exp(-sigma), max=0.999)
        a = torch.where(a >= 1 / 255, a, 0.0)
        cum = torch.cumprod(1 - a, dim=-1)
        T = torch.cat([torch.ones_like(cum[:, :1]), cum[:, :-1]], dim=-1)
        w = torch.where(cum > 1e-4, a * T, 0.0)
        colors.append((w @ feats).reshape(H, W, -1))
        alphas.append(w.sum(-1).reshape(H, W, 1))
    colors, alphas = torch.stack(colors), torch.stack(alphas)
    if render_mode == "RGB+ED":
        colors = torch.cat([colors[..., :-1], colors[..., -1:] / alphas.clamp(min=1e-10)], dim=-1)
    return colors, alphas


@dataclass(frozen=True)
class StepCost:
    """One engine's measured forward + backward step on one scene."""

    fwd_s: float  # median forward seconds
    bwd_s: float  # median backward seconds
    peak_bytes: int  # resident-set growth during one more step
    repeats: int  # timed steps (after one warm-up)
    tile_pairs: int | None  # Gaussian-pixel pairs the tiled compositor takes (None for all-pairs)
    load: float  # the machine's 1-minute load average just after

    @property
    def step_s(self) -> float:
        return self.fwd_s + self.bwd_s


def bench_rasterizer(sizes=SIZES, counts=COUNTS, repeats: int = 3, *, sh_degree: int = 3, n_cameras: int = 4,
                     all_pairs_budget_bytes: int = ALL_PAIRS_BUDGET_BYTES,
                     all_pairs_budget_s: float = ALL_PAIRS_BUDGET_S, long_step_s: float = LONG_STEP_S,
                     threads: int | None = None, progress: bool | None = None) -> list[dict[str, Any]]:
    """Forward + backward per step, peak memory and pairs per second per core of the compiled kernels, the torch
    twin and the all-pairs reference, for every size (width, height) and Gaussian count, on the same scenes.

    Rows: compiled vs twin values and gradients (smallest size, middle count); tiled vs all-pairs values (96x54,
    2k Gaussians); then per (size, count) one row per engine (the compiled row with its speed-up over the twin;
    all-pairs measured only where its extrapolated memory and step time fit ``all_pairs_budget_bytes`` and
    ``all_pairs_budget_s``); last, ``n_cameras`` cameras in one call with the compiled kernels (largest size,
    middle count). Steps whose warm-up takes over ``long_step_s`` are timed once. ``threads``: torch's intra-op
    threads while it runs (default: as set). ``progress`` (default: unless ``RESHOOT_QUIET=1``) prints a line per
    measurement to stderr.
    """
    with _torch_threads(threads):
        return _bench(sizes, counts, repeats, sh_degree, n_cameras, (all_pairs_budget_bytes, all_pairs_budget_s),
                      long_step_s, _Log(progress_enabled() if progress is None else progress))


def _bench(sizes, counts, repeats: int, sh_degree: int, n_cameras: int, budget: tuple[float, float],
           long_step_s: float, log: "_Log") -> list[dict[str, Any]]:
    """:func:`bench_rasterizer`'s rows, with torch's threads as they are."""
    missing = kernels_missing()
    threads = torch.get_num_threads()
    setting = f"{threads} torch thread{'s' if threads > 1 else ''}"
    mid_count = counts[len(counts) // 2]
    rows = [_compiled_vs_twin_row(*sizes[0], mid_count, sh_degree, missing), _tiled_vs_all_pairs_row(sh_degree, missing)]
    calib = _all_pairs_cost(repeats, sh_degree, long_step_s)
    log.total = 2 + sum((1 if missing else 2) + calib.fits(n * w * h, *budget) for w, h in sizes for n in counts)
    log("all-pairs cost per pair, " + calib.label, calib.cost)
    single = {}
    for width, height in sizes:
        for n in counts:
            scene = frustum_scene(n, width, height, sh_degree=sh_degree)
            label = f"{width}x{height}, {_count(n)} Gaussians"
            twin = _measure(_renderer(scene, sh_degree, "twin"), scene, repeats, long_step_s)
            log(label + ", twin", twin)
            compiled = None
            if missing is None:
                compiled = _measure(_renderer(scene, sh_degree, "compiled"), scene, repeats, long_step_s)
                log(label + ", compiled", compiled)
                single[width, height, n] = compiled
            rows += [_compiled_row(label, compiled, twin, n * width * height, missing, setting),
                     _twin_row(label, twin, n * width * height, setting),
                     _all_pairs_row(scene, label, sh_degree, compiled or twin, calib, budget, repeats, long_step_s,
                                    log)]
    rows.append(_cameras_row(*sizes[-1], mid_count, n_cameras, sh_degree, single, missing, repeats, long_step_s,
                             setting, log))
    return rows


def kernels_missing() -> str | None:
    """None when the compiled kernels run, else why not (they are off, or the build's error)."""
    from reshoot.splat import kernels

    if kernels.composite_kernels() is not None:
        return None
    if not kernels.enabled():
        return "RESHOOT_KERNELS=0 switches them off"
    try:
        kernels.build()
    except Exception as error:  # noqa: BLE001 - any failure is the reason to show
        text = str(error).strip()
        return text.splitlines()[-1] if text else type(error).__name__
    return "composite_kernels() returned None earlier in this process"


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    """Within: :func:`rasterization` on CPU runs ``name``'s path, "compiled" (the default) or "twin" (torch)."""
    if name not in ("compiled", "twin"):
        raise ValueError(f"engine must be 'compiled' or 'twin', got {name!r}")
    with kernels.torch_twin() if name == "twin" else contextlib.nullcontext():
        yield


def _renderer(scene: dict[str, Any], sh_degree: int | None, name: str) -> Callable[[], tuple]:
    """A training-like render of ``scene`` by engine ``name``: ``(colors, alphas, meta)``."""
    def render() -> tuple:
        with engine(name):
            return R.rasterization(**scene, sh_degree=sh_degree, render_mode=RENDER_MODE, packed=False)
    return render


def _measure(render: Callable[[], tuple], scene: dict[str, Any], repeats: int, long_step_s: float) -> StepCost:
    """Median forward and backward seconds over ``repeats`` steps after a warm-up (one step if the warm-up took
    over ``long_step_s``), then the peak resident-memory growth of one more step, measured apart so that
    handing memory back does not slow the timed ones."""
    leaves = [scene[k].requires_grad_(True) for k in GRAD_KEYS]
    weights, fwds, bwds, pairs = None, [], [], None

    def step() -> tuple[float, float]:
        nonlocal weights, pairs
        start = time.perf_counter()
        out = render()
        mid = time.perf_counter()
        colors, alphas = out[:2]
        if weights is None:
            weights = torch.rand(colors.shape, generator=torch.Generator().manual_seed(0))
        if len(out) > 2:
            pairs = len(out[2]["flatten_ids"]) * out[2]["tile_size"] ** 2
        ((colors * weights).sum() + alphas.sum()).backward()
        for leaf in leaves:
            leaf.grad = None
        return mid - start, time.perf_counter() - mid

    warm = sum(step())
    if warm > long_step_s:
        repeats = 1
    for _ in range(repeats):
        fwd, bwd = step()
        fwds.append(fwd)
        bwds.append(bwd)
    _release_free_memory()
    with _PeakRSS() as rss:
        step()
    for leaf in leaves:
        leaf.requires_grad_(False)
    return StepCost(statistics.median(fwds), statistics.median(bwds), rss.peak, repeats, pairs, os.getloadavg()[0])


def _rate(pairs: int, cost: StepCost) -> float:
    """Pairs per second of a forward + backward step, per torch thread."""
    return pairs / cost.step_s / torch.get_num_threads()


def _numbers(cost: StepCost, all_pairs: int) -> dict[str, Any]:
    pairs = cost.tile_pairs if cost.tile_pairs is not None else all_pairs
    return {"fwd_s": cost.fwd_s, "bwd_s": cost.bwd_s, "step_s": cost.step_s, "peak_bytes": cost.peak_bytes,
            "repeats": cost.repeats, "pairs": pairs, "all_pairs": all_pairs, "threads": torch.get_num_threads(),
            "pairs_per_s_per_core": _rate(pairs, cost)}


def _how(cost: StepCost) -> str:
    return f"median of {cost.repeats} after a warm-up, load average {cost.load:.1f}"


def _step_text(cost: StepCost) -> str:
    return f"{cost.step_s:.3f} s (fwd {cost.fwd_s:.3f} + bwd {cost.bwd_s:.3f})"


def _pairs_text(cost: StepCost, all_pairs: int) -> str:
    share = cost.tile_pairs / all_pairs
    return (f"{_big(cost.tile_pairs)} tile pairs ({100 * share:.1f}% of N x H x W = {_big(all_pairs)}): "
            f"{_big(_rate(cost.tile_pairs, cost))} pairs/s/core")


def _compiled_row(label: str, compiled: StepCost | None, twin: StepCost, all_pairs: int, missing: str | None,
                  setting: str) -> dict[str, Any]:
    row = {"benchmark": f"{label}, fwd+bwd: compiled kernels", "target": "faster than the twin"}
    if compiled is None:
        return {**row, "result": f"not available: {missing}", "pass": False, "detail": "the twin runs instead",
                "measured": {}}
    speedup = twin.step_s / compiled.step_s
    return {**row, "result": f"{_step_text(compiled)}, {speedup:.1f}x the twin; peak +{_mb(compiled.peak_bytes)}",
            "pass": speedup > 1.0, "measured": {**_numbers(compiled, all_pairs), "speedup_vs_twin": speedup},
            "detail": f"{_pairs_text(compiled, all_pairs)}; {_how(compiled)}; {setting}"}


def _twin_row(label: str, twin: StepCost, all_pairs: int, setting: str) -> dict[str, Any]:
    return {"benchmark": f"{label}, fwd+bwd: torch twin",
            "result": f"{_step_text(twin)}; peak +{_mb(twin.peak_bytes)}", "target": "measured", "pass": None,
            "measured": _numbers(twin, all_pairs),
            "detail": f"{_pairs_text(twin, all_pairs)}; {_how(twin)}; {setting}"}


@dataclass(frozen=True)
class _Calibration:
    cost: StepCost
    pairs: int
    label: str

    @property
    def s_per_pair(self) -> float:
        return self.cost.step_s / self.pairs

    @property
    def bytes_per_pair(self) -> float:
        return self.cost.peak_bytes / self.pairs

    def fits(self, pairs: int, budget_bytes: float, budget_s: float) -> bool:
        """Whether ``pairs`` all-pairs take at most ``budget_bytes`` and ``budget_s`` a step, extrapolated."""
        return pairs * self.bytes_per_pair <= budget_bytes and pairs * self.s_per_pair <= budget_s


def _all_pairs_cost(repeats: int, sh_degree: int | None, long_step_s: float) -> _Calibration:
    """The all-pairs compositor's measured step on a mid-sized scene, to extrapolate its cost per pair from."""
    width, height, n = 96, 54, 1500
    scene = frustum_scene(n, width, height, seed=1, sh_degree=sh_degree)
    cost = _measure(lambda: composite_all_pairs(scene, sh_degree, RENDER_MODE), scene, repeats, long_step_s)
    return _Calibration(cost, n * width * height, f"{width}x{height}, {_count(n)} Gaussians")


def _all_pairs_row(scene: dict[str, Any], label: str, sh_degree: int | None, tiled: StepCost, calib: _Calibration,
                   budget: tuple[float, float], repeats: int, long_step_s: float, log: "_Log") -> dict[str, Any]:
    """All-pairs measured where its extrapolated memory and step time fit the budget, else what it would need."""
    budget_bytes, budget_s = budget
    pairs = len(scene["means"]) * scene["width"] * scene["height"]
    need_bytes, need_s = pairs * calib.bytes_per_pair, pairs * calib.s_per_pair
    per_pair = (f"{calib.s_per_pair * 1e9:.0f} ns and {calib.bytes_per_pair:.0f} bytes a pair measured at "
                f"{calib.label} (median of {calib.cost.repeats})")
    row = {"benchmark": f"{label}, fwd+bwd: all-pairs reference", "target": "slower than the tiled"}
    if not calib.fits(pairs, budget_bytes, budget_s):
        return {**row, "result": f"not run: needs {_gb(need_bytes)} / ~{_duration(need_s)} a step", "pass": None,
                "measured": {"all_pairs": pairs, "need_bytes": need_bytes, "need_s": need_s},
                "detail": f"extrapolated from its {per_pair}; budget {_gb(budget_bytes)}, {budget_s:.0f} s"}
    cost = _measure(lambda: composite_all_pairs(scene, sh_degree, RENDER_MODE), scene, repeats, long_step_s)
    log(label + ", all-pairs", cost)
    return {**row, "result": f"{_step_text(cost)}; peak +{_mb(cost.peak_bytes)}: "
                             f"{cost.step_s / tiled.step_s:.0f}x the tiled step",
            "pass": cost.step_s > tiled.step_s, "measured": _numbers(cost, pairs),
            "detail": f"{_big(pairs)} pairs (N x H x W): {_big(_rate(pairs, cost))} pairs/s/core; "
                      f"{_how(cost)}; predicted {_duration(need_s)}, {_gb(need_bytes)} from its {per_pair}"}


def _cameras_row(width: int, height: int, n: int, n_cameras: int, sh_degree: int | None,
                 single: dict[tuple[int, int, int], StepCost], missing: str | None, repeats: int, long_step_s: float,
                 setting: str, log: "_Log") -> dict[str, Any]:
    label = f"{width}x{height}, {_count(n)} Gaussians, {n_cameras} cameras in one call: compiled kernels"
    row = {"benchmark": label, "target": "measured"}
    if missing is not None:
        return {**row, "result": f"not available: {missing}", "pass": False, "detail": "", "measured": {}}
    scene = frustum_scene(n, width, height, n_cameras=n_cameras, sh_degree=sh_degree)
    cost = _measure(_renderer(scene, sh_degree, "compiled"), scene, repeats, long_step_s)
    log(label, cost)
    one = single.get((width, height, n))
    return {**row, "result": f"{cost.step_s / n_cameras:.3f} s a camera (fwd+bwd {cost.step_s:.3f} s), "
                             f"peak +{_mb(cost.peak_bytes)}", "pass": None,
            "measured": {**_numbers(cost, n * width * height * n_cameras), "n_cameras": n_cameras},
            "detail": (f"one camera: {one.step_s:.3f} s; " if one else "") + "cameras 0.05 rad apart; "
                      f"{_how(cost)}; {setting}"}


def _values_and_grads(scene: dict[str, Any], sh_degree: int | None, name: str) -> tuple[Tensor, Tensor, dict]:
    """Colours, alphas and each input's gradient of a weighted loss, rendered by engine ``name``."""
    inputs = {k: (v.clone().requires_grad_(True) if k in GRAD_KEYS else v) for k, v in scene.items()}
    colors, alphas, _ = _renderer(inputs, sh_degree, name)()
    weights = torch.rand(colors.shape, generator=torch.Generator().manual_seed(0))
    ((colors * weights).sum() + alphas.sum()).backward()
    return colors.detach(), alphas.detach(), {k: inputs[k].grad for k in GRAD_KEYS}


def _compiled_vs_twin_row(width: int, height: int, n: int, sh_degree: int | None, missing: str | None) -> dict:
    """Compiled and twin images and gradients agree (same maths, float rounding apart).

    Differences are absolute for RGB and alpha, relative to the largest value for expected depth and for each
    gradient. A rounding difference can tip a pair across the 1/255 skip or the 1e-4 stop threshold, which moves
    that pixel (and the gradients of the Gaussians on it) by far more than rounding: the target allows
    :data:`AGREEMENT_SHARE` of the pixels and of the Gaussians beyond :data:`AGREEMENT_TOLERANCE`.
    """
    tol = AGREEMENT_TOLERANCE
    row = {"benchmark": f"compiled vs twin: values and gradients, {width}x{height}, {_count(n)} Gaussians",
           "target": f"<= {100 * AGREEMENT_SHARE:g}% of pixels and of Gaussians beyond {tol:.0e}"}
    if missing is not None:
        return {**row, "result": f"not available: {missing}", "pass": False, "detail": "", "measured": {}}
    scene = frustum_scene(n, width, height, seed=3, sh_degree=sh_degree)
    (c1, a1, g1), (c2, a2, g2) = (_values_and_grads(scene, sh_degree, name) for name in ("compiled", "twin"))
    pixel = {"RGB": (c1[..., :3] - c2[..., :3]).abs().amax(-1), "alpha": (a1 - a2)[..., 0].abs(),
             "depth": (c1[..., 3] - c2[..., 3]).abs() / c2[..., 3].abs().max().clamp(min=1e-30)}  # each [C, H, W]
    gauss = {f"d {k}": (g1[k] - g2[k]).reshape(n, -1).abs().amax(-1) / g2[k].abs().max().clamp(min=1e-30)
             for k in GRAD_KEYS}  # each [N]
    pixels_beyond = int((torch.stack(list(pixel.values())).amax(0) > tol).sum())
    gaussians_beyond = int((torch.stack(list(gauss.values())).amax(0) > tol).sum())
    largest = {k: float(v.max()) for k, v in {**pixel, **gauss}.items()}
    worst_grad = max(gauss, key=lambda k: largest[k])
    n_pixels = c1[..., 0].numel()
    return {**row, "pass": pixels_beyond <= AGREEMENT_SHARE * n_pixels and gaussians_beyond <= AGREEMENT_SHARE * n,
            "result": f"{pixels_beyond} of {_big(n_pixels)} pixels and {gaussians_beyond} of {_big(n)} Gaussians "
                      f"beyond {tol:.0e}; largest: RGB {largest['RGB']:.1e}, alpha {largest['alpha']:.1e}, "
                      f"gradient {largest[worst_grad]:.1e} ({worst_grad})",
            "measured": {**largest, "pixels_beyond": pixels_beyond, "gaussians_beyond": gaussians_beyond,
                         "pixels": n_pixels, "gaussians": n},
            "detail": "largest differences, absolute for RGB and alpha, relative to the largest value for expected "
                      "depth and gradients: " + ", ".join(f"{k} {v:.0e}" for k, v in largest.items())
                      + f"; sh_degree {sh_degree}, {RENDER_MODE}; beyond: pairs tipped across the 1/255 or 1e-4 "
                        "threshold by rounding"}


def _tiled_vs_all_pairs_row(sh_degree: int | None, missing: str | None) -> dict[str, Any]:
    """The tiled engines' images agree with the all-pairs compositor on a small scene."""
    scene = frustum_scene(2000, 96, 54, seed=2, sh_degree=sh_degree)
    diff = {}
    with torch.no_grad():
        ref, ref_alphas = composite_all_pairs(scene, sh_degree, RENDER_MODE)
        for name in ("twin",) if missing else ("compiled", "twin"):
            colors, alphas, _ = _renderer(scene, sh_degree, name)()
            diff[name] = max(float((colors[..., :3] - ref[..., :3]).abs().max()),
                             float((alphas - ref_alphas).abs().max()), _relative(colors[..., 3], ref[..., 3]))
    err = max(diff.values())
    return {"benchmark": "tiled vs all-pairs values, 96x54, 2k Gaussians",
            "result": f"max difference {err:.1e} (" + ", ".join(f"{k} {v:.0e}" for k, v in diff.items()) + ")",
            "target": "< 1e-5", "pass": err < 1e-5, "measured": diff,
            "detail": f"RGB and alpha absolute, expected depth relative; sh_degree {sh_degree}, {RENDER_MODE}"
                      + (f"; compiled kernels not available: {missing}" if missing else "")}


def _relative(x: Tensor, ref: Tensor) -> float:
    """Largest difference relative to the largest magnitude of ``ref``."""
    return float((x - ref).abs().max() / ref.abs().max().clamp(min=1e-30))


class _Log:
    """A line to stderr per measurement: what, how long a step took, how far along, time so far."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.total, self.done, self.start = enabled, 0, 0, time.perf_counter()

    def __call__(self, what: str, cost: StepCost) -> None:
        self.done += 1
        if self.enabled:
            print(f"[raster bench {self.done}/{self.total}, {_duration(time.perf_counter() - self.start)}] "
                  f"{what}: {cost.step_s:.3f} s a step", file=sys.stderr, flush=True)


def _count(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _big(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GB" if n_bytes < 2**40 else f"{n_bytes / 2**40:.3g} TB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


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
