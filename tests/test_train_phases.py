"""Training in two phases (the set first, then the performance against the frozen set), set stills, and what dense
set geometry tells training (depth priors, free-space pruning). On a tiny hand-made scene: a textured floor seen
by two cameras, a few Gaussians on it, one floater above it and one dynamic Gaussian."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from reshoot.cameras import Cameras, look_at
from reshoot.splat.data import SetStills, ShotFootage, normalised_times
from reshoot.splat.priors import DepthPriors, depth_priors, seen_through, surfel_radii, zbuffer_depth
from reshoot.splat.render import render
from reshoot.splat.scene import DynamicScene, concat_params, make_params
from reshoot.splat.train import Trainer
from reshoot.splat.train_config import TrainConfig
from reshoot.stages.reconstruct import ReconstructConfig

W, H, T = 48, 32, 4


def _cameras(ids, eyes) -> Cameras:
    poses = np.stack([look_at(eye, (0.0, 0.0, 0.0)) for eye in eyes])
    n = len(ids)
    return Cameras.create(ids, [40.0] * n, [40.0] * n, [W / 2] * n, [H / 2] * n, poses, np.tile([W, H], (n, 1)))


def _footage(seed: int = 0) -> ShotFootage:
    rng = np.random.default_rng(seed)
    cameras = _cameras(["a", "b"], [(0.0, -2.0, 1.5), (2.0, 0.2, 1.5)])
    images = rng.integers(0, 255, (2, T, H, W, 3), dtype=np.uint8)
    poses = np.repeat(cameras.world_to_camera[:, None], T, axis=1)
    return ShotFootage(cameras, images, np.ones((2, T), bool), poses, normalised_times(T), np.arange(T))


def _params(floater: bool = False):
    rng = np.random.default_rng(1)
    floor = np.concatenate([rng.uniform(-0.6, 0.6, (60, 2)), np.zeros((60, 1))], axis=1)
    means = [floor] + ([np.array([[0.0, 0.0, 0.8]])] if floater else [])
    static = make_params(torch.as_tensor(np.concatenate(means)), torch.rand(len(np.concatenate(means)), 3),
                         torch.full((len(np.concatenate(means)),), 0.08), 0, opacity=0.5)
    dynamic = make_params(torch.tensor([[0.0, 0.0, 0.3]]), torch.rand(1, 3), torch.full((1,), 0.1), 0,
                          times=torch.tensor([0.5]), time_scale=0.5, opacity=0.5)
    return concat_params(static, dynamic)


def test_the_set_phase_trains_only_the_set_and_never_on_the_performance():
    footage = _footage()
    scene = DynamicScene(_params(), 0)
    before = {k: v.detach().clone() for k, v in scene.params.items()}
    moving = np.ones(footage.images.shape[:4], bool)  # everything is the performance: the set phase learns nothing
    trainer = Trainer(footage, scene, TrainConfig(steps=10, set_fraction=0.5, refine_start=100), moving=moving)
    for _ in range(5):
        assert trainer.in_set_phase
        assert trainer.step()["loss"] == pytest.approx(0.0)
    dynamic = scene.params["dynamic"] > 0
    torch.testing.assert_close(scene.params["means"][dynamic], before["means"][dynamic])  # never rendered
    assert not trainer.in_set_phase


def test_the_performance_phase_leaves_the_set_frozen_and_trains_the_dynamic_gaussians():
    footage = _footage()
    scene = DynamicScene(_params(), 0)
    trainer = Trainer(footage, scene, TrainConfig(steps=12, set_fraction=0.5, refine_start=100))
    trainer.run(until=6)
    static = scene.params["dynamic"] == 0
    after_set = {k: v.detach().clone() for k, v in scene.params.items()}
    assert not torch.equal(after_set["sh0"][static], _params()["sh0"][:int(static.sum())])  # the set learnt
    trainer.run()
    assert trainer.step_idx == 12
    for name in ("means", "sh0", "scales", "opacities", "quats"):
        torch.testing.assert_close(scene.params[name][static], after_set[name][static], atol=0, rtol=0)
    assert not torch.equal(scene.params["sh0"][~static], after_set["sh0"][~static])  # the performance learnt


def test_set_stills_are_trained_on_with_their_own_appearance():
    footage = _footage()
    still_cams = _cameras(["survey/000"], [(-1.5, -1.5, 2.0)])
    stills = SetStills(still_cams, [np.full((H, W, 3), 200, np.uint8)])
    scene = DynamicScene(_params(), 0)
    trainer = Trainer(footage, scene, TrainConfig(steps=8, set_fraction=0.99, still_share=1.0, refine_start=100),
                      stills=stills)
    assert trainer.appearance.shape == (3, 3, 4)  # two set cameras, one still
    trainer.run()
    eye = torch.eye(3, 4)
    assert torch.equal(trainer.appearance[0].detach(), eye) and torch.equal(trainer.appearance[1].detach(), eye)
    assert not torch.equal(trainer.appearance[2].detach(), eye)  # only the still was trained on
    with pytest.raises(ValueError, match="set_fraction"):
        TrainConfig(set_fraction=1.0)


def test_zbuffer_depth_draws_a_solid_surface_at_the_right_depth():
    camera = Cameras.create(["top"], [40.0], [40.0], [W / 2], [H / 2], look_at((0, 0, 2.0), (0, 0, 0), up=(0, 1, 0))[None],
                            np.array([[W, H]]))
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 120), np.linspace(-2, 2, 120)), -1).reshape(-1, 2)
    floor = np.concatenate([grid, np.zeros((len(grid), 1))], axis=1)
    depth = zbuffer_depth(floor, camera.K[0], camera.world_to_camera[0], (W, H))
    assert (depth > 0).mean() > 0.99
    assert np.allclose(depth[depth > 0], 2.0, atol=1e-4)
    box = np.array([[0.0, 0.0, 1.0]])  # one point nearer the camera wins its pixel
    near = zbuffer_depth(np.concatenate([floor, box]), camera.K[0], camera.world_to_camera[0], (W, H), fill_px=0)
    assert near.min() == pytest.approx(1.0) and (near == 1.0).sum() == 1


def test_points_coarser_than_the_pixels_still_hide_what_is_behind_them():
    camera = Cameras.create(["top"], [200.0], [200.0], [W / 2], [H / 2], look_at((0, 0, 2.0), (0, 0, 0), up=(0, 1, 0))[None],
                            np.array([[W, H]]))
    def plane(z, half, spacing):  # a square of points, `spacing` apart, at height z
        grid = np.stack(np.meshgrid(*[np.arange(-half, half + 1e-9, spacing)] * 2), -1).reshape(-1, 2)
        return np.concatenate([grid, np.full((len(grid), 1), z)], axis=1)
    box, floor = plane(1.0, 0.06, 0.03), plane(0.0, 0.4, 0.005)  # the box's top: 6 px apart in this view
    points = np.concatenate([box, floor])
    middle = (slice(H // 2 - 8, H // 2 + 8), slice(W // 2 - 8, W // 2 + 8))
    as_pixels = zbuffer_depth(points, camera.K[0], camera.world_to_camera[0], (W, H), fill_px=1)
    assert (as_pixels[middle] > 1.5).mean() > 0.2  # the floor shows through the box
    radii = surfel_radii(points)
    assert np.median(radii[: len(box)]) == pytest.approx(0.015, rel=0.15)  # half the spacing (fewer neighbours at edges)
    as_surfels = zbuffer_depth(points, camera.K[0], camera.world_to_camera[0], (W, H), fill_px=1, radius=radii)
    assert np.allclose(as_surfels[middle], 1.0, atol=1e-4)  # solid box top
    assert np.allclose(as_surfels[:, :6], 2.0, atol=1e-4)  # the box grows no further than its points reach
    lone = surfel_radii(np.concatenate([floor, [[3.0, 3.0, 0.0]]]))
    assert lone[-1] < 0.01  # a stray point 3.5 m from the rest stays the size of its neighbours


def test_gaussians_the_cameras_see_through_are_counted_and_pruned():
    footage = _footage()
    floor = np.concatenate([np.stack(np.meshgrid(np.linspace(-3, 3, 200), np.linspace(-3, 3, 200)), -1).reshape(-1, 2),
                            np.zeros((40000, 1))], axis=1)
    priors = depth_priors(floor, footage.cameras)
    assert isinstance(priors, DepthPriors) and len(priors.cameras) == 2 and priors.stills == []
    views = [(footage.cameras.K[c], footage.cameras.world_to_camera[c], priors.cameras[c]) for c in range(2)]
    points = torch.tensor([[0.0, 0.0, 0.8], [0.1, -0.1, 0.0], [0.0, 0.0, -1.0]])  # a floater, the floor, below
    assert seen_through(points, views).tolist() == [2, 0, 0]
    scene = DynamicScene(_params(floater=True), 0)
    trainer = Trainer(footage, scene, TrainConfig(steps=4, free_space_views=2), priors=priors)
    count = len(scene)
    assert trainer._prune_free_space() == 1 and len(scene) == count - 1
    assert not (scene.params["means"][:, 2] > 0.7).any() and scene.num_dynamic == 1  # the actor stays


def test_a_moving_camera_never_trains_the_set_and_the_schedule_is_checked():
    footage = _footage()
    poses = footage.world_to_camera.copy()
    poses[1, 2:, 0, 3] += 0.1  # camera b moves half way through: no clean plate, no motion mask
    footage = ShotFootage(footage.cameras, footage.images, footage.valid, poses, footage.times, footage.frames)
    moving = np.zeros(footage.images.shape[:4], bool)
    moving[0, :, 10:20, 10:20] = True  # the actor, seen by the locked-off camera a
    trainer = Trainer(footage, DynamicScene(_params(), 0), TrainConfig(steps=10, refine_start=100), moving=moving)
    assert set(trainer.set_pairs[:, 0].tolist()) == {0} and set(trainer.pairs[:, 0].tolist()) == {0, 1}
    assert all(trainer._next_view().appearance_idx == 0 for _ in range(20))  # set phase: camera a only
    poses[0, 1:, 1, 3] += 0.1  # both cameras move: nothing shows the set alone, so one phase
    both = ShotFootage(footage.cameras, footage.images, footage.valid, poses, footage.times, footage.frames)
    assert Trainer(both, DynamicScene(_params(), 0), TrainConfig(steps=10), moving=moving).set_steps == 0
    with pytest.raises(ValueError, match="never densify"):
        TrainConfig(steps=100, refine_stop=40, set_fraction=0.5)
    with pytest.raises(ValueError, match="mcmc"):
        TrainConfig(strategy="mcmc", set_fraction=0.5)


def test_a_checkpoint_of_other_images_is_set_aside_and_training_starts_over(tmp_path):
    footage = _footage()
    trainer = Trainer(footage, DynamicScene(_params(), 0), TrainConfig(steps=2, refine_start=100))
    trainer.run(tmp_path / "ckpt.pt")
    stills = SetStills(_cameras(["survey/000"], [(-1.5, -1.5, 2.0)]), [np.zeros((H, W, 3), np.uint8)])
    again = Trainer(footage, DynamicScene(_params(), 0), TrainConfig(steps=4, refine_start=100), stills=stills)
    again.run(tmp_path / "ckpt.pt")
    assert again.step_idx == 4 and (tmp_path / "ckpt.pt.other-run").is_file()


def test_a_stills_unfilmed_border_is_left_out_of_the_loss():
    footage = _footage()
    stills = SetStills(_cameras(["survey/000"], [(-1.5, -1.5, 2.0)]), [np.full((H, W, 3), 255, np.uint8)],
                       [np.zeros((H, W), bool)])  # nothing of it filmed: a still step has nothing to learn
    trainer = Trainer(footage, DynamicScene(_params(), 0),
                      TrainConfig(steps=6, set_fraction=0.9, still_share=1.0, refine_start=100), stills=stills)
    assert all(trainer.step()["loss"] == pytest.approx(0.0, abs=1e-6) for _ in range(3))


def test_a_prop_hiding_the_actor_does_not_carve_its_hull():
    from reshoot.splat.init import _carve

    footage = _footage()
    actor = np.array([[0.0, 0.0, 0.3]])
    masks = np.zeros(footage.images.shape[:4], bool)
    u, v = footage.cameras.project(0, actor)[0][0]
    masks[0, :, int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = True  # camera a sees the actor move ...
    masks[1, :, :2, :2] = True  # ... camera b has a motion mask, but a prop hides the actor from it
    depths = [np.zeros((H, W), np.float32), np.full((H, W), 0.5, np.float32)]  # b: a surface 0.5 ahead everywhere
    assert not _carve(footage, masks, [0], actor, 1)[0]  # b carves what it cannot see
    assert _carve(footage, masks, [0], actor, 1, depths)[0]  # behind b's prop: only a decides


def test_registered_points_on_the_performance_are_told_from_the_set():
    from reshoot.splat.init import on_performance

    footage = _footage()
    actor, wall = np.array([0.0, 0.0, 0.3]), np.array([0.4, -0.3, 0.0])
    masks = np.zeros(footage.images.shape[:4], bool)
    for c in range(2):  # at instant 2 both cameras see the actor move where it stands
        u, v = footage.cameras.project(c, actor[None])[0][0]
        masks[c, 2, int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = True
    u, v = footage.cameras.project(0, wall[None])[0][0]
    masks[0, 1, int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = True  # the set, passed in front of in one camera
    assert on_performance(footage, masks, np.stack([actor, wall])).tolist() == [True, False]
    assert not on_performance(footage, np.zeros_like(masks), np.stack([actor, wall])).any()


def test_pseudo_views_sit_between_and_above_the_cameras_looking_at_the_set():
    cameras = _cameras(["a", "b"], [(0.0, -2.0, 1.5), (2.0, 0.2, 1.5)])
    floor = np.stack(np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41), [0.0]), -1).reshape(-1, 3)
    priors = depth_priors(floor, cameras, pseudo_views=6, seed=3)
    pseudo = priors.pseudo_cameras
    assert len(pseudo) == 6 and len(priors.pseudo) == 6 and tuple(pseudo.image_size[0]) == (W // 2, H // 2)
    up = -cameras.world_to_camera[:, 1, :3].mean(axis=0)
    heights = pseudo.centers @ up / np.linalg.norm(up)
    assert heights.min() >= (cameras.centers @ up / np.linalg.norm(up)).min() - 1e-9  # never below the cameras
    for i, depth in enumerate(priors.pseudo):
        assert depth.shape == (H // 2, W // 2) and (depth > 0).mean() > 0.3  # each sees the floor
        xy, _ = pseudo.project(i, floor[len(floor) // 2:len(floor) // 2 + 1])  # the floor's middle: in view
        assert 0 <= xy[0, 0] < W // 2 and 0 <= xy[0, 1] < H // 2
    again = depth_priors(floor, cameras, pseudo_views=6, seed=3)
    np.testing.assert_array_equal(again.pseudo_cameras.world_to_camera, pseudo.world_to_camera)


def test_the_coverage_term_closes_holes_the_cameras_never_saw():
    footage = _footage()
    footage = ShotFootage(footage.cameras, footage.images, footage.valid, footage.world_to_camera, footage.times,
                          footage.frames, masks=np.zeros(footage.images.shape[:4], bool))  # the footage sees nothing
    floor = np.stack(np.meshgrid(np.linspace(-0.6, 0.6, 31), np.linspace(-0.6, 0.6, 31), [0.0]), -1).reshape(-1, 3)
    priors = depth_priors(floor, footage.cameras, pseudo_views=8, seed=1)

    def pseudo_alpha(weight: float) -> float:
        params = _params()
        params["opacities"][:60] = -3.0  # a thin floor: mostly holes
        scene = DynamicScene(params, 0)
        trainer = Trainer(footage, scene, TrainConfig(steps=40, set_fraction=0.9, refine_start=1000, lr_opacities=0.2,
                                                      coverage_weight=weight, depth_weight=0), priors=priors)
        trainer.run(until=30)
        with torch.no_grad():
            alphas = [render(scene, priors.pseudo_cameras.select([c]), 0.0, part="static").alpha[
                torch.as_tensor(d > 0)].mean() for c, d in zip(priors.pseudo_cameras.camera_ids, priors.pseudo)]
        return float(np.mean(alphas))

    assert pseudo_alpha(1.0) > pseudo_alpha(0.0) + 0.2



def test_a_random_background_makes_the_set_cover_the_pictures_it_trains_on():
    footage = _footage()
    dark = ShotFootage(footage.cameras, np.full_like(footage.images, 40), footage.valid, footage.world_to_camera,
                       footage.times, footage.frames)  # a dark floor: over black, half-transparent Gaussians fit it

    def floor_alpha(random_background: bool) -> float:
        params = _params()
        params["opacities"][:60] = -1.0
        scene = DynamicScene(params, 0)
        floor = render(scene, dark.cameras.select(["a"]), 0.0, part="static").alpha.detach() > 0.2
        trainer = Trainer(dark, scene, TrainConfig(steps=60, set_fraction=0.9, refine_start=1000, depth_weight=0,
                                                   coverage_weight=0, random_background=random_background))
        trainer.run(until=50)
        with torch.no_grad():
            return float(render(scene, dark.cameras.select(["a"]), 0.0, part="static").alpha[floor].mean())

    # from 0.51: over black the floor thinned (black showed through as the dark floor); over random colours it grew
    assert floor_alpha(False) < 0.4 < 0.55 < floor_alpha(True)
    assert ReconstructConfig().train_config().random_background  # reconstruct's default
    assert not ReconstructConfig(random_background=False).train_config().random_background  # --no-random-background
    assert not TrainConfig().random_background

def test_adam_on_some_rows_is_adam_for_them_and_leaves_the_rest():
    from reshoot.splat.train_config import _adam_step

    g = torch.Generator().manual_seed(0)
    start = torch.randn(50, 3, generator=g)
    grads = [torch.randn(50, 3, generator=g) for _ in range(4)]
    rows = torch.tensor([3, 7, 20, 41])
    frozen = torch.ones(50, dtype=torch.bool)
    frozen[rows] = False
    full, some = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    full_opt = torch.optim.Adam([full], lr=0.01, eps=1e-15, fused=True)
    some_opt = torch.optim.Adam([some], lr=0.01, eps=1e-15)
    for i, grad in enumerate(grads):
        full.grad = grad.clone()
        some.grad = grad.clone()
        if i >= 1:  # from the second step on, the frozen rows get no gradient and lose their momentum
            full.grad[frozen] = 0
            full_opt.state[full]["exp_avg"][frozen] = 0
        full_opt.step()
        if i >= 1:
            before = some.detach().clone()
            _adam_step(some_opt, rows)
            torch.testing.assert_close(some.detach()[frozen], before[frozen], rtol=0, atol=0)  # untouched
            some_opt.state[some]["exp_avg"][frozen] = 0
        else:
            _adam_step(some_opt, None)  # the first step: all rows (and the state is made)
            some_opt.state[some]["exp_avg"][frozen] = 0
    torch.testing.assert_close(some.detach()[rows], full.detach()[rows], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(some.detach()[frozen], full.detach()[frozen], rtol=1e-5, atol=1e-6)


def test_a_static_gaussian_on_a_cameras_own_body_is_removed_before_training():
    footage = _footage()
    eye = footage.cameras.centers[0]
    towards = -eye / np.linalg.norm(eye)
    body = make_params(torch.as_tensor((eye + 0.01 * towards)[None]), torch.rand(1, 3), torch.full((1,), 0.05), 0,
                       opacity=0.9)  # 1 cm in front of camera a's lens: from a, it covers the picture
    params = concat_params(_params(), body)
    for clearance, kept in ((0.03, False), (0.0, True)):
        scene = DynamicScene({k: v.clone() for k, v in params.items()}, 0)
        trainer = Trainer(footage, scene, TrainConfig(steps=4, set_fraction=0.5, refine_start=100,
                                                      camera_clearance=clearance))
        trainer.step()
        near = (scene.params["means"].detach() - torch.as_tensor(eye, dtype=torch.float32)).norm(dim=-1) < 0.02
        assert bool(near.any()) == kept
        assert len(scene) == len(params["means"]) - (0 if kept else 1)  # the set on the floor is untouched


def _filmed_rig(turn_deg: float) -> tuple[ShotFootage, DynamicScene]:
    """Four cameras filming a textured floor; the last filmed from a pose turned ``turn_deg`` from the one it is
    registered at (a registration gone wrong)."""
    rng = np.random.default_rng(3)
    floor = np.concatenate([rng.uniform(-1.0, 1.0, (900, 2)), np.zeros((900, 1))], axis=1)
    colours = torch.as_tensor(rng.uniform(0, 1, (900, 3)))
    scene = DynamicScene(make_params(torch.as_tensor(floor), colours, torch.full((900,), 0.06), 0, opacity=0.9), 0)
    cameras = _cameras(["a", "b", "c", "d"], [(0.0, -2.0, 1.5), (2.0, 0.2, 1.5), (-2.0, 0.3, 1.5), (0.2, 2.0, 1.5)])
    c, s = np.cos(np.radians(turn_deg)), np.sin(np.radians(turn_deg))
    turned = cameras.world_to_camera.copy()
    turned[3] = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]]) @ turned[3]
    images = np.zeros((4, T, H, W, 3), np.uint8)
    with torch.no_grad():
        for k in range(4):
            filmed = Cameras.create([cameras.camera_ids[k]], [40.0], [40.0], [W / 2], [H / 2], turned[k][None],
                                    np.array([[W, H]]))
            images[k, :] = (render(scene, filmed, 0.0).rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    poses = np.repeat(cameras.world_to_camera[:, None], T, axis=1)
    return ShotFootage(cameras, images, np.ones((4, T), bool), poses, normalised_times(T), np.arange(T)), scene


def test_a_camera_the_set_cannot_explain_sits_out_the_performance_phase(capsys):
    footage, scene = _filmed_rig(turn_deg=6.0)
    config = TrainConfig(steps=4, set_fraction=0.5, refine_start=100, lr_sh0=0.0, lr_means=0.0)
    trainer = Trainer(footage, scene, config, moving=np.zeros(footage.images.shape[:4], bool))
    fits = trainer.set_fits()
    assert min(fits["a"], fits["b"], fits["c"]) > 35 and fits["d"] < 20  # filmed from elsewhere than registered
    trainer.run(until=3)
    assert set(trainer.sat_out) == {"d"} and trainer.sat_out["d"]["set_fit_db"] < 20
    assert 3 not in trainer.pairs[:, 0] and {0, 1, 2} <= set(trainer.pairs[:, 0])
    assert "d sits out the performance phase" in capsys.readouterr().err
    for _ in range(6):  # the performance phase never draws it
        assert trainer._next_view().appearance_idx != 3

    footage, scene = _filmed_rig(turn_deg=0.0)  # a consistent rig: every camera stays
    trainer = Trainer(footage, scene, config, moving=np.zeros(footage.images.shape[:4], bool))
    trainer.run(until=3)
    assert trainer.sat_out == {} and set(trainer.pairs[:, 0]) == {0, 1, 2, 3}
    footage, scene = _filmed_rig(turn_deg=6.0)  # switched off
    off = TrainConfig(steps=4, set_fraction=0.5, refine_start=100, inconsistent_camera_db=0)
    trainer = Trainer(footage, scene, off, moving=np.zeros(footage.images.shape[:4], bool))
    trainer.run(until=3)
    assert trainer.sat_out == {}


def test_the_performance_is_carved_again_without_a_camera_that_sat_out():
    footage, scene = _filmed_rig(turn_deg=6.0)
    old = make_params(torch.tensor([[0.0, 0.0, 0.3]]), torch.rand(1, 3), torch.full((1,), 0.1), 0,
                      times=torch.tensor([0.5]), time_scale=0.5, opacity=0.5)
    scene = DynamicScene(concat_params({k: v.detach() for k, v in scene.params.items()}, old), 0)
    static = {k: v.detach().clone() for k, v in scene.params.items()}
    fresh = make_params(torch.tensor([[0.1, 0.0, 0.2], [-0.1, 0.0, 0.2], [0.0, 0.1, 0.4]]), torch.rand(3, 3),
                        torch.full((3,), 0.05), 0, times=torch.tensor([0.0, 0.5, 1.0]), time_scale=0.5, opacity=0.5)
    asked = []

    def recarve(sat_out):
        asked.append(sat_out)
        return fresh, [1, 0, 1, 1]

    config = TrainConfig(steps=8, set_fraction=0.5, refine_start=100, lr_sh0=0.0, lr_means=0.0)
    trainer = Trainer(footage, scene, config, moving=np.zeros(footage.images.shape[:4], bool), recarve=recarve)
    trainer.run(until=4)
    assert asked == [] and len(scene) == 901
    trainer.step()  # the first step of the performance phase: d sits out, the hulls are carved without it
    assert asked == [["d"]] and trainer.recarved == [1, 0, 1, 1]
    p = scene.params
    assert len(scene) == 903 and int(p["dynamic"].sum()) == 3
    torch.testing.assert_close(p["means"][p["dynamic"] == 0].detach(), static["means"][:900])
    for _ in range(3):  # the optimizers and gsplat's statistics follow the new rows
        trainer.step()
    assert all(len(opt.state[opt.param_groups[0]["params"][0]].get("exp_avg", p["means"])) == 903
               for opt in trainer.optimizers.values())

    footage, scene = _filmed_rig(turn_deg=0.0)  # nobody sits out: nothing is carved again
    trainer = Trainer(footage, scene, config, moving=np.zeros(footage.images.shape[:4], bool), recarve=recarve)
    trainer.run(until=6)
    assert asked == [["d"]] and trainer.recarved is None


def test_a_thin_set_densifies_at_its_own_interval_and_the_performance_at_the_usual_one(monkeypatch):
    footage = _footage()
    scene = DynamicScene(_params(), 0)
    config = TrainConfig(steps=40, set_fraction=0.5, refine_start=15, refine_stop=40, refine_every=10,
                         set_refine_every=4, set_refine_start=2, thin_set=1.0)  # 61 static Gaussians: thin for 48x32-pixel views
    trainer = Trainer(footage, scene, config)
    refined = []  # (step, the start and interval gsplat's strategy was given)
    monkeypatch.setattr(trainer, "_prune_big", lambda: refined.append((
        trainer.step_idx, trainer.strategy.refine_start_iter, trainer.strategy.refine_every)) or 0)
    trainer.run()
    assert refined == [(4, 2, 4), (8, 2, 4), (12, 2, 4), (16, 2, 4), (20, 15, 10), (30, 15, 10)]
    trainer = Trainer(footage, DynamicScene(_params(), 0), replace(config, thin_set=0.01))  # 15 Gaussians: not thin
    assert not trainer.set_is_thin and trainer.refine_schedule == (15, 10)
    with pytest.raises(ValueError, match="set_refine_every"):
        TrainConfig(set_refine_every=-1)


def test_a_static_gaussian_the_actor_was_seen_behind_is_removed_when_the_performance_starts():
    footage = _footage()
    eye = np.array([0.0, -2.0, 1.5])  # camera "a"
    actor = np.array([0.0, 0.0, 0.3])
    floater = eye + 0.6 * (actor - eye)  # on camera a's ray to the actor, well in front of it
    static = make_params(torch.as_tensor(np.concatenate([_params()["means"][:60].numpy(), floater[None]])),
                         torch.rand(61, 3), torch.full((61,), 0.08), 0, opacity=0.5)
    dynamic = make_params(torch.as_tensor(actor[None]), torch.rand(1, 3), torch.full((1,), 0.2), 0,
                          times=torch.tensor([0.5]), time_scale=10.0, opacity=0.99)  # drawn at every instant
    scene = DynamicScene(concat_params(static, dynamic), 0)
    moving = np.ones(footage.images.shape[:4], bool)
    config = TrainConfig(steps=4, set_fraction=0.5, refine_start=100, performance_instants=4)
    trainer = Trainer(footage, scene, config, moving=moving)
    trainer.run()
    assert trainer.pruned_before_performance == 1
    kept = scene.params["means"][scene.params["dynamic"] == 0].detach().numpy()
    assert len(kept) == 60 and np.linalg.norm(kept - floater, axis=1).min() > 0.1  # the floor stays, the floater goes
    off = Trainer(footage, DynamicScene(concat_params(static, dynamic), 0), replace(config, performance_instants=0),
                  moving=moving)
    off.run()
    assert off.pruned_before_performance == 0 and int((off.scene.params["dynamic"] == 0).sum()) == 61


_FROZEN = dict(lr_means=0.0, lr_scales=0.0, lr_quats=0.0, lr_opacities=0.0, lr_sh0=0.0, lr_shN=0.0,
               appearance=False, inconsistent_camera_db=0, refine_start=1000, refine_stop=1001)  # the poses alone learn


def test_pose_refinement_turns_a_misregistered_camera_back_and_anchors_the_first():
    footage, scene = _filmed_rig(turn_deg=3.0)  # d filmed from 3 deg off where it is registered (2 px here)
    frozen = _FROZEN
    still = np.zeros(footage.images.shape[:4], bool)
    trainer = Trainer(footage, scene, TrainConfig(steps=400, set_fraction=0.5, pose_refine_lr=5e-3,
                                                  pose_refine_start=0, **frozen), moving=still)
    before = trainer.set_fits()["d"]
    trainer.run(until=201)  # the set phase, and the step that bakes its poses into the footage
    moved = trainer.poses_refined
    assert moved["a"] == {"turned_deg": 0.0, "moved_scene_scale": 0.0}  # the world's anchor
    assert 1.5 < moved["d"]["turned_deg"] < 4.5 and max(moved[c]["turned_deg"] for c in "bc") < 0.5
    floor = scene.params["means"].detach().numpy().astype(np.float64)
    c, s = np.cos(np.radians(3.0)), np.sin(np.radians(3.0))
    filmed = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]]) @ footage.world_to_camera[3, 0]

    def error_px(world_to_camera):  # where d's pose draws the floor against where the filming pose did
        def pixels(pose):
            return replace(footage.cameras.select(["d"]), world_to_camera=pose[None]).project(0, floor)[0]
        return float(np.median(np.linalg.norm(pixels(world_to_camera) - pixels(filmed), axis=1)))

    assert error_px(footage.world_to_camera[3, 0]) > 1.5
    assert error_px(trainer.footage.world_to_camera[3, 0]) < 0.3  # refined, and baked into the footage
    assert trainer.set_fits()["d"] > before + 10  # the set now explains what d filmed

    footage, scene = _filmed_rig(turn_deg=3.0)  # off by default: the registered poses stay
    trainer = Trainer(footage, scene, TrainConfig(steps=20, set_fraction=0.5, **frozen), moving=still)
    trainer.run(until=11)
    assert trainer.poses_refined == {} and np.array_equal(trainer.footage.world_to_camera, footage.world_to_camera)
    assert ReconstructConfig().train_config().pose_refine_lr > 0  # reconstruct refines poses by default
    assert ReconstructConfig(refine_poses=False).train_config().pose_refine_lr == 0  # --no-refine-poses


def test_refined_poses_are_kept_by_a_checkpoint_and_baked_again_on_resuming(tmp_path):
    config = TrainConfig(steps=40, set_fraction=0.5, pose_refine_lr=5e-3, pose_refine_start=0, **_FROZEN)
    still = np.zeros((4, T, H, W), bool)
    trainer = Trainer(*_filmed_rig(turn_deg=3.0), config, moving=still)
    trainer.run(until=25)  # past the set phase (20 steps): its poses baked into the footage
    trainer.save(tmp_path / "checkpoint.pt")
    again = Trainer(*_filmed_rig(turn_deg=3.0), config, moving=still)
    assert again.resume(tmp_path / "checkpoint.pt")
    torch.testing.assert_close(again.pose_change, trainer.pose_change)
    assert not np.allclose(again.footage.world_to_camera[3], _filmed_rig(turn_deg=3.0)[0].world_to_camera[3])
    np.testing.assert_allclose(again.footage.world_to_camera, trainer.footage.world_to_camera, atol=1e-6)
    assert again.poses_refined == trainer.poses_refined
