"""The reconstruct stage's refusals and its scratch checkpoint (issue 15): a bad flag, frames too small to train on
or a registration with a handful of points stop with one clear message before the long work; a checkpoint that cannot
be read or that another run wrote is set aside (kept) and training starts afresh; a resume says so."""

from __future__ import annotations

import shutil
from functools import partial

import numpy as np
import pytest
import torch

from reshoot.cameras import Cameras, look_at
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.splat import data
from reshoot.splat.data import SetStills, ShotFootage, check_downscale, load_shot_footage, normalised_times
from reshoot.splat.dense import DenseConfig
from reshoot.splat.init import InitConfig, initial_params
from reshoot.splat.pointcloud import read_points_ply, write_points_ply
from reshoot.splat.scene import DynamicScene, concat_params, make_params
from reshoot.splat.train import Trainer
from reshoot.splat.train_config import TrainConfig
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages import reconstruct
from reshoot.stages.reconstruct import ReconstructConfig, ReconstructError, run_reconstruct
from reshoot.stages.register import RegisterConfig, run_register
from reshoot.workspace import Workspace

SMALL = PRESETS["small"]  # 3 cameras at 160x90 that register (with the survey stills)
CLASSES = ("ReconstructConfig", "TrainConfig")  # users type flags: messages never name the classes


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("reconstruct-errors")
    shoot = make_sample_shoot(root / "shoot", SMALL)
    ws = Workspace(root / "ws")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    run_register(ws, RegisterConfig(survey=shoot.root / "survey"))
    return ws


def _copy(ws: Workspace, tmp_path, points: int | None = None) -> Workspace:
    """A copy of the registered workspace, its sparse points cut to the first ``points`` (None: all)."""
    copy = Workspace(shutil.copytree(ws.root, tmp_path / "ws"))
    if points is not None:
        ply = copy.root / "register" / "sparse_points.ply"
        xyz, rgb = read_points_ply(ply)
        write_points_ply(ply, xyz[:points], rgb[:points])
    return copy


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the footage fails the test: what is refused must be refused before it."""
    def load(*_args, **_kwargs):
        raise AssertionError("the footage was loaded before the refusal")
    monkeypatch.setattr("reshoot.stages.reconstruct.load_shot_footage", load)


# ---- 1. --downscale: frames too small to train on -----------------------------------------------------------------

def test_a_downscale_that_leaves_frames_too_small_is_refused_before_the_footage_loads(registered, no_loading):
    for downscale, size, most in ((100, "1x0", 2), (3, "53x30", 2)):
        with pytest.raises(ReconstructError) as err:
            run_reconstruct(registered, ReconstructConfig(downscale=downscale))
        assert str(err.value) == (f"reconstruct: --downscale {downscale} makes {size}-pixel images of camera 'cam0' "
                                  f"(160x90); the smallest usable is {data.MIN_TRAINING_SIDE_PX} px on the short side: "
                                  f"use --downscale {most} or less")
    assert not (registered.root / "reconstruct").exists()


def test_the_downscale_limit_names_the_smallest_camera_and_the_largest_factor_that_works(registered):
    hd = Cameras.create(["cam0", "cam1"], [1000.0] * 2, [1000.0] * 2, [960.0, 320.0], [540.0, 240.0],
                        np.stack([np.eye(4)] * 2), np.array([[1920, 1080], [640, 480]]))
    check_downscale(hd.select(["cam0"]), 33)  # 58x32: just big enough
    with pytest.raises(ValueError, match=r"^--downscale 100 makes 19x10-pixel images of camera 'cam0' \(1920x1080\); "
                                         r"the smallest usable is 32 px on the short side: use --downscale 33 or "
                                         r"less$"):
        check_downscale(hd.select(["cam0"]), 100, "--downscale")
    with pytest.raises(ValueError, match=r"camera 'cam1' \(640x480\).*use --downscale 15 or less$"):
        check_downscale(hd, 16, "--downscale")
    tiny = Cameras.create(["wee"], [20.0], [20.0], [10.0], [6.0], np.eye(4)[None], np.array([[20, 12]]))
    with pytest.raises(ValueError, match=r"camera 'wee' filmed 20x12 pixels, below the smallest usable 32 px .* even "
                                         r"at full size"):
        check_downscale(tiny, 1)
    # the library's loader refuses too (it used to crash in cv2.resize), in its own terms
    with pytest.raises(ValueError, match=r"^downscale 100 makes 1x0-pixel images of camera 'cam0' \(160x90\).*use "
                                         r"downscale 2 or less$"):
        load_shot_footage(registered.root, downscale=100)


# ---- 2. nonsense settings: refused at once, by the flag's name ----------------------------------------------------

@pytest.mark.parametrize("setting, message", [
    ({"steps": 0}, "reconstruct: --steps must be at least 1; got 0"),
    ({"steps": -5}, "reconstruct: --steps must be at least 1; got -5"),
    ({"downscale": 0}, "reconstruct: --downscale must be at least 1 (1: full size); got 0"),
    ({"frame_step": 0}, "reconstruct: --frame-step must be at least 1 (1: every frame); got 0"),
    ({"sh_degree": 4}, "reconstruct: --sh-degree must be 0, 1, 2 or 3; got 4"),
    ({"dynamic_per_instant": -1}, "reconstruct: --dynamic-per-instant must be 0 or more; got -1"),
    ({"preset": "slow"}, "reconstruct: --preset must be one of fast, quality; got 'slow'"),
    ({"strategy": "adc"}, "reconstruct: --strategy must be auto, default or mcmc; got 'adc'"),
])
def test_a_nonsense_setting_is_refused_when_the_config_is_made(setting, message):
    with pytest.raises(ValueError) as err:
        ReconstructConfig(**setting)
    assert str(err.value) == message


def test_a_nonsense_flag_is_one_error_line_on_the_command_line(capsys, tmp_path):
    from reshoot_cli.main import main

    assert main(["reconstruct", "--steps", "0", "--workspace", str(tmp_path / "nowhere")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err == "error: reconstruct: --steps must be at least 1; got 0"


@pytest.mark.parametrize("setting, message", [
    ({"set_fraction": 1.0}, "reconstruct: --set-fraction must be at least 0 and below 1 (0: one phase); got 1"),
    ({"set_fraction": 0.95}, "reconstruct: --set-fraction 0.95 starts the performance phase at step 2280 of 2400, "
                             "after densification stops (step 2000): the performance would never densify; use "
                             "--set-fraction 0.83 or less"),
    ({"set_fraction": 0.3, "strategy": "mcmc"}, "reconstruct: --set-fraction 0.3 trains the set first, which the "
                                                "mcmc strategy cannot (it relocates Gaussians across the set and the "
                                                "performance; --strategy auto is mcmc on a GPU): pass "
                                                "--set-fraction 0, or --strategy default"),
])
def test_a_set_fraction_the_schedule_cannot_keep_is_refused_before_the_footage_loads(registered, no_loading, setting,
                                                                                     message):
    with pytest.raises(ReconstructError) as err:
        run_reconstruct(registered, ReconstructConfig(device="cpu", **setting))
    assert str(err.value) == message


def test_training_config_errors_name_the_flags_and_a_few_steps_make_a_schedule():
    with pytest.raises(ValueError, match=r"^--steps must be at least 1; got 0$"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match=r"^--strategy must be 'default' or 'mcmc' \(or 'auto'\); got 'adc'$"):
        TrainConfig(strategy="adc")
    with pytest.raises(ValueError, match=r"^refine_every must be at least 1"):
        TrainConfig(refine_every=0)
    for make in (lambda: TrainConfig(steps=0), lambda: TrainConfig(set_fraction=1.5),
                 lambda: TrainConfig(strategy="mcmc", set_fraction=0.5),
                 lambda: TrainConfig(steps=100, refine_stop=40, set_fraction=0.5)):
        with pytest.raises(ValueError) as err:
            make()
        assert not any(name in str(err.value) for name in CLASSES), str(err.value)
    for steps in (1, 2, 3, 7):  # the fast preset scaled to a few steps used to stop densifying before phase two
        config = ReconstructConfig(steps=steps).train_config("cpu")
        assert config.steps == steps and config.refine_stop > round(config.set_fraction * steps)


# ---- 3. a registration with a handful of sparse points ------------------------------------------------------------

def test_a_handful_of_sparse_points_and_no_dense_set_is_refused_before_the_footage_loads(registered, tmp_path,
                                                                                         no_loading):
    copy = _copy(registered, tmp_path, points=1)
    with pytest.raises(ReconstructError) as err:
        run_reconstruct(copy, ReconstructConfig(dense=False))
    ply = copy.root / "register" / "sparse_points.ply"
    assert str(err.value) == (
        f"reconstruct: register made only 1 sparse point ({ply}) and with --no-dense nothing else makes the set: "
        "the scene cannot start from so few (it needs 20 sparse points, or 100 from dense stereo or a set scan). "
        "Re-run register with survey stills of the set (--survey FOLDER), with --dynamic instants (synced "
        "footage where much of each view moves), or with a known calibration (ingest --calibration FILE, then "
        "register --calibration triangulate); or drop --no-dense, so that dense stereo can make the set")
    write_points_ply(ply, np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    with pytest.raises(ReconstructError, match=r"^reconstruct: register made no sparse points \("):
        run_reconstruct(copy, ReconstructConfig(dense=False))


def test_a_handful_of_sparse_points_is_refused_before_training_when_stereo_finds_little_more(registered, tmp_path,
                                                                                            monkeypatch):
    copy = _copy(registered, tmp_path, points=1)

    def train(*_args, **_kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(Trainer, "run", train)
    with pytest.raises(AssertionError, match="training started"):  # the floor swept under the level rig: a set
        run_reconstruct(copy, ReconstructConfig(stills=False, steps=2))
    monkeypatch.setattr(reconstruct, "DenseConfig", partial(DenseConfig, ground=False))  # no floor found either
    with pytest.raises(ReconstructError) as err:  # no survey stills: stereo has only the three set cameras' plates
        run_reconstruct(copy, ReconstructConfig(stills=False, steps=2))
    message = str(err.value)
    assert message.startswith("reconstruct: register made only 1 sparse point (")
    assert "and dense stereo over 3 views of the set found only " in message and "more points: the scene cannot " \
        "start from so few" in message
    assert "--survey FOLDER" in message and "--calibration triangulate" in message and "--no-dense" not in message


def test_with_no_sparse_points_the_set_starts_on_the_dense_points_alone(registered):
    footage = load_shot_footage(registered.root)
    xyz, rgb = read_points_ply(registered.root / "register" / "sparse_points.ply")
    dense = (xyz, rgb / 255.0)  # stand-ins for dense stereo's points
    params, report = initial_params(footage, np.zeros((0, 3)), np.zeros((0, 3), np.uint8),
                                    InitConfig(sh_degree=0, dynamic_per_instant=50), dense=dense)
    assert int((params["dynamic"] == 0).sum()) == len(xyz) and report.static_points["points_in"] == 0
    assert sum(report.dynamic_per_instant) > 0
    with pytest.raises(ValueError, match="cloud is empty"):  # and with nothing at all, cleaning says so
        initial_params(footage, np.zeros((0, 3)), np.zeros((0, 3), np.uint8), InitConfig(sh_degree=0))


# ---- 4-6. the scratch checkpoint ----------------------------------------------------------------------------------

W, H, T = 48, 32, 4


def _cameras(ids, eyes) -> Cameras:
    poses = np.stack([look_at(eye, (0.0, 0.0, 0.0)) for eye in eyes])
    n = len(ids)
    return Cameras.create(ids, [40.0] * n, [40.0] * n, [W / 2] * n, [H / 2] * n, poses, np.tile([W, H], (n, 1)))


def _trainer(steps: int = 4, stills: bool = False, **config) -> Trainer:
    """A trainer on a tiny scene: two cameras over a floor of Gaussians and one dynamic Gaussian."""
    rng = np.random.default_rng(0)
    cameras = _cameras(["a", "b"], [(0.0, -2.0, 1.5), (2.0, 0.2, 1.5)])
    poses = np.repeat(cameras.world_to_camera[:, None], T, axis=1)
    footage = ShotFootage(cameras, rng.integers(0, 255, (2, T, H, W, 3), dtype=np.uint8), np.ones((2, T), bool),
                          poses, normalised_times(T), np.arange(T))
    floor = np.concatenate([rng.uniform(-0.6, 0.6, (40, 2)), np.zeros((40, 1))], axis=1)
    params = concat_params(make_params(torch.as_tensor(floor), torch.rand(40, 3), torch.full((40,), 0.08), 0),
                           make_params(torch.tensor([[0.0, 0.0, 0.3]]), torch.rand(1, 3), torch.full((1,), 0.1), 0,
                                       times=torch.tensor([0.5]), time_scale=0.5))
    survey = SetStills(_cameras(["survey/000"], [(-1.5, -1.5, 2.0)]), [np.zeros((H, W, 3), np.uint8)]) \
        if stills else None
    return Trainer(footage, DynamicScene(params, 0), TrainConfig(steps=steps, refine_start=100, **config),
                   stills=survey)


def test_a_corrupt_checkpoint_is_set_aside_named_and_training_starts_afresh(tmp_path, capsys):
    checkpoint = tmp_path / "scratch" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint" * 10)
    trainer = _trainer()
    trainer.run(checkpoint)
    assert trainer.step_idx == 4 and trainer.resumed_from is None
    kept = checkpoint.with_name("checkpoint.pt.corrupt")
    assert kept.read_bytes() == b"PK\x03\x04 not a checkpoint" * 10  # kept as it was, never deleted
    err = capsys.readouterr().err
    assert f"warning: reconstruct: the checkpoint {checkpoint} cannot be read (" in err
    assert "it is set aside as checkpoint.pt.corrupt and training starts from step 0" in err
    assert torch.load(checkpoint, weights_only=False)["step"] == 4  # a good checkpoint in its place
    # a checkpoint cut short (a full disk, a kill mid-copy) is set aside too, beside the first one
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[:len(whole) // 2])
    again = _trainer()
    again.run(checkpoint)
    assert again.step_idx == 4 and kept.is_file()
    assert checkpoint.with_name("checkpoint.pt.corrupt-2").read_bytes() == whole[:len(whole) // 2]
    assert "set aside as checkpoint.pt.corrupt-2" in capsys.readouterr().err
    torch.save({"step": 3}, checkpoint)  # a torch file, but not a checkpoint
    _trainer().run(checkpoint)
    assert checkpoint.with_name("checkpoint.pt.corrupt-3").is_file()
    err = capsys.readouterr().err
    assert "cannot be read (ValueError: not a training checkpoint of this version of reshoot)" in err


def test_a_resume_says_where_and_from_which_step(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pt"
    _trainer().run(checkpoint, until=2)  # as if stopped at step 2
    assert capsys.readouterr().err == ""  # nothing to resume from: nothing said
    resumed = _trainer()
    resumed.run(checkpoint)
    assert resumed.resumed_from == 2 and resumed.step_idx == 4
    assert capsys.readouterr().err == (f"reconstruct: resuming from the checkpoint at step 2 of 4 ({checkpoint}); "
                                       "pass --force to start over\n")


def test_another_runs_checkpoint_is_set_aside_and_training_starts_afresh(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pt"
    _trainer(steps=2).run(checkpoint)
    written = checkpoint.read_bytes()
    with_stills = _trainer(stills=True)  # register re-run with --survey: one more image to train on
    with_stills.run(checkpoint)
    assert with_stills.step_idx == 4 and with_stills.resumed_from is None
    assert checkpoint.with_name("checkpoint.pt.other-run").read_bytes() == written
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"warning: reconstruct: the checkpoint {checkpoint} is of no use to this run: it was trained "
                          "on 2 images of cameras ['a', 'b'], this run has 3 images of ['a', 'b'] (survey stills or "
                          "cameras changed); it is set aside as checkpoint.pt.other-run and training starts from "
                          "step 0")
    # a CPU run finding a GPU run's checkpoint (--strategy auto: mcmc there, default here)
    mcmc = _trainer(stills=True, strategy="mcmc", set_fraction=0.0)
    mcmc.run(checkpoint)
    assert mcmc.step_idx == 4 and checkpoint.with_name("checkpoint.pt.other-run-2").is_file()
    assert "it was trained with the 'default' densification strategy, this run uses 'mcmc'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass --force to start over"):  # loading it by hand still refuses
        _trainer().load_state_dict(torch.load(checkpoint.with_name("checkpoint.pt.other-run-2"), weights_only=False))
