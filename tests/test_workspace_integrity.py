"""A workspace nothing can corrupt: one writer at a time (a real second process is refused or waits), a status that
tells the truth (staleness through the whole chain, missing and changed outputs, interrupted runs, checkpoints),
and a kill -9 in the middle of every stage of a real job that leaves every published stage whole."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from reshoot import workspace as workspace_module
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.workspace import STAGES, StageError, Workspace, WorkspaceBusy


@dataclass(frozen=True)
class Config:
    value: int = 0


def _writer(payload: bytes = b"x", name: str = "out.bin"):
    def fn(ctx):
        (ctx.out_dir / name).write_bytes(payload)
        return {"bytes": len(payload)}
    return fn


def _chain(ws: Workspace, payload: bytes = b"one") -> None:
    """Four fake stages, each reading the one before: ingest -> register -> reconstruct -> path."""
    ws.run_stage("ingest", Config(), _writer(payload))
    ws.run_stage("register", Config(), _writer(), upstream=["ingest"])
    ws.run_stage("reconstruct", Config(), _writer(), upstream=["ingest", "register"])
    ws.run_stage("path", Config(), _writer(), upstream=["register"])


def _states(ws: Workspace, verify: bool = False) -> dict[str, dict]:
    return {row["stage"]: row for row in ws.status(verify=verify)}


HOLD = textwrap.dedent("""
    import sys, time
    from reshoot.workspace import Workspace
    with Workspace(sys.argv[1]).writing():
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _holder(root: Path, seconds: float) -> subprocess.Popen:
    """A real second process that holds the workspace's writer lock for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


# ---- the lock ---------------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_never_blocks(tmp_path):
    ws = Workspace(tmp_path / "ws")
    holder = _holder(ws.root, 60)
    try:
        with pytest.raises(WorkspaceBusy) as caught:
            ws.run_stage("ingest", Config(), _writer())
        message = str(caught.value)
        assert f"reshoot process {holder.pid}" in message and "started" in message and "--wait" in message
        assert "-c" in message  # the holder's command line
        assert ws.manifest("ingest") is None and not list((ws.root / ".reshoot" / "tmp").glob("ingest-*"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kill released the OS lock: the next writer goes straight on
    start = time.perf_counter()
    assert not ws.run_stage("ingest", Config(), _writer()).skipped
    assert time.perf_counter() - start < 5


def test_wait_queues_behind_the_holder_then_runs(tmp_path):
    Workspace(tmp_path / "ws")
    holder = _holder(tmp_path / "ws", 2.0)
    start = time.perf_counter()
    result = Workspace(tmp_path / "ws", wait=True).run_stage("ingest", Config(), _writer())
    waited = time.perf_counter() - start
    holder.wait()
    assert not result.skipped and waited > 1.0
    assert _states(Workspace(tmp_path / "ws"))["ingest"]["state"] == "complete"


def test_the_lock_is_reentrant_in_a_process_and_released_after(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.writing():
        with ws.writing():  # run_job holds it around stages that take it again
            ws.run_stage("ingest", Config(), _writer())
        assert not ws._locked_by_other()
    probe = subprocess.run([sys.executable, "-c", HOLD, str(ws.root), "0"], capture_output=True, text=True)
    assert probe.returncode == 0 and "holding" in probe.stdout  # released: another process takes it at once


def test_only_dead_owners_scratch_folders_are_cleared(tmp_path):
    ws = Workspace(tmp_path / "ws")
    tmp = ws.root / ".reshoot" / "tmp"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp / f"ingest-{dead.pid}-deadbeef").mkdir(parents=True)
    (tmp / f"ingest-{os.getppid()}-0a0a0a0a").mkdir()  # a live process's (here: our parent's)
    (tmp / "ingest-1234abcd").mkdir()  # an older reshoot's name, without a pid
    ws.run_stage("ingest", Config(), _writer())
    left = sorted(p.name for p in tmp.iterdir())
    assert left == [f"ingest-{os.getppid()}-0a0a0a0a"]


# ---- status -----------------------------------------------------------------------------------------------


def test_staleness_runs_through_the_whole_chain(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _chain(ws)
    assert all(_states(ws)[s]["state"] == "complete" for s in ("ingest", "register", "reconstruct", "path"))
    result = ws.run_stage("ingest", Config(1), _writer(b"two"))
    states = _states(ws)
    assert states["register"]["stale_because"] == ["ingest changed"]
    assert states["reconstruct"]["stale_because"] == ["ingest changed", "register is stale"]
    assert states["path"]["state"] == "stale" and states["path"]["stale_because"] == ["register is stale"]
    assert "register, reconstruct, path are now out of date" in " ".join(result.notes)
    # a stage refuses to run on a stale stage (it would mix two shoots), saying what to re-run
    with pytest.raises(StageError, match=r"needs stage 'register', which is out of date .*ingest changed.*reshoot "
                                         r"register"):
        ws.run_stage("path", Config(5), _writer(), upstream=["register"])
    ws.run_stage("register", Config(), _writer(), upstream=["ingest"])
    states = _states(ws)
    assert states["register"]["state"] == "complete" and states["path"]["state"] == "complete"
    # register made the same files again (path need not re-run); reconstruct also read ingest itself
    assert states["reconstruct"]["stale_because"] == ["ingest changed"]


def test_missing_and_changed_outputs_are_broken_and_never_skipped(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _chain(ws)
    (ws.stage_dir("register") / "out.bin").unlink()
    states = _states(ws)
    assert states["register"]["state"] == "broken" and states["register"]["missing_files"] == ["out.bin"]
    assert states["reconstruct"]["stale_because"] == ["register is broken"]
    with pytest.raises(StageError, match=r"needs stage 'register', whose outputs are missing .*out.bin.*run it again first: .reshoot register"):
        ws.run_stage("path", Config(7), _writer(), upstream=["register"])
    # the same stage asked again re-runs rather than skipping a folder with holes
    assert not ws.run_stage("register", Config(), _writer(), upstream=["ingest"]).skipped
    assert _states(ws)["register"]["state"] == "complete"
    (ws.stage_dir("path") / "out.bin").write_bytes(b"edited by hand")
    assert _states(ws)["path"]["state"] == "complete"  # same file present: only --verify hashes
    verified = _states(ws, verify=True)["path"]
    assert verified["state"] == "broken" and verified["changed_files"] == ["out.bin"]


def test_source_footage_changed_or_unplugged(tmp_path):
    ws = Workspace(tmp_path / "ws")
    source = tmp_path / "cam0.mov"
    source.write_bytes(b"take one")
    ws.run_stage("ingest", Config(), _writer(), inputs=[source])
    ws.run_stage("register", Config(), _writer(), upstream=["ingest"])
    source.write_bytes(b"take two, longer")
    states = _states(ws)
    assert states["ingest"]["stale_because"] == [f"source {source} changed"]
    assert states["register"]["stale_because"] == ["ingest is stale"]
    source.unlink()  # the card went back to the camera: what ingest made from it still stands
    states = _states(ws)
    assert states["ingest"]["state"] == "complete" and "not reachable" in states["ingest"]["notes"][0]
    other = tmp_path / "cam9.mov"
    other.write_bytes(b"another shoot")
    result = ws.run_stage("ingest", Config(), _writer(b"other frames"), inputs=[other])
    assert "these sources replace the ones it read before (cam0.mov)" in result.notes[0]
    assert "register is now out of date" in result.notes[1]


def test_interrupted_runs_and_checkpoints_are_shown_and_ctrl_c_keeps_the_checkpoint(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _chain(ws)

    def stopped(ctx):
        (ctx.scratch_dir / "checkpoint.pt").write_bytes(b"step 40")
        (ctx.out_dir / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ws.run_stage("guide", Config(), stopped, upstream=["reconstruct", "path"])
    assert workspace_module.last_interrupted == {"stage": "guide", "workspace": str(ws.root),
                                                  "kept": [".reshoot/scratch/guide/checkpoint.pt"]}
    row = _states(ws)["guide"]
    assert row["state"] == "missing" and row["resume"] == [".reshoot/scratch/guide/checkpoint.pt"]
    assert not list((ws.root / ".reshoot" / "tmp").glob("guide-*"))
    # a kill -9 leaves its temporary folder: shown as interrupted, cleared by the next run
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws.root / ".reshoot" / "tmp" / f"guide-{dead.pid}-feedface").mkdir()
    assert _states(ws)["guide"]["interrupted"] is True


def test_checkpoints_a_run_set_aside_are_kept_not_resumed_from(tmp_path):
    ws = Workspace(tmp_path / "ws")

    def sets_aside(ctx):
        (ctx.scratch_dir / "checkpoint.pt.corrupt").write_bytes(b"half a zip")
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        ws.run_stage("ingest", Config(), sets_aside)
    assert "resume" not in _states(ws)["ingest"]
    ws.run_stage("ingest", Config(), _writer())  # success clears the scratch folder, not what was set aside
    assert (ws.root / ".reshoot" / "set-aside" / "ingest" / "checkpoint.pt.corrupt").read_bytes() == b"half a zip"


def test_a_full_disk_names_the_stage_and_the_path(tmp_path):
    ws = Workspace(tmp_path / "ws")

    def full(ctx):
        raise OSError(errno.ENOSPC, "No space left on device", str(ctx.out_dir / "rgb" / "000003.png"))

    with pytest.raises(OSError) as caught:
        ws.run_stage("ingest", Config(), full)
    assert str(caught.value) == (f"stage 'ingest': cannot write {ws.root / 'ingest' / 'rgb' / '000003.png'}: the disk "
                                 "is full; nothing of it was published. Free space on that disk, or use a --workspace "
                                 "on another disk, then run it again")
    assert caught.value.errno == errno.ENOSPC and not list((ws.root / ".reshoot" / "tmp").iterdir())


# ---- real processes on a real job -------------------------------------------------------------------------


def _cli(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {"RESHOOT_QUIET": "1", "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("RESHOOT_KERNELS")})
    return subprocess.Popen([sys.executable, "-m", "reshoot_cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, **kwargs)


def _wait_for_stage(ws_root: Path, stage: str, proc: subprocess.Popen, timeout: float = 240) -> bool:
    """Wait until ``stage`` is being written (its temporary folder exists); False if it finished unseen."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if list((ws_root / ".reshoot" / "tmp").glob(f"{stage}-*")):
            return True
        if (ws_root / stage / "manifest.json").is_file() or proc.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"{stage} did not start within {timeout} s")


def _assert_whole(ws: Workspace) -> None:
    """Every published stage has every output its manifest lists, byte for byte."""
    for row in ws.status(verify=True):
        assert row["state"] in ("complete", "missing"), row


def test_kill_9_in_every_stage_of_a_real_job_leaves_the_workspace_whole_and_a_rerun_finishes(tmp_path):
    shoot = make_sample_shoot(tmp_path / "shoot", PRESETS["small"])
    (tmp_path / "job.json").write_text(json.dumps({
        "sources": [str(p) for p in shoot.videos.values()], "workspace": "ws",
        "ingest": {"sync": "timecode"}, "register": {"survey": str(shoot.root / "survey")},
        "reconstruct": {"steps": 150, "sh_degree": 0, "dynamic_per_instant": 200},
        "guide": {"confidence": False}, "export": {"formats": ["png", "mp4"]}}))
    ws_root = tmp_path / "ws"
    caught = []
    for stage in STAGES:
        job = _cli("run", "--config", str(tmp_path / "job.json"), cwd=tmp_path)
        try:
            if _wait_for_stage(ws_root, stage, job):
                caught.append(stage)
                if stage == "reconstruct":  # a second writer meanwhile is refused at once, naming the job
                    other = _cli("guide", "--workspace", str(ws_root), cwd=tmp_path)
                    _, err = other.communicate(timeout=120)
                    assert other.returncode == 1 and f"reshoot process {job.pid}" in " ".join(err.split())
                    assert "Traceback" not in err
                    time.sleep(3)  # into training: a checkpoint may be written
                job.send_signal(signal.SIGKILL)
        finally:
            job.kill()
            job.wait()
        ws = Workspace(ws_root)
        _assert_whole(ws)
        done = STAGES[:STAGES.index(stage)]
        assert all(row["state"] == "complete" for row in ws.status() if row["stage"] in done)
    assert {"ingest", "register", "reconstruct"} <= set(caught)
    final = _cli("run", "--config", str(tmp_path / "job.json"), cwd=tmp_path)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err[-2000:]
    ws = Workspace(ws_root)
    _assert_whole(ws)
    assert all(row["state"] == "complete" for row in ws.status())
    assert len(list((ws_root / "export" / "png").glob("overhead.*.png"))) == 17
    status = _cli("status", "--workspace", str(ws_root), "--verify", cwd=tmp_path)
    out, _ = status.communicate(timeout=120)
    assert status.returncode == 0 and out.count("complete") == len(STAGES)


def test_ctrl_c_ends_with_one_line_saying_what_was_kept(tmp_path):
    shoot = make_sample_shoot(tmp_path / "shoot", PRESETS["small"])
    ws_root = tmp_path / "ws"
    ingest = _cli("ingest", *map(str, shoot.videos.values()), "--workspace", str(ws_root), "--sync", "timecode",
                  cwd=tmp_path)
    assert ingest.wait(timeout=300) == 0
    register = _cli("register", "--workspace", str(ws_root), "--survey", str(shoot.root / "survey"), cwd=tmp_path)
    assert register.wait(timeout=300) == 0
    train = _cli("reconstruct", "--workspace", str(ws_root), "--steps", "2000", "--sh-degree", "0", cwd=tmp_path)
    assert _wait_for_stage(ws_root, "reconstruct", train)
    scratch = ws_root / ".reshoot" / "scratch" / "reconstruct"
    end = time.monotonic() + 240
    while not (scratch / "checkpoint.pt").is_file() and time.monotonic() < end and train.poll() is None:
        time.sleep(0.1)
    train.send_signal(signal.SIGINT)
    _, err = train.communicate(timeout=120)
    text = " ".join(err.split())
    assert train.returncode == 130 and "Traceback" not in err
    assert "interrupted: reconstruct was stopped before it finished" in text
    assert "checkpoint is kept (.reshoot/scratch/reconstruct/checkpoint.pt)" in text
    assert Workspace(ws_root).status()[2]["resume"] == [".reshoot/scratch/reconstruct/checkpoint.pt"]
