"""`reshoot batch`: a batch file read and checked before anything runs, one shot's job run into its own log, and two
shots on a local Ray (one failing) with the summary, run again to show the finished shot is skipped."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from reshoot._deps import MissingDependencyError
from reshoot.pipeline.batch import BatchShot, last_stage_in_log, load_batch, run_batch, run_shot
from reshoot.pipeline.job import JobConfig
from reshoot.sample import PRESETS, make_sample_shoot

#: The fastest whole job on the small sample: a rough scene (10 steps on sparse points), a shot all the same.
FAST_JOB = '''
[ingest]
sync = "timecode"
[reconstruct]
steps = 10
sh_degree = 0
dynamic_per_instant = 50
dense = false
stills = false
appearance = false
downscale = 2
[guide]
confidence = false
[export]
formats = ["png"]
'''


#: Every shot's sources, for batch files whose shots need some.
SOURCES = '[defaults]\nsources = ["cam0.mov", "cam1.mov"]\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_batch_file_merges_defaults_config_files_and_shot_settings(tmp_path):
    write(tmp_path / "base.toml", FAST_JOB)
    write(tmp_path / "jobs" / "b.toml", 'sources = ["cam0.mov", "cam1.mov"]\nworkspace = "ws-b"\n'
                                        '[reconstruct]\nsteps = 30\n')
    batch = load_batch(write(tmp_path / "shots.toml", '''
max_parallel = 3
[defaults]
config = "base.toml"
cpus = 2
[defaults.path]
kind = "orbit"
[[shot]]
name = "a"
sources = ["footage/a0.mov", "footage/a1.mov"]
gpus = 0.5
[shot.reconstruct]
steps = 20
[[shot]]
name = "b"
config = "jobs/b.toml"
'''))
    a, b = batch.shots
    assert a.job.sources == (tmp_path / "footage/a0.mov", tmp_path / "footage/a1.mov")
    assert a.job.workspace == tmp_path / "workspaces" / "a" and (a.cpus, a.gpus) == (2.0, 0.5)
    assert a.job.reconstruct.steps == 20 and a.job.reconstruct.dense is False and a.job.path.kind == "orbit"
    assert b.job.sources == (tmp_path / "jobs/cam0.mov", tmp_path / "jobs/cam1.mov")  # relative to its own file
    assert b.job.workspace == tmp_path / "jobs" / "ws-b" and b.job.reconstruct.steps == 30
    assert b.job.ingest.sync == "timecode" and b.job.export.formats == ("png",) and (b.cpus, b.gpus) == (2.0, 0.0)
    assert a.log == tmp_path / "shots_logs" / "a.log" and batch.summary_file == tmp_path / "shots_summary.json"
    assert batch.max_parallel == 3


@pytest.mark.parametrize("text, message", [
    (SOURCES + '[[shot]]\nname = "a"\n[[shot]]\nname = "a"\n', r"two shots are named 'a' \(numbers 1 and 2\)"),
    (SOURCES + '[[shot]]\nname = "a"\nworkspace = "ws"\n[[shot]]\nname = "b"\nworkspace = "ws"\n',
     r"shots 'a' and 'b' have the same workspace"),
    (SOURCES + '[[shot]]\nname = "a"\nworkspace = "ws"\n[[shot]]\nname = "b"\nworkspace = "ws/inner"\n',
     r"shots 'a' and 'b' have workspaces one inside the other"),
    ('[[shot]]\nname = "a"\n', r"shot 'a': no sources; give sources = \[...\]"),
    ('[[shot]]\nname = "a"\nconfig = "missing.toml"\n', r"shot 'a': config = 'missing.toml': no `reshoot run` config"),
    ('[[shot]]\nname = "a"\n[shot.reconstruct]\nstepz = 3\n',
     r"shot 'a': reconstruct: unknown setting\(s\) stepz; known: .*steps"),
    ('[[shot]]\nname = "a"\n[shot.reconstruct]\nsteps = "many"\n', r"shot 'a': reconstruct.steps = 'many' is not"),
    ('[[shot]]\nname = "a"\ncpu = 2\n', r"shot 'a': unknown key\(s\) cpu; known: name, cpus, gpus, config"),
    ('[[shot]]\nname = "a"\ncpus = 0\n', r"shot 'a': cpus = 0 and gpus = 0: a shot takes more than 0 CPUs"),
    ('[[shot]]\nname = "a"\ngpus = 1.5\n', r"shot 'a': gpus = 1.5: Ray takes a fraction of one only"),
    ('[defaults]\ncpus = "two"\n[[shot]]\nname = "a"\n', r"\[defaults\]: cpus = 'two' is not a number"),
    ('[[shot]]\nsources = ["a.mov"]\n', r"\[\[shot\]\] number 1 has no name"),
    ('[[shot]]\nname = "a b"\n', r"\[\[shot\]\] number 1 has name = 'a b'"),
    ('[defaults]\ncpus = 1\n', r"no shots; give each one a \[\[shot\]\] table"),
    ('max_parallel = 0\n[[shot]]\nname = "a"\n', r"max_parallel = 0 is not a whole number of 1 or more"),
    ('shots = []\n', r"unknown key\(s\) shots; known: defaults, shot"),
])
def test_batch_file_errors_name_the_shot_and_the_key(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_batch(write(tmp_path / "shots.toml", text))


def test_a_config_file_with_a_wrong_setting_is_named(tmp_path):
    write(tmp_path / "b.toml", '[path]\ntilt = 3\n')
    with pytest.raises(ValueError, match=r"b.toml: path: unknown setting\(s\) tilt"):
        load_batch(write(tmp_path / "shots.toml", '[[shot]]\nname = "b"\nconfig = "b.toml"\n'))
    with pytest.raises(FileNotFoundError, match="no batch file"):
        load_batch(tmp_path / "nope.toml")


def test_a_failing_shot_is_reported_with_its_log_not_raised(tmp_path):
    shot = BatchShot("lost", JobConfig(sources=(tmp_path / "gone.mov",), workspace=tmp_path / "ws"),
                     tmp_path / "logs" / "lost.log")
    before = os.environ.get("RESHOOT_PROGRESS")
    outcome = run_shot(shot)
    assert outcome.state == "failed" and outcome.failed_stage is None and "gone.mov" in outcome.error
    log = shot.log.read_text()
    assert "=== reshoot batch: shot lost started" in log and "FileNotFoundError" in log  # the traceback is kept
    assert "=== shot lost failed before its first stage: source(s) not found" in log
    assert os.environ.get("RESHOOT_PROGRESS") == before  # the job's environment is undone


def test_the_stage_a_shot_stopped_in_is_read_from_its_latest_run_in_the_log(tmp_path):
    log = write(tmp_path / "a.log", "=== reshoot batch: shot a started\n[1/7] ingest: read\n[2/7] register: reg\n"
                                    "[reshoot register] x 1/2 50.0% elapsed 0:00:01 eta 0:00:01\n")
    assert last_stage_in_log(log) == "register"
    log.write_text(log.read_text() + "=== reshoot batch: shot a started\n")
    assert last_stage_in_log(log) is None and last_stage_in_log(tmp_path / "none.log") is None


@pytest.fixture
def reshoot_main(monkeypatch):
    """``reshoot`` (reshoot_cli.main.main) with the batch command, registered or not yet."""
    from reshoot_cli import main
    from reshoot_cli.batch import BatchCommand

    monkeypatch.setitem(main.COMMANDS, "batch", main.COMMANDS.get("batch", BatchCommand))
    return main.main


def test_the_command_stops_on_a_bad_batch_file_before_ray_starts(tmp_path, reshoot_main, capsys):
    write(tmp_path / "shots.toml", '[[shot]]\nname = "a"\nconfig = "a.toml"\n')
    assert reshoot_main(["batch", str(tmp_path / "shots.toml")]) == 1
    assert "error: " in capsys.readouterr().err and not (tmp_path / "shots_summary.json").exists()


def test_without_ray_the_batch_says_how_to_install_it(tmp_path, monkeypatch):
    batch = load_batch(write(tmp_path / "shots.toml", '[[shot]]\nname = "a"\nsources = ["a.mov"]\n'))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'reshoot\[batch\]'"):
        run_batch(batch)


@pytest.fixture(scope="module")
def ray_module():
    return pytest.importorskip("ray", reason="reshoot batch needs Ray: pip install 'reshoot[batch]'")


@pytest.fixture(scope="module")
def small_shoot(tmp_path_factory):
    return make_sample_shoot(tmp_path_factory.mktemp("batch-shoot") / "shoot", PRESETS["small"])


def test_two_shots_on_a_local_ray_one_failing_then_run_again(tmp_path, ray_module, small_shoot, reshoot_main,
                                                             capsys):
    ray = ray_module
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sources = json.dumps([str(p) for p in small_shoot.videos.values()])
    write(tmp_path / "broken.mov", "not a video")
    write(tmp_path / "fast.toml", FAST_JOB + f'[register]\nsurvey = "{small_shoot.root / "survey"}"\n')
    batch = load_batch(write(tmp_path / "shots.toml", f'''
[defaults]
config = "fast.toml"
cpus = 1
[[shot]]
name = "good"
sources = {sources}
[[shot]]
name = "broken"
sources = ["broken.mov", "broken.mov"]
'''))
    assert reshoot_main(["batch", str(tmp_path / "shots.toml")]) == 1  # a shot failed
    assert not ray.is_initialized()  # the local Ray reshoot started is stopped
    captured = capsys.readouterr()
    assert "error: 1 of 2 shot(s) did not finish: broken" in captured.err
    assert "shot good: done" in captured.err and "shot broken: FAILED in ingest" in captured.err
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in captured.out.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["good"] == "done" and rows["broken"] == "failed", captured.out
    assert f"summary (JSON): {tmp_path / 'shots_summary.json'}" in captured.out
    assert "workspaces/good" in captured.out and "shots_logs/good.log" in captured.out  # beside the batch file

    summary = json.loads(batch.summary_file.read_text())
    good, broken = summary["shots"]
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 1, "cancelled": 0}
    assert good["state"] == "done" and [row["ran"] for row in good["stages"]] == [True] * 7
    assert good["workspace"] == str(tmp_path / "workspaces" / "good")
    assert len(list((tmp_path / "workspaces" / "good" / "export" / "png").glob("overhead.*.png"))) == 17
    assert broken["state"] == "failed" and broken["failed_stage"] == "ingest" and "broken.mov" in broken["error"]
    log = (tmp_path / "shots_logs" / "good.log").read_text()
    assert "[reshoot reconstruct] training 10/10 100.0%" in log and "[7/7] export" in log  # plain progress lines
    assert "=== shot broken failed in ingest" in (tmp_path / "shots_logs" / "broken.log").read_text()

    def stop(event, shot, outcome):
        raise KeyboardInterrupt  # Ctrl-C as the first shot is queued

    with pytest.raises(KeyboardInterrupt):
        run_batch(batch, on_event=stop)
    assert not ray.is_initialized()
    stopped = json.loads(batch.summary_file.read_text())
    assert [s["state"] for s in stopped["shots"]] == ["cancelled", "cancelled"]

    again = run_batch(batch, max_parallel=1)  # a re-run: the finished shot's stages are all up to date
    assert [o.state for o in again.outcomes] == ["skipped", "failed"]
    assert not any(row["ran"] for row in again.outcomes[0].stages) and not ray.is_initialized()
    assert json.loads(batch.summary_file.read_text())["counts"]["skipped"] == 1

    with pytest.raises(ValueError, match=r"shot 'good' takes 64 CPU\(s\) and 0 GPU\(s\), but no node"):
        run_batch(batch, cpus_per_shot=64)
    assert not ray.is_initialized()


@pytest.mark.slow
def test_a_batch_on_an_existing_cluster_leaves_it_running(tmp_path, ray_module, small_shoot, monkeypatch):
    """`ray start --head` (this test's own, on free ports), then a batch with its address: the shots run there and
    the cluster keeps running after it."""
    import signal
    import socket
    import subprocess
    import time

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the same for the head and this driver, whatever ~/.ray holds
    port = free_port()
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port",
                             str(port), "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                             "--ray-client-server-port", str(free_port())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(120):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        sources = json.dumps([str(p) for p in small_shoot.videos.values()])
        write(tmp_path / "fast.toml", FAST_JOB + f'[register]\nsurvey = "{small_shoot.root / "survey"}"\n')
        batch = load_batch(write(tmp_path / "shots.toml", f'[defaults]\nconfig = "fast.toml"\n[[shot]]\nname = "good"\n'
                                                          f'sources = {sources}\n'))
        result = run_batch(batch, address=f"127.0.0.1:{port}")
        assert [o.state for o in result.outcomes] == ["done"] and result.address == f"127.0.0.1:{port}"
        assert not ray_module.is_initialized() and head.poll() is None  # disconnected; the cluster runs on
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops the processes it started
        head.wait(60)
