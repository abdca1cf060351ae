"""The CPU rasterizer against a brute-force compositor, gsplat's projection, finite differences and gsplat's
DefaultStrategy (and, on a GPU, against gsplat's CUDA rasterizer itself). Every test runs twice: with the
compiled compositing kernels (reshoot.splat.kernels) and with the torch twin alone."""

from __future__ import annotations

import math

import pytest
import torch

from reshoot.splat import _gsplat_torch as gst
from reshoot.splat import rasterize as R
from reshoot.splat import kernels as K
from reshoot.splat import tiles as T
from reshoot.splat.kernels import composite_kernels
from reshoot.splat.rasterize import rasterization, rasterize_cpu

GRAD_KEYS = ("means", "quats", "scales", "opacities", "colors")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny scenes: one intra-op thread is faster, and immune to a busy shared machine's oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, params=["compiled", "twin"])
def engine(request, monkeypatch):
    """Composite with the compiled kernels, or with the torch twin alone."""
    if request.param == "twin":
        monkeypatch.setattr(K, "_twin_only", True)
    elif composite_kernels() is None:
        pytest.skip("reshoot's compiled CPU kernels are not built here (see the KernelWarning); the twin runs")
    return request.param


# ---------------------------------------------------------------- reference and scenes


def reference_render(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree=None,
                     backgrounds=None, render_mode="RGB", near_plane=0.01, far_plane=1e10, eps2d=0.3,
                     antialiased=False, min_transmittance=1e-4):
    """All Gaussian-pixel pairs at once, gsplat's thresholds, projection by gsplat's own torch twin."""
    covars = gst.quat_scale_to_covar(quats, scales)
    _, means2d, depths, conics, comp = gst.fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
        calc_compensations=antialiased)
    C, N = depths.shape
    opac = opacities[None].expand(C, N) * (comp if antialiased else 1.0)
    if sh_degree is not None:
        dirs = means[None] - torch.inverse(viewmats)[:, None, :3, 3]
        sh = colors if colors.dim() == 4 else colors[None].expand(C, *colors.shape)
        colors = torch.clamp_min(gst.spherical_harmonics(sh_degree, dirs, sh) + 0.5, 0.0)
    elif colors.dim() == 2:
        colors = colors[None].expand(C, *colors.shape)
    if render_mode in ("D", "ED"):
        colors = depths[..., None]
    elif render_mode in ("RGB+D", "RGB+ED"):
        colors = torch.cat([colors, depths[..., None]], -1)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means.dtype), torch.arange(width, dtype=means.dtype),
                            indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 2) + 0.5
    outs, alphas = [], []
    for c in range(C):
        order = torch.sort(depths[c], stable=True)[1]
        m, k, o, f, z = means2d[c][order], conics[c][order], opac[c][order], colors[c][order], depths[c][order]
        d = m[None] - pix[:, None]  # [HW, N, 2], mean - pixel as gsplat
        dx, dy = d[..., 0], d[..., 1]
        sigma = 0.5 * (k[:, 0] * dx * dx + k[:, 2] * dy * dy) + k[:, 1] * dx * dy
        a = torch.clamp(o * torch.exp(-sigma), max=0.999)
        a = torch.where((a >= 1 / 255) & (sigma >= 0) & ((z >= near_plane) & (z <= far_plane))[None], a, 0.0)
        cum = torch.cumprod(1 - a, -1)
        blended = cum > min_transmittance  # gsplat stops before the Gaussian that takes T to <= 1e-4
        T_before = torch.cat([torch.ones_like(cum[:, :1]), cum[:, :-1]], -1)
        w = torch.where(blended, a * T_before, 0.0)
        T = torch.where(blended, 1 - a, 1.0).prod(-1)
        out = w @ f
        if backgrounds is not None and render_mode not in ("D", "ED"):
            bg = backgrounds[c] if render_mode == "RGB" else torch.cat([backgrounds[c], backgrounds.new_zeros(1)])
            out = out + T[:, None] * bg
        outs.append(out.reshape(height, width, -1))
        alphas.append((1 - T).reshape(height, width, 1))
    out, alpha = torch.stack(outs), torch.stack(alphas)
    if render_mode in ("ED", "RGB+ED"):
        out = torch.cat([out[..., :-1], out[..., -1:] / alpha.clamp(min=1e-10)], -1)
    return out, alpha


def look_at(eye, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """World-to-camera [4, 4], OpenCV axes (x right, y down, z forward), world y up."""
    eye, target = torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    z = (target - eye) / (target - eye).norm()
    x = torch.linalg.cross(z, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    x = x / x.norm()
    R_ = torch.stack([x, torch.linalg.cross(z, x), z])
    M = torch.eye(4, dtype=torch.float64)
    M[:3, :3], M[:3, 3] = R_, -R_ @ eye
    return M


def make_scene(N=300, C=3, W=64, H=48, seed=0, sh_degree=None, opacity=(0.05, 0.95), dtype=torch.float32):
    """Random overlapping Gaussians around the origin seen by C cameras about 4 units away."""
    g = torch.Generator().manual_seed(seed)
    colors = (torch.rand(N, 3, generator=g) if sh_degree is None
              else torch.randn(N, (sh_degree + 1) ** 2, 3, generator=g) * 0.3)
    scene = dict(means=(torch.rand(N, 3, generator=g) - 0.5) * torch.tensor([2.0, 1.5, 2.0]),
                 quats=torch.randn(N, 4, generator=g), scales=torch.rand(N, 3, generator=g) * 0.12 + 0.02,
                 opacities=torch.rand(N, generator=g) * (opacity[1] - opacity[0]) + opacity[0], colors=colors,
                 viewmats=torch.stack([look_at((0.3 * i, 0.2, -4.0 + 0.2 * i)) for i in range(C)]),
                 Ks=torch.tensor([[0.9 * W, 0, W / 2], [0, 0.9 * W, H / 2], [0, 0, 1]]).expand(C, 3, 3).clone())
    scene = {k: v.to(dtype) for k, v in scene.items()}
    return {**scene, "width": W, "height": H}


def assert_close(actual, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("packed", [True, False])
def test_rgb_matches_brute_force_with_backgrounds_and_cameras(packed):
    scene = make_scene(C=3)
    bg = torch.rand(3, 3, generator=torch.Generator().manual_seed(1))
    colors, alphas, meta = rasterize_cpu(**scene, backgrounds=bg, packed=packed)
    ref_colors, ref_alphas = reference_render(**scene, backgrounds=bg)
    assert colors.shape == (3, 48, 64, 3) and alphas.shape == (3, 48, 64, 1)
    assert ref_alphas.mean() > 0.2 and ref_alphas.max() > 0.99  # overlapping, some pixels nearly opaque
    assert_close(colors, ref_colors)
    assert_close(alphas, ref_alphas)


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_sh_colours_match_brute_force(sh_degree):
    scene = make_scene(C=2, sh_degree=sh_degree, seed=2)
    colors, alphas, _ = rasterize_cpu(**scene, sh_degree=sh_degree)
    ref_colors, ref_alphas = reference_render(**scene, sh_degree=sh_degree)
    assert_close(colors, ref_colors)
    assert_close(alphas, ref_alphas)


def test_per_camera_colours_and_wide_features():
    scene = make_scene(C=2, seed=3)
    scene["colors"] = torch.rand(2, 300, 5, generator=torch.Generator().manual_seed(4))  # [C, N, D], D = 5
    colors, _, _ = rasterize_cpu(**scene, packed=True)
    assert_close(colors, reference_render(**scene)[0])


@pytest.mark.parametrize("mode", ["D", "ED", "RGB+D", "RGB+ED"])
def test_depth_modes_match_brute_force(mode):
    scene = make_scene(C=2, seed=5)
    bg = torch.rand(2, 3)
    colors, alphas, _ = rasterize_cpu(**scene, render_mode=mode, backgrounds=bg)
    ref_colors, ref_alphas = reference_render(**scene, render_mode=mode, backgrounds=bg)
    assert colors.shape[-1] == (1 if mode in ("D", "ED") else 4)
    seen = ref_alphas[..., 0] > 0.05  # expected depth divides by alpha: compare where there is some
    assert_close(colors[seen], ref_colors[seen], atol=1e-5, rtol=2e-5)
    assert_close(alphas, ref_alphas)
    if mode.endswith("ED"):
        depth = colors[..., -1][seen]
        assert 2.5 < depth.min() and depth.max() < 5.5  # the Gaussians sit 2.7-5.3 units from the cameras


def test_antialiased_mode_matches_brute_force():
    scene = make_scene(C=2, seed=6)
    colors, alphas, _ = rasterize_cpu(**scene, rasterize_mode="antialiased")
    ref_colors, ref_alphas = reference_render(**scene, antialiased=True)
    assert_close(colors, ref_colors)
    assert_close(alphas, ref_alphas)
    classic = rasterize_cpu(**scene)[1]
    assert (alphas <= classic + 1e-6).all() and (alphas < classic - 1e-3).any()  # compensation thins them


def test_opaque_stacks_stop_like_gsplat_across_slabs_and_batches(monkeypatch):
    """Many near-opaque layers (transmittance runs out, alphas clamp at 0.999) split into several depth
    slabs and tile batches."""
    scene = make_scene(N=250, C=2, seed=7, opacity=(0.9, 1.0))
    scene["scales"] = scene["scales"] * 3
    for module in (R, T):
        monkeypatch.setattr(module, "DEPTH_SLAB", 16)
    monkeypatch.setattr(T, "PAIRS_PER_BATCH", 20_000)
    for key in GRAD_KEYS:
        scene[key].requires_grad_(True)
    colors, alphas, _ = rasterize_cpu(**scene)
    ref_colors, ref_alphas = reference_render(**scene)
    unstopped = reference_render(**scene, min_transmittance=0.0)[0]
    assert (unstopped - ref_colors).abs().amax(-1).gt(1e-4).float().mean() > 0.05  # many pixels stopped early
    assert_close(colors, ref_colors)
    assert_close(alphas, ref_alphas)
    _assert_same_grads(scene, colors, alphas, ref_colors, ref_alphas, GRAD_KEYS)


@pytest.mark.parametrize("tile_size", [4, 16])
def test_tile_size_does_not_change_the_image(tile_size):
    scene = make_scene(C=1, seed=8)
    assert_close(rasterize_cpu(**scene, tile_size=tile_size)[0], rasterize_cpu(**scene, tile_size=8)[0])


# ---------------------------------------------------------------- gradients


def _assert_same_grads(scene, colors, alphas, ref_colors, ref_alphas, keys, extra=()):
    weights = torch.rand(colors.shape, generator=torch.Generator().manual_seed(9))
    weights_a = torch.rand(alphas.shape, generator=torch.Generator().manual_seed(10))
    inputs = [scene[k] for k in keys] + list(extra)
    ours = torch.autograd.grad((colors * weights).sum() + (alphas * weights_a).sum(), inputs, retain_graph=True)
    refs = torch.autograd.grad((ref_colors * weights).sum() + (ref_alphas * weights_a).sum(), inputs)
    for name, a, b in zip(list(keys) + ["extra"] * len(extra), ours, refs):
        scale = b.abs().max()
        assert scale > 0, name
        # float32 sums in another order (tiles, threads): 1e-4 of the largest gradient (a wrong term is ~1e-1)
        assert (a - b).abs().max() <= 1e-4 * scale, (name, float((a - b).abs().max()), float(scale))


@pytest.mark.parametrize("packed, mode, sh_degree", [(True, "RGB", None), (False, "RGB+ED", None),
                                                     (True, "RGB", 3), (False, "D", None)])
def test_gradients_match_brute_force(packed, mode, sh_degree):
    scene = make_scene(C=2, seed=11, sh_degree=sh_degree)
    bg = torch.rand(2, 3, requires_grad=True)
    for key in GRAD_KEYS:
        scene[key].requires_grad_(True)
    colors, alphas, _ = rasterize_cpu(**scene, packed=packed, render_mode=mode, sh_degree=sh_degree, backgrounds=bg)
    ref_colors, ref_alphas = reference_render(**scene, render_mode=mode, sh_degree=sh_degree, backgrounds=bg)
    keys = GRAD_KEYS if mode != "D" else GRAD_KEYS[:4]  # depth alone does not see the colours
    _assert_same_grads(scene, colors, alphas, ref_colors, ref_alphas, keys, extra=(bg,) if mode != "D" else ())


def test_gradcheck_float64_tiny_scene():
    """Finite differences, far from every threshold: big soft Gaussians covering a 10x8 image."""
    scene = make_scene(N=3, C=1, W=10, H=8, seed=12, opacity=(0.3, 0.6), dtype=torch.float64)
    scene["means"] = torch.tensor([[0.05, 0.0, 0.0], [-0.05, 0.03, 0.2], [0.0, -0.04, -0.3]], dtype=torch.float64)
    scene["scales"] = torch.full((3, 3), 0.9, dtype=torch.float64) + torch.rand(3, 3, dtype=torch.float64) * 0.2
    bg = torch.tensor([[0.2, 0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    inputs = [scene[k].clone().requires_grad_(True) for k in GRAD_KEYS]

    def render(means, quats, scales, opacities, colors, backgrounds):
        out, alpha, _ = rasterize_cpu(means, quats, scales, opacities, colors, scene["viewmats"], scene["Ks"], 10, 8,
                                      backgrounds=backgrounds, render_mode="RGB+ED", tile_size=4)
        return out, alpha

    assert torch.autograd.gradcheck(render, (*inputs, bg), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


# ---------------------------------------------------------------- geometry, culling, meta


def _single(mean, scale=0.05, opacity=0.9, W=40, H=30, f=50.0, near_plane=0.01):
    K = torch.tensor([[[f, 0.0, W / 2 + 1.3], [0.0, f, H / 2 - 0.7], [0.0, 0.0, 1.0]]])
    return rasterize_cpu(torch.tensor([mean]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.full((1, 3), scale),
                         torch.tensor([opacity]), torch.ones(1, 3), torch.eye(4)[None], K, W, H,
                         backgrounds=torch.full((1, 3), 0.25), near_plane=near_plane, packed=False)


def test_single_gaussian_peaks_at_its_pinhole_projection():
    x, y, z, f, cx, cy = 0.3, -0.2, 4.0, 50.0, 20 + 1.3, 15 - 0.7
    u, v = f * x / z + cx, f * y / z + cy  # 25.05, 11.8 (OpenCV: y down, pixel centres at +0.5)
    _, alphas, meta = _single((x, y, z))
    assert_close(meta["means2d"][0, 0], torch.tensor([u, v]))
    peak = int(alphas[0, ..., 0].argmax())
    assert (peak // 40, peak % 40) == (int(v), int(u))
    ys, xs = torch.meshgrid(torch.arange(30) + 0.5, torch.arange(40) + 0.5, indexing="ij")
    w = alphas[0, ..., 0]
    centroid = torch.stack([(w * xs).sum(), (w * ys).sum()]) / w.sum()
    assert_close(centroid, torch.tensor([u, v]), atol=0.02, rtol=0)
    # EWA by hand: J = [[f/z, 0, -f x/z^2], [0, f/z, -f y/z^2]], covariance s^2 J J^T, plus the eps2d blur
    J = torch.tensor([[f / z, 0, -f * x / z ** 2], [0, f / z, -f * y / z ** 2]], dtype=torch.float64)
    cov2d = 0.05 ** 2 * J @ J.T + 0.3 * torch.eye(2, dtype=torch.float64)
    d = torch.tensor([25 + 0.5 - u, 11 + 0.5 - v], dtype=torch.float64)
    assert abs(float(alphas.max()) - 0.9 * math.exp(-0.5 * float(d @ torch.linalg.solve(cov2d, d)))) < 1e-6


@pytest.mark.parametrize("z, near_plane", [(-2.0, 0.01), (0.005, 0.01), (0.5, 1.0)])
def test_gaussians_behind_the_near_plane_are_culled(z, near_plane):
    colors, alphas, meta = _single((0.0, 0.0, z), near_plane=near_plane)
    assert int(meta["radii"].abs().sum()) == 0 and float(alphas.max()) == 0.0
    assert torch.equal(colors, torch.full_like(colors, 0.25))  # background only
    assert torch.isfinite(meta["means2d"]).all()


def test_projection_matches_gsplat_torch_twin():
    scene = make_scene(C=3, seed=13)
    proj = R.project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["viewmats"],
                               scene["Ks"], 64, 48)
    covars = gst.quat_scale_to_covar(scene["quats"], scene["scales"])
    radii, means2d, depths, conics, _ = gst.fully_fused_projection(scene["means"], covars, scene["viewmats"],
                                                                   scene["Ks"], 64, 48)
    ok = proj.valid
    assert ok.sum() > 500
    assert_close(proj.means2d[ok], means2d[ok])
    assert_close(proj.conics[ok], conics[ok])
    assert_close(proj.depths[ok], depths[ok])
    assert (proj.radii <= radii).all()  # opacity-aware radii are never wider than 3.33 sigma
    assert proj.radii.dtype == torch.int32 and proj.radii.shape == (3, 300, 2)


@pytest.mark.parametrize("packed", [True, False])
def test_meta_has_gsplats_keys_and_shapes(packed):
    scene = make_scene(C=2, seed=14)
    _, _, meta = rasterize_cpu(**scene, packed=packed)
    expected = {"batch_ids", "camera_ids", "gaussian_ids", "radii", "means2d", "depths", "conics", "opacities",
                "tile_width", "tile_height", "tiles_per_gauss", "isect_ids", "flatten_ids", "isect_offsets", "width",
                "height", "tile_size", "n_batches", "n_cameras"}
    assert set(meta) == expected
    assert meta["n_cameras"] == 2 and (meta["width"], meta["height"]) == (64, 48)
    assert meta["means2d"].requires_grad is False  # no input asked for gradients
    if packed:
        nnz = len(meta["gaussian_ids"])
        assert meta["radii"].shape == (nnz, 2) and meta["means2d"].shape == (nnz, 2)
        assert (meta["radii"] > 0).all() and (meta["camera_ids"].diff() >= 0).all()
    else:
        assert meta["radii"].shape == (2, 300, 2) and meta["means2d"].shape == (2, 300, 2)
        assert meta["gaussian_ids"] is None
    assert meta["isect_offsets"].shape == (2, meta["tile_height"], meta["tile_width"])
    assert int(meta["tiles_per_gauss"].sum()) == len(meta["flatten_ids"]) == len(meta["isect_ids"])
    assert (meta["isect_ids"].diff() >= 0).all()  # gsplat's sort order: image, tile, depth


def test_absgrad_sums_absolute_pixel_gradients():
    scene = make_scene(C=1, seed=15)
    scene["means"].requires_grad_(True)
    colors, _, meta = rasterize_cpu(**scene, absgrad=True, packed=False)
    meta["means2d"].retain_grad()
    (colors * torch.randn_like(colors)).sum().backward()
    grad, absgrad = meta["means2d"].grad, meta["means2d"].absgrad
    assert absgrad.shape == grad.shape and (absgrad >= grad.abs() - 1e-6).all()
    assert (absgrad > grad.abs() + 1e-4).any()


def test_empty_view_renders_background():
    scene = make_scene(C=1, seed=16)
    scene["means"] = scene["means"] + torch.tensor([0.0, 0.0, -10.0])  # all behind the camera
    bg = torch.tensor([[0.1, 0.2, 0.3]])
    colors, alphas, meta = rasterize_cpu(**scene, backgrounds=bg)
    assert len(meta["gaussian_ids"]) == 0 and float(alphas.abs().max()) == 0.0
    assert_close(colors, bg[:, None, None].expand_as(colors))


# ---------------------------------------------------------------- errors and dispatch


@pytest.mark.parametrize("key, bad, expected", [("quats", torch.zeros(300, 3), r"`quats`.*\[300, 4\].*\[300, 3\]"),
                                                 ("opacities", torch.zeros(300, 1), r"`opacities`.*\[300\]"),
                                                 ("Ks", torch.zeros(3, 3), r"`Ks`.*\[3, 3, 3\]"),
                                                 ("colors", torch.zeros(299, 3), r"`colors`.*N=300"),
                                                 ("viewmats", torch.zeros(3, 3, 4), r"`viewmats`.*\[C, 4, 4\]")])
def test_bad_shapes_name_the_argument(key, bad, expected):
    scene = make_scene(C=3)
    scene[key] = bad
    with pytest.raises(ValueError, match=expected):
        rasterization(**scene)


def test_bad_options_are_refused():
    scene = make_scene(C=1)
    with pytest.raises(ValueError, match="backgrounds"):
        rasterize_cpu(**scene, backgrounds=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="render_mode"):
        rasterize_cpu(**scene, render_mode="RGBD")
    with pytest.raises(ValueError, match=r"sh_degree \+ 1"):
        rasterize_cpu(**{**scene, "colors": torch.zeros(300, 4, 3)}, sh_degree=3)
    with pytest.raises(NotImplementedError, match="camera_model"):
        rasterization(**scene, camera_model="fisheye")
    with pytest.raises(NotImplementedError, match="with_ut"):
        rasterization(**scene, with_ut=True)


def test_cpu_dispatch_is_rasterize_cpu():
    scene = make_scene(C=1, seed=17)
    a = rasterization(**scene, packed=False)[0]
    assert torch.equal(a, rasterize_cpu(**scene, packed=False)[0])


# ---------------------------------------------------------------- training with gsplat's strategy


@pytest.mark.parametrize("packed", [True, False])
def test_default_strategy_densifies_and_prunes_on_cpu(packed):
    from gsplat.strategy import DefaultStrategy

    scene = make_scene(N=200, C=2, seed=18, sh_degree=1)
    logit = torch.logit(scene["opacities"])
    logit[:20] = -10.0  # transparent: pruned at the first refinement
    params = torch.nn.ParameterDict({
        "means": scene["means"], "quats": scene["quats"], "scales": torch.log(scene["scales"]),
        "opacities": logit, "sh0": scene["colors"][:, :1], "shN": scene["colors"][:, 1:]})
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": 1e-3, "name": k}], eps=1e-15) for k in params}
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=2, reset_every=10_000, grow_grad2d=1e-8,
                               grow_scale3d=0.05)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    target = torch.rand(2, 48, 64, 3, generator=torch.Generator().manual_seed(19))
    for step in range(3):
        sh = torch.cat([params["sh0"], params["shN"]], 1)
        colors, _, info = rasterization(params["means"], params["quats"], torch.exp(params["scales"]),
                                        torch.sigmoid(params["opacities"]), sh, scene["viewmats"], scene["Ks"], 64, 48,
                                        sh_degree=1, packed=packed)
        strategy.step_pre_backward(params, optimizers, state, step, info)
        (colors - target).abs().mean().backward()
        assert info["means2d"].grad is not None and info["means2d"].grad.abs().sum() > 0
        strategy.step_post_backward(params, optimizers, state, step, info, packed=packed)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
    n = len(params["means"])
    assert n > 200  # visible Gaussians with image-plane gradients were split or duplicated
    assert (torch.sigmoid(params["opacities"]) >= 0.005).all()  # the transparent ones were pruned
    assert all(len(p) == n for p in params.values()) and all(
        opt.param_groups[0]["params"][0] is params[k] for k, opt in optimizers.items())


# ---------------------------------------------------------------- against gsplat's CUDA kernels


@pytest.mark.gpu
@pytest.mark.parametrize("packed, mode", [(True, "RGB"), (False, "RGB+ED")])
def test_matches_gsplat_cuda(packed, mode):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (gsplat's kernels)")
    import gsplat

    scene = make_scene(N=500, C=2, seed=20, sh_degree=3)
    cuda = {k: (v.cuda().requires_grad_(k in GRAD_KEYS) if torch.is_tensor(v) else v) for k, v in scene.items()}
    cpu = {k: (v.clone().requires_grad_(k in GRAD_KEYS) if torch.is_tensor(v) else v) for k, v in scene.items()}
    ours = rasterize_cpu(**cpu, sh_degree=3, packed=packed, render_mode=mode)
    theirs = gsplat.rasterization(**cuda, sh_degree=3, packed=packed, render_mode=mode, tile_size=16)
    for a, b in zip(ours[:2], theirs[:2]):  # gsplat's kernels use fast-math exp and log
        torch.testing.assert_close(a, b.cpu(), atol=2e-4, rtol=2e-4)
    if not packed:
        assert (ours[2]["radii"] - theirs[2]["radii"].cpu()).abs().max() <= 1  # ceil() of float32 maths
    weights = torch.rand(ours[0].shape)
    (ours[0] * weights).sum().backward()
    (theirs[0] * weights.cuda()).sum().backward()
    for key in GRAD_KEYS:
        a, b = cpu[key].grad, cuda[key].grad.cpu()
        assert (a - b).abs().max() <= 2e-3 * b.abs().max(), key
