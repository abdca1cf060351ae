"""The compiled CPU compositing kernels against the torch twin they replace (values and gradients to float
tolerance, on random scenes and edge cases), and the fallback when they cannot be built."""

from __future__ import annotations

import warnings

import pytest
import torch

from reshoot.splat import kernels as K
from reshoot.splat import rasterize as R
from test_rasterize import GRAD_KEYS, make_scene

pytestmark = pytest.mark.skipif(K.composite_kernels() is None,
                                reason="reshoot's compiled CPU kernels are not built here (see the KernelWarning)")


def render_both(scene: dict, monkeypatch, **options) -> dict[str, tuple]:
    """Colours, alphas and every input's gradient, with the kernels and with the twin (absgrad included)."""
    weights = None
    results = {}
    for engine in ("compiled", "twin"):
        monkeypatch.setattr(K, "_twin_only", engine == "twin")
        inputs = {k: (v.clone().requires_grad_(True) if k in GRAD_KEYS else v) for k, v in scene.items()}
        colors, alphas, meta = R.rasterization(**inputs, absgrad=True, **options)
        if weights is None:  # a loss that weighs every channel and pixel differently
            g = torch.Generator().manual_seed(3)
            weights = torch.rand(colors.shape, generator=g), torch.rand(alphas.shape, generator=g)
        ((colors * weights[0]).sum() + (alphas * weights[1]).sum()).backward()
        grads = [inputs[k].grad.clone() if inputs[k].grad is not None else torch.zeros(()) for k in GRAD_KEYS]
        results[engine] = (colors.detach(), alphas.detach(), grads, meta["means2d"].absgrad.clone())
        monkeypatch.undo()
    return results


def assert_same(results: dict, rtol: float = 1e-4) -> None:
    (c1, a1, g1, abs1), (c2, a2, g2, abs2) = results["compiled"], results["twin"]
    torch.testing.assert_close(c1, c2, atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(a1, a2, atol=5e-6, rtol=1e-5)
    for name, x, y in zip(GRAD_KEYS + ("absgrad",), g1 + [abs1], g2 + [abs2]):
        scale = y.abs().max()
        assert (x - y).abs().max() <= rtol * scale + 1e-12, (name, float((x - y).abs().max()), float(scale))


@pytest.mark.parametrize("seed, sh_degree, mode, packed", [(0, None, "RGB", True), (1, 3, "RGB+ED", False),
                                                           (2, None, "D", True)])
def test_compiled_kernels_match_the_twin_on_random_scenes(monkeypatch, seed, sh_degree, mode, packed):
    scene = make_scene(N=3000, C=2, W=96, H=70, seed=seed, sh_degree=sh_degree)  # 70: a partial row of tiles
    results = render_both(scene, monkeypatch, sh_degree=sh_degree, render_mode=mode, packed=packed,
                          backgrounds=torch.rand(2, 3) if mode != "D" else None)
    assert results["compiled"][1].mean() > 0.3  # the scene covers much of the images: the comparison means something
    assert_same(results)


def test_saturated_pixels_stop_where_the_twin_stops(monkeypatch):
    """Many near-opaque Gaussians: every pixel ends early (and alphas clamp at 0.999), as gsplat's kernels."""
    scene = make_scene(N=2000, C=1, W=48, H=40, seed=4, opacity=(0.9, 1.0))
    scene["scales"], scene["means"] = scene["scales"] * 3, scene["means"] * torch.tensor([2.5, 2.5, 1.0])
    results = render_both(scene, monkeypatch)
    assert (results["compiled"][1] > 0.999).float().mean() > 0.9  # nearly every pixel stopped early
    assert_same(results)


def test_gaussians_behind_the_camera_and_empty_tiles_give_nothing(monkeypatch):
    scene = make_scene(N=200, C=1, W=64, H=48, seed=5)
    scene["means"] = scene["means"] * 0.2 + torch.tensor([0.0, 0.0, -9.0])  # all behind the camera at z=-4
    results = render_both(scene, monkeypatch)
    colors, alphas, grads, _ = results["compiled"]
    assert colors.abs().max() == 0 and alphas.abs().max() == 0
    assert all(g.abs().max() == 0 for g in grads[:4])  # nothing drawn, nothing to learn (colours: none visible)
    # one Gaussian in one corner: every other tile is empty
    one = make_scene(N=1, C=1, W=64, H=48, seed=6)
    one["means"] = torch.tensor([[0.75, 0.55, 0.0]])
    results = render_both(one, monkeypatch)
    assert 0 < (results["compiled"][1] > 0).float().mean() < 0.2
    assert_same(results)


def test_float64_and_disabled_kernels_use_the_twin(monkeypatch):
    assert K.kernels_for(torch.zeros(2, 3, dtype=torch.float64)) is None
    assert K.kernels_for(torch.zeros(2, 3)) is not None
    with K.torch_twin():
        assert K.kernels_for(torch.zeros(2, 3)) is None
    assert K.kernels_for(torch.zeros(2, 3)) is not None
    monkeypatch.setenv("RESHOOT_KERNELS", "0")
    K.composite_kernels.cache_clear()
    try:
        assert K.composite_kernels() is None
    finally:
        monkeypatch.delenv("RESHOOT_KERNELS")
        K.composite_kernels.cache_clear()
    assert K.composite_kernels() is not None


def test_a_failed_build_warns_once_and_the_twin_renders(monkeypatch):
    def broken(verbose=False):
        raise RuntimeError("Error building extension 'reshoot_kernels'\ng++: not found")

    monkeypatch.setattr(K, "build", broken)
    K.composite_kernels.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scene = make_scene(N=50, C=1, seed=7)
            colors, alphas, _ = R.rasterization(**scene)
            R.rasterization(**scene)
        messages = [str(w.message) for w in caught if issubclass(w.category, K.KernelWarning)]
        assert len(messages) == 1 and "g++: not found" in messages[0] and "apt-get install g++" in messages[0]
        assert alphas.max() > 0.5  # the twin drew it
    finally:
        monkeypatch.undo()
        K.composite_kernels.cache_clear()
    assert K.composite_kernels() is not None


def test_the_build_cache_is_keyed_by_source_torch_and_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("RESHOOT_KERNELS_CACHE", str(tmp_path))
    first = K.cache_dir()
    assert first.parent == tmp_path and first.name.startswith("kernels-")
    monkeypatch.setattr(K, "_cpu_features", lambda: "flags : fpu sse2")
    assert K.cache_dir() != first  # another CPU never loads a -march=native build made for this one


def test_projection_clamps_and_culls_as_the_twin(monkeypatch):
    """Gaussians wide of the field of view (the Jacobian's x/z, y/z clamped), behind the camera and beyond the far
    plane: the compiled projection's values and gradients are the twin's."""
    scene = make_scene(N=1500, C=2, W=64, H=48, seed=8, opacity=(0.3, 0.9))
    scene["means"] = scene["means"] * torch.tensor([6.0, 5.0, 3.0])  # many far outside the view, some behind
    scene["scales"] = scene["scales"] * 4  # big enough that off-view ones still reach the image
    results = render_both(scene, monkeypatch, far_plane=5.5, packed=False)
    assert results["compiled"][1].mean() > 0.2
    assert_same(results)
    meta = {}
    for engine in ("compiled", "twin"):
        monkeypatch.setattr(K, "_twin_only", engine == "twin")
        meta[engine] = R.rasterization(**scene, far_plane=5.5, packed=False)[2]
        monkeypatch.undo()
    radii = (meta["compiled"]["radii"] - meta["twin"]["radii"]).abs()  # ceil() of float-rounded extents
    assert radii.max() <= 1 and (radii > 0).float().mean() < 0.01
    lim = scene["Ks"][0, 0, 2] / scene["Ks"][0, 0, 0] * 1.35  # x/z beyond the Jacobian's clamp, in the first view
    assert (meta["twin"]["radii"][0, :, 0] > 0)[(scene["means"][:, 0] / (scene["means"][:, 2] + 4)).abs() > lim].any()
    for key in ("means2d", "depths", "conics", "opacities"):
        torch.testing.assert_close(meta["compiled"][key], meta["twin"][key], rtol=1e-4, atol=1e-4)


def test_compiled_tiling_lists_the_twins_intersections_in_the_same_order(monkeypatch):
    scene = make_scene(N=4000, C=3, W=96, H=70, seed=9)
    proj = R.project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["opacities"],
                               scene["viewmats"], scene["Ks"], 96, 70)
    flat = {k: v.detach().flatten(0, 1) for k, v in proj.per_view().items()}
    image_ids = torch.arange(3).repeat_interleave(4000)
    plans = {}
    for engine in ("compiled", "twin"):
        monkeypatch.setattr(K, "_twin_only", engine == "twin")
        plans[engine] = R.plan_tiles(flat["means2d"], flat["radii"], flat["depths"], image_ids, 3, 96, 70, 8,
                                     conics=flat["conics"], opacities=flat["opacities"])
        monkeypatch.undo()
    compiled, twin = plans["compiled"], plans["twin"]
    assert len(twin.flatten_ids) > 20_000
    for key in ("flatten_ids", "isect_keys", "tile_keys", "tile_starts", "tile_counts", "tiles_per_gauss"):
        assert torch.equal(getattr(compiled, key), getattr(twin, key)), key
    assert compiled.batches == twin.batches


def test_the_set_up_command_builds_quietly_when_built():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "reshoot.splat.build_kernels"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout == "" and "Warning" not in done.stderr, done.stderr


def test_a_build_lock_left_by_a_killed_build_is_removed_and_a_fresh_one_kept(tmp_path):
    import os
    import time

    lock = tmp_path / "lock"
    lock.write_text("")
    assert not K.clear_stale_lock(tmp_path)  # another process is building now
    assert lock.exists()
    old = time.time() - K.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    with pytest.warns(K.KernelWarning, match="never finished"):
        assert K.clear_stale_lock(tmp_path)
    assert not lock.exists() and not K.clear_stale_lock(tmp_path)
