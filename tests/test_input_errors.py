"""Bad input of every kind stops with one clear error: the stage, the thing (file, camera, frame, flag or setting),
what was found and what to do; never a traceback, and never a silent correction (issue 15)."""

from __future__ import annotations

import errno
import json
import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from reshoot import deliver
from reshoot.atomic import atomic_write_json
from reshoot.camera_path import CameraPath, Timeline
from reshoot.cameras import Cameras, look_at
from reshoot.footage import FootageError, probe_source
from reshoot.media import write_video
from reshoot.pipeline.job import load_job_config
from reshoot.stages import guide
from reshoot.stages.export import ExportConfig, run_export
from reshoot.stages.guide import GuideConfig, GuideFrame
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.path import PathConfig, build_path
from reshoot.sync import CameraClock, SyncError, build_timeline
from reshoot.viz import save_png
from reshoot.workspace import Workspace
from reshoot_cli import main as cli


def _cli_error(capsys, monkeypatch, *argv: str) -> str:
    """Run ``reshoot ARGV`` in this process; it must fail with one ``error:`` line, returned."""
    monkeypatch.setattr(cli, "console", Console(stderr=True, width=10_000))  # one line, however long
    assert cli.main(list(argv)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error:") and err.count("\n") == 1, err
    return err.strip()


# ---- path: --focal-mm ---------------------------------------------------------------------------------------------

def _ring(n: int = 3) -> Cameras:
    """n set cameras on a ring around the origin looking at it, fx 300 px at 320x180 (a 33.75 mm lens on 36 mm)."""
    angles = np.radians(np.arange(n) * 360.0 / n)
    poses = np.stack([look_at([np.cos(a), np.sin(a), 0.4], [0.0, 0.0, 0.0]) for a in angles])
    return Cameras.create([f"cam{i}" for i in range(n)], [300.0] * n, [300.0] * n, [160.0] * n, [90.0] * n, poses,
                          np.tile((320, 180), (n, 1)))


@pytest.mark.parametrize("focal_mm", [0.0, -24.0, float("nan")])
def test_focal_mm_of_zero_or_below_is_refused_naming_the_flag(focal_mm):
    with pytest.raises(ValueError, match=r"^--focal-mm (0|-24|nan): a lens needs a focal length > 0 mm .*leave "
                                         r"--focal-mm out for the default"):
        PathConfig(focal_mm=focal_mm)
    with pytest.raises(ValueError, match=r"^--sensor-width-mm 0: a sensor needs a width > 0 mm"):
        PathConfig(sensor_width_mm=0.0)


def test_focal_mm_zero_on_the_command_line_is_one_error_line(capsys, monkeypatch, tmp_path):
    message = _cli_error(capsys, monkeypatch, "path", "overhead", "--workspace", str(tmp_path / "ws"),
                         "--focal-mm", "0")
    assert message.startswith("error: --focal-mm 0: a lens needs a focal length > 0 mm")
    assert not (tmp_path / "ws").exists()


def test_focal_mm_left_out_takes_each_kinds_default_and_a_given_lens_is_kept():
    cameras, timeline = _ring(), Timeline(Fraction(24), 5)
    assert PathConfig().focal_mm is None
    overhead = build_path(PathConfig(), cameras, timeline, Path("."))
    np.testing.assert_allclose(overhead.focal_mm, 24.0)  # the overhead default
    orbit = build_path(PathConfig(kind="orbit"), cameras, timeline, Path("."))
    np.testing.assert_allclose(orbit.focal_mm, 300.0 / 320.0 * 36.0)  # the set cameras' own lens
    for kind in ("overhead", "orbit"):
        np.testing.assert_allclose(build_path(PathConfig(kind=kind, focal_mm=18.0), cameras, timeline,
                                              Path(".")).focal_mm, 18.0)


# ---- ingest: a truncated video ------------------------------------------------------------------------------------

def _take(path: Path, frames: int = 65, **options) -> Path:
    """A 64x48 camera file of ``frames`` noisy frames at 24 fps (noise: every frame costs about the same bytes)."""
    rng = np.random.default_rng(7)
    write_video(path, (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(frames)), 24, **options)
    return path


def _truncated(path: Path, keep: float) -> Path:
    cut = path.with_name(f"cut_{path.name}")
    data = path.read_bytes()
    cut.write_bytes(data[:int(len(data) * keep)])
    return cut


def test_a_truncated_faststart_video_is_refused_naming_the_file_and_its_frame_counts(tmp_path):
    whole = _take(tmp_path / "cam0.mp4", container_options={"movflags": "faststart"})  # the index first, as cameras do
    cut = _truncated(whole, 0.3)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(FootageError) as err:
        run_ingest(ws, [whole, cut], IngestConfig(sync="none", max_frames=2))
    message = str(err.value)
    found = re.search(r"^camera 'cut_cam0': \S*cut_cam0\.mp4 holds only (\d+) of the 65 frames its header lists: the "
                      r"file looks truncated\. Copy it again from the card", message)
    assert found, message
    assert 10 <= int(found[1]) <= 25
    assert not (ws.root / "ingest").exists()
    result = run_ingest(ws, [whole], IngestConfig(sync="none", max_frames=2))  # the complete file still ingests
    assert result.manifest["summary"]["frames"] == 2 and probe_source(whole).frame_count == 65


def test_a_truncated_matroska_video_is_refused_by_its_header_duration(tmp_path):
    whole = _take(tmp_path / "cam0.mkv")
    assert probe_source(whole).frame_count == 65
    with pytest.raises(FootageError, match=r"cut_cam0\.mkv holds only \d+ frames \(\d\.\d\d s\) of the 2\.71 s \(about "
                                           r"65 frames at 24 fps\) its header promises: the file looks truncated"):
        probe_source(_truncated(whole, 0.3))


def test_a_video_a_frame_short_of_its_header_is_not_refused(tmp_path):
    whole = _take(tmp_path / "cam0.mp4", frames=20, container_options={"movflags": "faststart"})
    assert probe_source(_truncated(whole, 0.995)).frame_count == 20  # the last frame cut short: not "truncated"


# ---- run --config: values of the wrong type -----------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('[reconstruct]\nsteps = "many"\n', "reconstruct.steps = 'many' is not a whole number"),
    ("[reconstruct]\nsteps = 6.5\n", "reconstruct.steps = 6.5 is not a whole number"),
    ('[guide]\nconfidence = "yes"\n', "guide.confidence = 'yes' is not true or false"),
    ("[ingest]\nscale = true\n", "ingest.scale = true is not a number"),
    ('[path]\nkind = "overhed"\n', "path.kind = 'overhed' is not one of 'overhead', 'dolly', 'orbit', "),
    ("[path]\ntarget = [0.0, 1.0]\n", "path.target = [0.0, 1.0] is not a list of 3 items, each a number"),
    ('[export]\nformats = "mp4"\n', "export.formats = 'mp4' is not a list, each item one of 'png', "),
    ('[export]\nformats = ["mp4", "gif"]\n', "export.formats = ['mp4', 'gif'] is not a list, each item one of "),
    ("[register]\nsurvey = 5\n", "register.survey = 5 is not a path (text in quotes, relative to the file)"),
    ('sources = "a.mov"\n', "sources = 'a.mov' is not a list, each item a path"),
    ('[reconstruct]\nstepz = 3\n', "reconstruct: unknown setting(s) stepz; known: "),
    ('[reconstrct]\nsteps = 3\n', "unknown setting(s) reconstrct; known: export, guide, ingest, path, "),
])
def test_a_job_setting_of_the_wrong_type_or_name_is_refused_when_the_file_is_read(tmp_path, text, message):
    (tmp_path / "job.toml").write_text(text)
    with pytest.raises(ValueError) as err:
        load_job_config(tmp_path / "job.toml")
    assert str(err.value).startswith(f"{tmp_path / 'job.toml'}: {message}"), str(err.value)


def test_a_job_config_converts_what_is_right_and_run_stops_before_ingest_on_a_wrong_type(tmp_path, capsys, monkeypatch):
    (tmp_path / "job.json").write_text(json.dumps({
        "workspace": "ws", "path": {"focal_mm": 18, "name": None, "target": [0, 0, 1]},
        "reconstruct": {"steps": None, "set_fraction": 1}, "export": {"formats": ["png"]}}))
    job = load_job_config(tmp_path / "job.json")
    assert job.path.focal_mm == 18.0 and isinstance(job.path.focal_mm, float) and job.path.target == (0.0, 0.0, 1.0)
    assert job.reconstruct.steps is None and job.reconstruct.set_fraction == 1.0 and job.workspace == tmp_path / "ws"
    (tmp_path / "job.toml").write_text('sources = ["cam0.mov"]\nworkspace = "ws"\n[reconstruct]\nsteps = "many"\n')
    message = _cli_error(capsys, monkeypatch, "run", "--config", str(tmp_path / "job.toml"))
    assert message == f"error: {tmp_path / 'job.toml'}: reconstruct.steps = 'many' is not a whole number"
    assert not (tmp_path / "ws").exists()


# ---- bench.json: numpy values -------------------------------------------------------------------------------------

def test_atomic_write_json_writes_numpy_values_and_paths_as_plain_json(tmp_path):
    rows = [{"benchmark": "register", "pass": np.bool_(True), "cameras": np.int64(4), "error": np.float32(0.25),
             "errors": np.array([0.5, 1.0]), "folder": Path("ws") / "register"}]
    atomic_write_json(tmp_path / "bench.json", {"rows": rows})
    back = json.loads((tmp_path / "bench.json").read_text())["rows"][0]
    assert back == {"benchmark": "register", "pass": True, "cameras": 4, "error": 0.25, "errors": [0.5, 1.0],
                    "folder": str(Path("ws") / "register")}
    assert type(back["pass"]) is bool
    with pytest.raises(TypeError, match="cannot write object"):
        atomic_write_json(tmp_path / "other.json", {"what": object()})
    assert not (tmp_path / "other.json").exists()


# ---- messages name the flags, not the classes ---------------------------------------------------------------------

def test_config_errors_name_the_flags(tmp_path):
    cases = [
        (lambda: IngestConfig(step=0), r"^--step 0: give a whole number >= 1"),
        (lambda: IngestConfig(max_frames=-1), r"^--max-frames -1: give 0 \(no limit\) or more"),
        (lambda: IngestConfig(scale=2.0), r"^--scale 2: give a factor in \(0, 1\]"),
        (lambda: GuideConfig(confidence_downscale=0), r"^--confidence-downscale 0: give a whole number >= 1"),
        (lambda: GuideConfig(min_coverage=0.9, warn_coverage=0.5), r"^--min-coverage 0.9 and --warn-coverage 0.5: give "
                                                                   r"fractions .*0 <= --min-coverage <= --warn-cov"),
        (lambda: PathConfig(kind="dolly"), r"^path kind 'dolly' needs --camera-a and --camera-b"),
        (lambda: PathConfig(width=320), r"^give both --width and --height or neither"),
        (lambda: PathConfig(name="shots/overhead"), r"^--name 'shots/overhead' must be a plain file name"),
        (lambda: ExportConfig(name=".hidden"), r"^--name '.hidden' must be a plain file name"),
        (lambda: ExportConfig(first_frame=-1), r"^--first-frame must be a whole number >= 0"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    clock = CameraClock("cam0", 0.0, np.arange(24) / 24, Fraction(24))
    with pytest.raises(SyncError, match=r"^the range to extract, \[0\.500, 0\.250\) s on the shoot clock, is empty: "
                                        r"give a start \(--start-s\) before the end \(--end-s\)"):
        build_timeline([clock], Fraction(24), start_s=0.5, end_s=0.25)


def test_ingest_range_errors_name_the_flags_on_the_command_line(capsys, monkeypatch, tmp_path):
    take = _take(tmp_path / "cam0.mov", frames=12)
    message = _cli_error(capsys, monkeypatch, "ingest", str(take), "--workspace", str(tmp_path / "ws"),
                         "--sync", "none", "--start-s", "0.4", "--end-s", "0.2")
    assert "--start-s" in message and "--end-s" in message and "build_timeline" not in message


# ---- a full disk --------------------------------------------------------------------------------------------------

def _full(code: int = errno.ENOSPC):
    """A writer that finds the disk full (ENOSPC: "No space left on device") or the quota used up (EDQUOT)."""
    def write(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))
    return write


def test_a_full_disk_while_writing_a_sequence_or_movie_names_the_folder(tmp_path, monkeypatch):
    frames = [np.full((8, 8, 3), 0.5, np.float32)] * 2
    monkeypatch.setattr(deliver, "atomic_write_bytes", _full())
    with pytest.raises(OSError) as err:
        deliver.write_png_sequence(tmp_path / "png", frames, name="shot")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "png")
    assert str(err.value) == (f"cannot write the PNG sequence shot.####.png to {tmp_path / 'png'}: the disk is full "
                              "(No space left on device). Free space on that disk, or write to a folder on another "
                              "disk")
    assert not list((tmp_path / "png").glob("*"))  # nothing half-written
    if hasattr(errno, "EDQUOT"):
        monkeypatch.setattr(deliver, "write_video", _full(errno.EDQUOT))
        with pytest.raises(OSError, match=r"^cannot write shot\.mp4 to .*: the disk quota is used up \(Disk quota "
                                          r"exceeded\)\. Free space on that disk"):
            deliver.write_shot_video(tmp_path / "shot.mp4", frames, 24)


def test_a_full_disk_while_writing_guide_frames_names_the_frame_and_the_stage_folder(tmp_path, monkeypatch):
    frame = GuideFrame(np.zeros((4, 4, 3), np.float32), np.ones((4, 4), np.float32), np.ones((4, 4), np.float32),
                       None)
    for folder in ("rgb", "alpha", "depth"):
        (tmp_path / "tmp" / folder).mkdir(parents=True)
    monkeypatch.setattr(guide, "save_png", _full())
    with pytest.raises(OSError) as err:
        guide._write_frame(tmp_path / "tmp", 3, frame, tmp_path / "ws" / "guide")
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == (f"cannot write guide frame 3 to {tmp_path / 'ws' / 'guide'}: the disk is full (No space "
                              "left on device). Free space on that disk, or choose another --workspace on a disk with "
                              "room")


def _guided_workspace(root: Path) -> Workspace:
    """A workspace holding just what export reads: a footage timeline and two guide frames of a path."""
    ws = Workspace(root)

    def ingest(ctx):
        atomic_write_json(ctx.out_dir / "footage.json", {
            "reference": "cam0", "cameras": [{"camera_id": "cam0", "fps": "24/1"}],
            "timeline": {"fps": "24/1", "frame_count": 2, "times_s": [0.0, 1 / 24]},
            "frames": {"layout": "frames/<camera>/<frame:06d>.png"}})
        return {}

    def guide_frames(ctx):
        path = CameraPath("overhead", np.stack([look_at([0, 0, 2.0], [0, 0, 0], up=(0, 1, 0))] * 2), [24.0, 24.0],
                          [0.0, 1.0], (16, 8), Fraction(24))
        path.save(ctx.out_dir / "path.json")
        for i in range(2):
            save_png(np.full((8, 16, 3), 100, np.uint8), ctx.out_dir / "rgb" / f"{i:06d}.png")
        return {}

    ws.run_stage("ingest", IngestConfig(), ingest)
    ws.run_stage("guide", GuideConfig(), guide_frames)
    return ws


def test_a_full_disk_during_export_names_the_export_folder_and_workspace(tmp_path, monkeypatch):
    ws = _guided_workspace(tmp_path / "ws")
    monkeypatch.setattr(deliver, "atomic_write_bytes", _full())
    with pytest.raises(OSError) as err:
        run_export(ws, ExportConfig(source="guide", formats=("png",)))
    assert err.value.errno == errno.ENOSPC
    # the workspace may say it in its own words for every stage; either way: the folder, the cause, what to do
    message = str(err.value)
    assert str(ws.root / "export") in message and "(No space left on device)" in message, message
    assert "free space" in message.lower() and "--workspace" in message, message
    assert ws.manifest("export") is None
