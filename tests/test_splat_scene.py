"""The dynamic scene model: static Gaussians ignore time, dynamic ones fade and move about their instant, and
gsplat's densification carries every parameter along."""

from __future__ import annotations

import math

import pytest
import torch

from reshoot.splat.scene import DynamicScene, concat_params, make_params


def _scene(sh_degree: int = 1) -> DynamicScene:
    static = make_params(torch.tensor([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0]]), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]),
                         torch.tensor([0.1, 0.1]), sh_degree)
    dynamic = make_params(torch.tensor([[0.0, 0.5, 2.0]]), torch.tensor([[0, 0, 1.0]]), torch.tensor([0.1]), sh_degree,
                          times=torch.tensor([0.5]), time_scale=0.1, opacity=0.8)
    scene = DynamicScene(concat_params(static, dynamic), sh_degree)
    with torch.no_grad():
        scene.params["velocities"][:] = torch.tensor([1.0, 0.0, 0.0])  # static ones must ignore this
    return scene


def test_static_gaussians_do_not_change_with_time():
    scene = _scene()
    a, b = scene.at(0.0), scene.at(1.0)
    torch.testing.assert_close(a.means[:2], b.means[:2])
    torch.testing.assert_close(a.opacities[:2], torch.full((2,), 0.1))
    torch.testing.assert_close(b.opacities[:2], torch.full((2,), 0.1))


def test_dynamic_gaussians_fade_and_move_about_their_instant():
    scene = _scene()
    at_centre, later = scene.at(0.5), scene.at(0.6)
    assert at_centre.opacities[2].item() == pytest.approx(0.8)
    assert later.opacities[2].item() == pytest.approx(0.8 * math.exp(-1.0), rel=1e-5)  # one time scale away
    assert scene.at(1.0).opacities[2].item() < 1e-9
    torch.testing.assert_close(later.means[2], torch.tensor([0.1, 0.5, 2.0]))  # v * (t - t_c)
    assert scene.num_dynamic == 1 and len(scene) == 3


def test_instant_export_drops_invisible_gaussians_and_keeps_raw_form():
    scene = _scene()
    frozen = scene.instant(1.0)
    assert frozen["means"].shape == (2, 3)  # the dynamic Gaussian is invisible at t = 1
    at_centre = scene.instant(0.5)
    assert at_centre["means"].shape == (3, 3)
    assert torch.sigmoid(at_centre["opacities_logit"][2]).item() == pytest.approx(0.8, rel=1e-4)
    static = scene.static_part()
    assert static["means"].shape == (2, 3) and static["shN"].shape == (2, 3, 3)


def test_bad_parameters_are_named():
    params = make_params(torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(4), 1)
    params["velocities"] = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"'velocities' must have shape \[4, 3\], got \[4, 2\]"):
        DynamicScene(params, 1)
    del params["velocities"]
    with pytest.raises(ValueError, match="lack"):
        DynamicScene(params, 1)


def test_gsplat_densification_splits_every_parameter_together():
    from gsplat.strategy import ops

    scene = _scene()
    optimizers = {name: torch.optim.Adam([p]) for name, p in scene.params.items() if p.requires_grad}
    state: dict = {}
    ops.split(scene.params, optimizers, state, torch.tensor([False, False, True]))
    assert len(scene) == 4
    assert scene.params["dynamic"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert scene.params["times"][2:].tolist() == [0.5, 0.5]
    assert not scene.params["dynamic"].requires_grad
    assert all(p.shape[0] == 4 for p in scene.params.values())


def _binoms(n_max: int = 51) -> torch.Tensor:
    import math

    return torch.tensor([[math.comb(n, k) if k <= n else 0 for k in range(n_max)] for n in range(n_max)],
                        dtype=torch.float32)


def _relocation_by_loops(opacity: float, scale: float, n: int) -> tuple[float, float]:
    """Equation 9 of "3DGS as MCMC", written out as gsplat's CUDA kernel loops."""
    import math

    new = 1 - (1 - opacity) ** (1 / n)
    denominator = sum(math.comb(i - 1, k) * (-1) ** k / math.sqrt(k + 1) * new ** (k + 1)
                      for i in range(1, n + 1) for k in range(i))
    return new, opacity / denominator * scale


def test_mcmc_relocation_twin_follows_the_papers_equation():
    from reshoot.splat._gsplat_torch import relocation

    opacities = torch.tensor([0.3, 0.9, 0.5, 0.05, 0.99], dtype=torch.float64)
    ratios = torch.tensor([1, 2, 5, 3, 80])  # 80 is clamped to n_max = 51, as gsplat does
    scales = torch.tensor([[1.0, 2.0, 0.5]] * 5, dtype=torch.float64)
    new_opacities, new_scales = relocation(opacities, scales, ratios.clone(), _binoms().double())
    for j, n in enumerate(ratios.clamp(max=51).tolist()):
        want_opacity, want_scale = _relocation_by_loops(float(opacities[j]), 1.0, n)
        assert float(new_opacities[j]) == pytest.approx(want_opacity, rel=1e-9)
        assert new_scales[j].tolist() == pytest.approx([want_scale, 2 * want_scale, 0.5 * want_scale], rel=1e-6)
    # one copy is the Gaussian itself; more copies are fainter
    assert float(new_opacities[0]) == pytest.approx(0.3) and new_scales[0].tolist() == pytest.approx([1, 2, 0.5])
    assert float(new_opacities[1]) < 0.9


@pytest.mark.gpu
def test_mcmc_relocation_twin_matches_gsplats_cuda_kernel():
    from gsplat.relocation import compute_relocation

    from reshoot.splat._gsplat_torch import relocation

    generator = torch.Generator().manual_seed(0)
    opacities = torch.rand(1000, generator=generator) * 0.98 + 0.01
    scales = torch.rand(1000, 3, generator=generator)
    ratios = torch.randint(1, 12, (1000,), generator=generator)
    want = compute_relocation(opacities.cuda(), scales.cuda(), ratios.cuda().clone(), _binoms().cuda())
    got = relocation(opacities, scales, ratios.clone(), _binoms())
    torch.testing.assert_close(got[0], want[0].cpu(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1], want[1].cpu(), atol=1e-4, rtol=1e-3)


def test_mcmc_strategy_runs_on_cpu_through_the_twins():
    """gsplat's MCMCStrategy itself on CPU tensors: relocates dead Gaussians, adds 5 %, moves the faint ones."""
    from gsplat.strategy import MCMCStrategy

    from reshoot.splat._gsplat_torch import enable_mcmc_on_cpu

    enable_mcmc_on_cpu()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    static = make_params(torch.rand(30, 3, generator=generator), torch.rand(30, 3, generator=generator),
                         torch.full((30,), 0.05), 1, opacity=0.6)
    dynamic = make_params(torch.rand(10, 3, generator=generator), torch.rand(10, 3, generator=generator),
                          torch.full((10,), 0.05), 1, times=torch.rand(10, generator=generator), opacity=0.6)
    scene = DynamicScene(concat_params(static, dynamic), 1)
    with torch.no_grad():
        scene.params["opacities"][[0, 35]] = -8.0  # one static and one dynamic Gaussian are dead (opacity 0.0003)
    means = scene.params["means"].detach().clone()
    optimizers = {name: torch.optim.Adam([p]) for name, p in scene.params.items() if p.requires_grad}
    strategy = MCMCStrategy(cap_max=100, refine_start_iter=0, refine_every=1)
    strategy.check_sanity(scene.params, optimizers)
    strategy.step_post_backward(scene.params, optimizers, strategy.initialize_state(), 1, {}, lr=1e-3)
    assert len(scene) == 42  # int(1.05 * 40): 5 % more, sampled by opacity
    opacities = torch.sigmoid(scene.params["opacities"])
    assert opacities[[0, 35]].min() > 0.005  # the dead ones were relocated onto live ones
    assert all(p.shape[0] == 42 for p in scene.params.values())
    assert set(scene.params["dynamic"].tolist()) <= {0.0, 1.0}
    # relocated and added Gaussians copy a live one's position exactly; MCMC's noise moved no live, opaque ones
    moved = (scene.params["means"][:40].detach() - means).norm(dim=-1)
    live = [i for i in range(40) if i not in (0, 35)]
    assert float(moved[live].max()) < 1e-3
