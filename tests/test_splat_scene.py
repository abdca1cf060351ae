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
