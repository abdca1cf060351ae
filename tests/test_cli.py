"""The `reshoot` command as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import reshoot

RESHOOT = Path(sys.executable).parent / "reshoot"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RESHOOT_QUIET": "1"}
    env.pop("RESHOOT_DEBUG", None)
    return subprocess.run([str(RESHOOT), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_help_lists_the_commands_and_every_stage():
    result = run("--help")
    assert result.returncode == 0
    for name in ("sample", "demo", "status", *reshoot.STAGES):
        assert name in result.stdout


def test_command_help_shows_the_config_docstrings():
    result = run("sample", "--help")
    assert result.returncode == 0
    assert "--n-cameras" in result.stdout and "held-out overhead camera" in result.stdout


def test_sample_writes_videos_and_ground_truth(tmp_path):
    result = run("sample", "--out", str(tmp_path / "s"), "--preset", "tiny", "--n-cameras", "3")
    assert result.returncode == 0, result.stderr
    gt = json.loads((tmp_path / "s" / "ground_truth.json").read_text())
    assert [c["camera_id"] for c in gt["cameras"] if c["role"] != "survey"] == ["cam0", "cam1", "cam2", "overhead"]
    assert len(list((tmp_path / "s" / "survey").glob("*.png"))) == 12
    assert all((tmp_path / "s" / f"cam{k}.mov").stat().st_size > 1000 for k in range(3))
    assert gt["config"]["width"] == 96 and gt["config"]["n_cameras"] == 3
    again = run("sample", "--out", str(tmp_path / "s"), "--preset", "tiny", "--n-cameras", "3")
    assert again.returncode == 0 and "already up to date" in again.stdout


def test_user_errors_are_one_clear_line_not_a_traceback(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "take1.mov").write_bytes(b"x")
    result = run("sample", "--out", str(tmp_path / "mine"))
    assert result.returncode == 1
    assert "not a reshoot sample" in result.stderr and str(tmp_path / "mine") in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr
    bad = run("sample", "--out", str(tmp_path / "x"), "--width", "33")
    assert bad.returncode == 1 and "width must be even" in bad.stderr and "Traceback" not in bad.stderr
    assert run("frobnicate").returncode == 2  # no such command
    reshoot.Workspace(tmp_path / "empty-ws")
    early = run("reconstruct", "--workspace", str(tmp_path / "empty-ws"))
    assert early.returncode == 1 and "needs stage 'ingest'" in early.stderr and "Traceback" not in early.stderr
    missing = run("register", "--workspace", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "reshoot ingest" in missing.stderr and not (tmp_path / "nowhere").exists()
    nothing = run("ingest", "--workspace", str(tmp_path / "ws"))
    assert nothing.returncode == 1 and "at least one camera file" in nothing.stderr
    (tmp_path / "afile").write_text("not a folder")
    clash = run("demo", "--dir", str(tmp_path / "afile"), "--preset", "small")
    assert clash.returncode == 1 and "afile" in clash.stderr and "Traceback" not in clash.stderr
    assert run("sample", "--preset", "huge").returncode == 2
    status = run("status", "--workspace", str(tmp_path / "nowhere"))
    assert status.returncode == 1 and "not a reshoot workspace" in status.stderr


def test_demo_makes_the_shoot_and_a_workspace_that_reads_it(tmp_path):
    result = run("demo", "--dir", str(tmp_path / "demo"), "--preset", "small")
    assert result.returncode == 0, result.stderr
    assert "ingest done" in result.stdout and "audio sync against the ground truth" in result.stdout
    errors_ms = [float(line.split("│")[-2].strip().split()[0]) for line in result.stdout.splitlines()
                 if line.count("│") == 5 and line.strip("│ ").startswith("cam") and "ms" in line]
    assert len(errors_ms) == 3 and max(abs(e) for e in errors_ms) < 1.0
    assert "registration against the ground truth" in result.stdout
    assert (tmp_path / "demo" / "workspace" / "register" / "transforms.json").is_file()
    assert len(list((tmp_path / "demo" / "workspace" / "ingest" / "frames" / "cam1").glob("*.png"))) > 0
    info = json.loads((tmp_path / "demo" / "workspace" / "workspace.json").read_text())
    assert [Path(p).name for p in info["sources"]] == ["cam0.mov", "cam1.mov", "cam2.mov"]
    assert Path(info["ground_truth"]).is_file()
    # ... and the whole job after registration: the overhead shot, checked against the hidden camera's footage
    assert "the overhead shot against what the hidden overhead camera filmed" in result.stdout
    shot = tmp_path / "demo" / "workspace" / "export"
    assert f"the shot: {shot / 'overhead.mp4'}" in result.stdout.replace("\n", "")
    assert (shot / "overhead.chan").is_file() and len(list((shot / "exr").glob("*.exr"))) == 17
    import OpenEXR  # a new user's EXRs are ACEScg, and say so in their headers

    header = OpenEXR.File(str(shot / "exr" / "overhead.1001.exr"), header_only=True).header()
    assert header["reshoot/colorspace"] == header["oiio:ColorSpace"] == "ACEScg"
    assert header["chromaticities"][:2] == pytest.approx((0.713, 0.293))
    assert f"EXR sequence (ACEScg, colourspace in each header): {shot / 'exr'}" in result.stdout.replace("\n", "")
    report = tmp_path / "demo" / "workspace" / "eval" / "overhead"
    assert f"{report / 'report.html'}" in result.stdout.replace("\n", "")
    metrics = json.loads((report / "metrics.json").read_text())
    assert len(metrics["guide"]["per_frame"]) == 6 and metrics["refiner"] == "classical"  # the truth's 6 frames
    assert (report / "side_by_side.png").is_file() and "<svg" in (report / "report.html").read_text()
    psnr_db = {line.split("│")[1].split()[0]: float(line.split("│")[2].split()[0]) for line in result.stdout.splitlines()
               if line.count("│") == 5 and line.split("│")[1].strip().startswith(("guide frames", "refined"))}
    assert psnr_db["refined"] > psnr_db["guide"] > 5.0
    assert metrics["refined"]["psnr_db"] == pytest.approx(psnr_db["refined"], abs=0.006)  # the report's are the table's
    from reshoot.evaluation.scores import sample_truth_view, score_shot
    from reshoot.sample import load_sample_shoot

    truth = sample_truth_view(tmp_path / "demo" / "workspace", load_sample_shoot(tmp_path / "demo" / "footage"))
    for stage, name in (("guide", "guide"), ("refine", "refined")):  # ... and the evaluation module's own scoring
        assert metrics[name]["psnr_db"] == pytest.approx(score_shot(shot.parent / stage, truth.frames)["psnr_db"],
                                                         abs=1e-4)
    again = run("demo", "--dir", str(tmp_path / "demo"), "--preset", "small")
    assert again.returncode == 0 and "re-used" in again.stdout and "skipped" in again.stdout
    status = run("status", "--workspace", str(tmp_path / "demo" / "workspace"))
    assert status.returncode == 0 and "complete" in status.stdout and "3 file(s)" in status.stdout


def test_ingest_command_syncs_the_sample(tmp_path, tiny_shoot):
    videos = [str(p) for p in tiny_shoot.videos.values()]
    result = run("ingest", *videos, "--workspace", str(tmp_path / "ws"), "--sync", "timecode", "--max-frames", "3")
    assert result.returncode == 0, result.stderr
    assert "3 cameras, 3 frames" in result.stdout and "timecode" in result.stdout
    assert len(list((tmp_path / "ws" / "ingest" / "frames" / "cam2").glob("*.png"))) == 3
    help_text = run("ingest", "--help").stdout
    assert "--sync" in help_text and "cross-correlate" in help_text and "--calibration" in help_text
    assert "--colourspace" in help_text and "--camera-colourspace" in help_text
    typo = run("ingest", *videos, "--workspace", str(tmp_path / "ws2"), "--camera-colourspace", "cam1=SLog3")
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert "camera 'cam1': 'SLog3' is not a colourspace" in typo.stderr.replace("\n", "") and "S-Log3" in typo.stderr


@pytest.mark.parametrize("script", ["cli/demo.sh", "cli/test.sh", ".ci/run"])
def test_setup_scripts_are_valid_bash(script):
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run(["bash", "-n", str(root / script)]).returncode == 0
