"""`reshoot run`: a job config file read into every stage's config, and the whole job on the small shoot, run again
with one setting changed (only the stages after it run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reshoot.pipeline.job import JobConfig, load_job_config, run_job
from reshoot.sample import PRESETS, make_sample_shoot


def test_job_config_file_fills_every_stage_and_resolves_paths(tmp_path):
    (tmp_path / "job.toml").write_text('''
sources = ["a.mov", "b.mov"]
workspace = "ws"
[register]
survey = "stills"
[reconstruct]
steps = 300
holdout = "cam1"
[path]
kind = "orbit"
degrees = 45.0
target = [0.0, 0.1, 0.2]
[export]
formats = ["png", "chan"]
''')
    job = load_job_config(tmp_path / "job.toml")
    assert job.sources == (tmp_path / "a.mov", tmp_path / "b.mov") and job.workspace == tmp_path / "ws"
    assert job.register.survey == tmp_path / "stills"
    assert job.reconstruct.steps == 300 and job.reconstruct.holdout == "cam1"
    assert job.path.kind == "orbit" and job.path.target == (0.0, 0.1, 0.2) and job.path.degrees == 45.0
    assert job.export.formats == ("png", "chan") and job.guide == JobConfig().guide
    (tmp_path / "bad.toml").write_text('[reconstruct]\nstepz = 3\n')
    with pytest.raises(ValueError, match=r"bad.toml: reconstruct: unknown setting\(s\) stepz; known: .*steps"):
        load_job_config(tmp_path / "bad.toml")
    (tmp_path / "worse.json").write_text('{"path": {"kind": "import"}}')
    with pytest.raises(ValueError, match="worse.json: path: .*needs --file"):
        load_job_config(tmp_path / "worse.json")
    with pytest.raises(ValueError, match="no sources"):
        run_job(JobConfig())


def test_run_does_the_whole_job_and_picks_up_where_it_changed(tmp_path):
    shoot = make_sample_shoot(tmp_path / "shoot", PRESETS["small"])
    (tmp_path / "job.json").write_text(json.dumps({
        "sources": [str(p) for p in shoot.videos.values()], "workspace": "ws",
        "ingest": {"sync": "timecode"}, "register": {"survey": str(shoot.root / "survey")},
        "reconstruct": {"steps": 60, "sh_degree": 0, "dynamic_per_instant": 200},
        "guide": {"confidence": False}, "export": {"formats": ["png", "mp4", "chan"]}}))
    command = [sys.executable, "-m", "reshoot_cli.main", "run", "--config", str(tmp_path / "job.json")]
    env = {"RESHOOT_QUIET": "1", "PATH": "/usr/bin:/bin"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "[7/7] export" in first.stderr and "the shot:" in first.stdout and "overhead.mp4" in first.stdout
    shot = tmp_path / "ws" / "export"
    assert len(list((shot / "png").glob("overhead.*.png"))) == 17 and (shot / "overhead.chan").is_file()
    again = subprocess.run(command + ["--path.tilt-deg", "20"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in again.stdout.splitlines()
            if line.startswith("│")}
    assert [rows[s] for s in ("ingest", "register", "reconstruct")] == ["up to date"] * 3
    assert [rows[s] for s in ("path", "guide", "refine", "export")] == ["ran"] * 4
    assert json.loads(Path(tmp_path / "ws" / "path" / "manifest.json").read_text())["config"]["tilt_deg"] == 20.0
