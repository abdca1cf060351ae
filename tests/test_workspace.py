"""Tests for reshoot.workspace (run_stage, manifests, status) and reshoot.atomic."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from reshoot import atomic
from reshoot.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, replace_dir
from reshoot.workspace import STAGES, StageError, Workspace, config_to_json


# ---- helpers ------------------------------------------------------------------------------------


@dataclass
class Config:
    frames: int = 3
    footage: Path | None = None
    extra: tuple = ()
    options: dict = field(default_factory=dict)


class Recorder:
    """A stage function that writes files derived from its config and counts its calls."""

    def __init__(self, payload: bytes = b"result", fail_after_partial: bool = False):
        self.calls = 0
        self.payload = payload
        self.fail_after_partial = fail_after_partial
        self.contexts = []

    def __call__(self, ctx):
        self.calls += 1
        self.contexts.append(ctx)
        with ctx.timer("write"):
            (ctx.out_dir / "result.bin").write_bytes(self.payload)
            (ctx.out_dir / "sub").mkdir()
            (ctx.out_dir / "sub" / "frames.json").write_text(json.dumps({"frames": ctx.config.frames}))
        with ctx.timer("checkpoint"):
            (ctx.scratch_dir / "ckpt.txt").write_text(f"call {self.calls}")
        if self.fail_after_partial:
            (ctx.out_dir / "partial.bin").write_bytes(b"half")
            raise RuntimeError("boom part-way")
        return {"frames": ctx.config.frames, "n_files": 2}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def footage(tmp_path: Path) -> Path:
    path = tmp_path / "footage" / "cam0.mp4"
    path.parent.mkdir()
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


# ---- workspace basics ---------------------------------------------------------------------------


def test_workspace_creates_folder_and_info(tmp_path):
    ws = Workspace(tmp_path / "a" / "b")
    info = json.loads((tmp_path / "a" / "b" / "workspace.json").read_text())
    assert info["reshoot_workspace"] == 1 and "created_at" in info
    assert ws.root == (tmp_path / "a" / "b").resolve()
    # re-opening does not rewrite workspace.json
    before = (ws.root / "workspace.json").read_bytes()
    Workspace(tmp_path / "a" / "b")
    assert (ws.root / "workspace.json").read_bytes() == before


def test_workspace_on_a_file_raises(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StageError, match="is a file"):
        Workspace(tmp_path / "f")


# ---- run / skip / re-run ------------------------------------------------------------------------


def test_runs_once_then_skips(ws, footage):
    fn = Recorder()
    first = ws.run_stage("ingest", Config(), fn, inputs=[footage])
    assert not first.skipped and fn.calls == 1
    assert first.path == ws.root / "ingest"
    second = ws.run_stage("ingest", Config(), fn, inputs=[footage])
    assert second.skipped and fn.calls == 1
    assert second.manifest == first.manifest
    assert second.manifest == json.loads((ws.root / "ingest" / "manifest.json").read_text())


def test_reruns_when_config_changes(ws, footage):
    fn = Recorder()
    ws.run_stage("ingest", Config(frames=3), fn, inputs=[footage])
    res = ws.run_stage("ingest", Config(frames=4), fn, inputs=[footage])
    assert not res.skipped and fn.calls == 2
    assert json.loads((ws.root / "ingest" / "sub" / "frames.json").read_text()) == {"frames": 4}
    assert res.manifest["config"]["frames"] == 4
    assert ws.run_stage("ingest", Config(frames=4), fn, inputs=[footage]).skipped


def test_reruns_when_version_changes(ws):
    fn = Recorder()
    ws.run_stage("ingest", Config(), fn, version=1)
    assert not ws.run_stage("ingest", Config(), fn, version=2).skipped
    assert fn.calls == 2


def test_reruns_when_input_content_changes(ws, footage):
    fn = Recorder()
    first = ws.run_stage("ingest", Config(), fn, inputs=[footage])
    footage.write_bytes(b"a different take")  # different size
    res = ws.run_stage("ingest", Config(), fn, inputs=[footage])
    assert not res.skipped and fn.calls == 2
    key = str(footage.resolve())
    assert res.manifest["inputs"][key] == sha(b"a different take") != first.manifest["inputs"][key]


def test_reruns_when_input_changes_with_same_size(ws, footage):
    fn = Recorder()
    ws.run_stage("ingest", Config(), fn, inputs=[footage])
    st = footage.stat()
    new = bytes(b ^ 0xFF for b in footage.read_bytes())
    footage.write_bytes(new)
    # make sure the modification time differs even on a coarse-clock file system
    os.utime(footage, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    res = ws.run_stage("ingest", Config(), fn, inputs=[footage])
    assert not res.skipped and fn.calls == 2
    assert res.manifest["inputs"][str(footage.resolve())] == sha(new)


def test_reruns_when_forced(ws, footage):
    fn = Recorder()
    first = ws.run_stage("ingest", Config(), fn, inputs=[footage])
    res = ws.run_stage("ingest", Config(), fn, inputs=[footage], force=True)
    assert not res.skipped and fn.calls == 2
    assert res.manifest["fingerprint"] == first.manifest["fingerprint"]
    assert ws.run_stage("ingest", Config(), fn, inputs=[footage]).skipped and fn.calls == 2


def test_reruns_when_an_output_file_is_missing(ws):
    fn = Recorder()
    ws.run_stage("ingest", Config(), fn)
    (ws.root / "ingest" / "sub" / "frames.json").unlink()
    assert not ws.run_stage("ingest", Config(), fn).skipped
    assert (ws.root / "ingest" / "sub" / "frames.json").is_file()


def test_reruns_when_upstream_outputs_change(ws):
    up_fn, down_fn = Recorder(b"v1"), Recorder()
    ws.run_stage("ingest", Config(), up_fn)
    first = ws.run_stage("register", Config(), down_fn, upstream=["ingest"])
    assert not first.skipped
    assert first.manifest["upstream"] == {"ingest": ws.manifest("ingest")["outputs_digest"]}
    assert ws.run_stage("register", Config(), down_fn, upstream=["ingest"]).skipped
    # upstream re-runs but writes the same outputs: downstream stays up to date
    ws.run_stage("ingest", Config(), up_fn, force=True)
    assert ws.run_stage("register", Config(), down_fn, upstream=["ingest"]).skipped and down_fn.calls == 1
    # upstream writes different outputs: downstream re-runs
    up_fn.payload = b"v2"
    ws.run_stage("ingest", Config(), up_fn, force=True)
    res = ws.run_stage("register", Config(), down_fn, upstream=["ingest"])
    assert not res.skipped and down_fn.calls == 2
    assert res.manifest["upstream"]["ingest"] == ws.manifest("ingest")["outputs_digest"]
    assert res.manifest["upstream"]["ingest"] != first.manifest["upstream"]["ingest"]


# ---- manifest contents --------------------------------------------------------------------------


def test_manifest_contents(ws, footage, tmp_path):
    outside = tmp_path / "elsewhere" / "x.txt"
    inside = ws.root / "footage" / "cam1.mp4"
    config = Config(frames=5, footage=inside, extra=(outside, 2), options={"p": ws.root / "register" / "a.json"})
    fn = Recorder(b"payload-bytes")
    res = ws.run_stage("register", config, fn, inputs=[footage], version=3)
    m = res.manifest
    assert m["stage"] == "register" and m["status"] == "complete" and m["version"] == 3
    # config: paths inside the workspace are workspace-relative, others absolute
    assert m["config"] == {"frames": 5, "footage": "footage/cam1.mp4", "extra": [str(outside.resolve()), 2],
                           "options": {"p": "register/a.json"}}
    assert m["inputs"] == {str(footage.resolve()): sha(footage.read_bytes())}
    assert m["upstream"] == {}
    # outputs: every file the stage wrote, with its sha256; the manifest itself is not listed
    assert m["outputs"] == {"result.bin": sha(b"payload-bytes"), "sub/frames.json": sha(b'{"frames": 5}')}
    assert set(tree(res.path)) == {"result.bin", "sub/frames.json", "manifest.json"}
    assert m["summary"] == {"frames": 5, "n_files": 2}
    # timings: total and each timer step, non-negative, steps within total
    t = m["timings_s"]
    assert set(t) == {"total", "write", "checkpoint"}
    assert all(v >= 0 for v in t.values()) and t["write"] + t["checkpoint"] <= t["total"] + 1e-3
    # versions
    assert m["versions"]["python"] == platform.python_version()
    assert m["versions"]["numpy"] == np.__version__
    started, finished = datetime.fromisoformat(m["started_at"]), datetime.fromisoformat(m["finished_at"])
    assert started.tzinfo is not None and started <= finished
    assert len(m["fingerprint"]) == 64 and len(m["outputs_digest"]) == 64
    assert json.loads((res.path / "manifest.json").read_text()) == m
    assert ws.manifest("register") == m


def test_summary_defaults_to_empty_dict(ws):
    res = ws.run_stage("ingest", {"a": 1}, lambda ctx: None)
    assert res.manifest["summary"] == {} and res.manifest["outputs"] == {}
    assert res.manifest["config"] == {"a": 1}


def test_config_to_json_without_workspace(tmp_path):
    assert config_to_json(Config(footage=tmp_path / "f")) == {
        "frames": 3, "footage": str(tmp_path / "f"), "extra": [], "options": {}}


def test_stage_context_paths(ws):
    fn = Recorder()
    ws.run_stage("register", Config(), fn)
    ctx = fn.contexts[0]
    assert ctx.name == "register" and ctx.workspace is ws
    assert ctx.out_dir.parent == ws.root / ".reshoot" / "tmp"
    assert ctx.scratch_dir == ws.root / ".reshoot" / "scratch" / "register"


# ---- failures -----------------------------------------------------------------------------------


def test_failure_without_previous_run_leaves_no_stage_folder(ws):
    fn = Recorder(fail_after_partial=True)
    with pytest.raises(RuntimeError, match="boom"):
        ws.run_stage("ingest", Config(), fn)
    assert not (ws.root / "ingest").exists()
    assert ws.manifest("ingest") is None
    assert list((ws.root / ".reshoot" / "tmp").iterdir()) == []
    scratch = ws.root / ".reshoot" / "scratch" / "ingest"
    assert (scratch / "ckpt.txt").read_text() == "call 1"
    assert ws.status()[0] == {"stage": "ingest", "state": "missing", "resume": [".reshoot/scratch/ingest/ckpt.txt"]}


def test_failure_keeps_previous_complete_folder(ws, footage):
    good = Recorder(b"good")
    ws.run_stage("ingest", Config(frames=1), good, inputs=[footage])
    before = tree(ws.root / "ingest")
    bad = Recorder(b"bad", fail_after_partial=True)
    with pytest.raises(RuntimeError, match="boom"):
        ws.run_stage("ingest", Config(frames=2), bad, inputs=[footage])
    assert tree(ws.root / "ingest") == before
    assert list((ws.root / ".reshoot" / "tmp").iterdir()) == []
    assert (ws.root / ".reshoot" / "scratch" / "ingest" / "ckpt.txt").is_file()
    # the old result is still valid for the old config
    assert ws.run_stage("ingest", Config(frames=1), good, inputs=[footage]).skipped


def test_scratch_survives_failure_for_resume_and_is_removed_on_success(ws):
    seen = []

    def stage(ctx):
        ckpt = ctx.scratch_dir / "step1.npy"
        seen.append(ckpt.is_file())
        if not ckpt.is_file():
            np.save(ckpt, np.arange(3))
            raise KeyboardInterrupt  # a kill part-way
        (ctx.out_dir / "out.npy").write_bytes(ckpt.read_bytes())
        return {}

    with pytest.raises(KeyboardInterrupt):
        ws.run_stage("reconstruct", Config(), stage)
    assert not (ws.root / "reconstruct").exists()
    res = ws.run_stage("reconstruct", Config(), stage)
    assert seen == [False, True] and not res.skipped
    np.testing.assert_array_equal(np.load(res.path / "out.npy"), np.arange(3))
    assert not (ws.root / ".reshoot" / "scratch" / "reconstruct").exists()
    assert list((ws.root / ".reshoot" / "tmp").iterdir()) == []


def test_non_json_summary_fails_cleanly(ws):
    with pytest.raises(TypeError):
        ws.run_stage("ingest", Config(), lambda ctx: {"bad": object()})
    assert not (ws.root / "ingest").exists()
    assert list((ws.root / ".reshoot" / "tmp").iterdir()) == []


# ---- refused inputs and stages ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["ingest", "register", ".reshoot"])
def test_input_inside_a_managed_folder_is_refused(ws, where):
    bad = ws.root / where / "clip.mp4"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"x")
    fn = Recorder()
    with pytest.raises(StageError, match="inside the workspace"):
        ws.run_stage("register", Config(), fn, inputs=[bad])
    assert fn.calls == 0


def test_input_in_workspace_footage_folder_is_allowed(ws):
    clip = ws.root / "footage" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"frames")
    res = ws.run_stage("register", Config(), Recorder(), inputs=[clip])
    assert res.manifest["inputs"] == {str(clip): sha(b"frames")}


def test_missing_input_names_the_file(ws, tmp_path):
    fn = Recorder()
    with pytest.raises(StageError, match="no_such_clip.mp4.*does not exist"):
        ws.run_stage("register", Config(), fn, inputs=[tmp_path / "no_such_clip.mp4"])
    assert fn.calls == 0


def test_an_image_sequence_folder_is_an_input_fingerprinted_by_content(ws, tmp_path):
    frames = tmp_path / "cam_a"
    frames.mkdir()
    for k in range(3):
        (frames / f"{k:04d}.png").write_bytes(bytes([k]) * 10)
    fn = Recorder()
    first = ws.run_stage("ingest", Config(), fn, inputs=[frames])
    assert ws.run_stage("ingest", Config(), fn, inputs=[frames]).skipped
    (frames / "0001.png").write_bytes(b"changed!!!")
    changed = ws.run_stage("ingest", Config(), fn, inputs=[frames])
    assert not changed.skipped and fn.calls == 2
    assert changed.manifest["inputs"][str(frames)] != first.manifest["inputs"][str(frames)]
    (frames / "0003.png").write_bytes(b"x")  # a new frame counts too
    assert not ws.run_stage("ingest", Config(), fn, inputs=[frames]).skipped


def test_scratch_is_kept_only_for_the_same_job_and_force_clears_it(ws):
    seen = []

    def stage(ctx):
        seen.append(sorted(p.name for p in ctx.scratch_dir.iterdir() if p.name != ".fingerprint"))
        (ctx.scratch_dir / "ckpt").write_text("x")
        raise KeyboardInterrupt

    for config, force in ((Config(frames=1), False), (Config(frames=1), False), (Config(frames=2), False),
                          (Config(frames=2), True)):
        with pytest.raises(KeyboardInterrupt):
            ws.run_stage("reconstruct", config, stage, force=force)
    assert seen == [[], ["ckpt"], [], []]


def test_leftovers_of_a_killed_run_are_cleared_by_the_next(ws):
    (ws.root / ".reshoot" / "tmp" / "ingest-deadbeef").mkdir(parents=True)
    (ws.root / ".reshoot" / "trash" / "ingest-cafef00d").mkdir(parents=True)
    ws.run_stage("ingest", Config(), Recorder())
    assert list((ws.root / ".reshoot" / "tmp").iterdir()) == []
    assert list((ws.root / ".reshoot" / "trash").iterdir()) == []


def test_missing_upstream_names_both_stages(ws):
    fn = Recorder()
    with pytest.raises(StageError) as err:
        ws.run_stage("reconstruct", Config(), fn, upstream=["register"])
    assert "'reconstruct'" in str(err.value) and "'register'" in str(err.value)
    assert fn.calls == 0 and not (ws.root / "reconstruct").exists()


def test_unknown_stage_raises(ws):
    fn = Recorder()
    with pytest.raises(StageError, match="unknown stage 'bogus'"):
        ws.run_stage("bogus", Config(), fn)
    with pytest.raises(StageError, match="unknown stage 'nope'"):
        ws.run_stage("ingest", Config(), fn, upstream=["nope"])
    with pytest.raises(StageError, match="unknown stage"):
        ws.stage_dir("..")
    assert fn.calls == 0


def test_invalid_manifest_json_raises_stage_error(ws):
    ws.run_stage("ingest", Config(), Recorder())
    (ws.root / "ingest" / "manifest.json").write_text("{not json")
    with pytest.raises(StageError, match="--force"):
        ws.manifest("ingest")


# ---- source footage is read only ----------------------------------------------------------------


def test_source_footage_never_modified(ws, footage):
    data, st = footage.read_bytes(), footage.stat()
    fn = Recorder()
    ws.run_stage("register", Config(), fn, inputs=[footage])
    ws.run_stage("register", Config(), fn, inputs=[footage])
    ws.run_stage("register", Config(), fn, inputs=[footage], force=True)
    ws.run_stage("register", Config(frames=9), fn, inputs=[footage])
    assert fn.calls == 3
    after = footage.stat()
    assert footage.read_bytes() == data
    assert after.st_mtime_ns == st.st_mtime_ns and after.st_size == st.st_size and after.st_ino == st.st_ino
    assert sorted(p.name for p in footage.parent.iterdir()) == ["cam0.mp4"]


# ---- status -------------------------------------------------------------------------------------


def test_status_missing_complete_stale(ws):
    rows = ws.status()
    assert [r["stage"] for r in rows] == list(STAGES)
    assert all(r == {"stage": r["stage"], "state": "missing"} for r in rows)

    up = Recorder(b"one")
    ws.run_stage("ingest", Config(), up)
    ws.run_stage("register", Config(), Recorder(), upstream=["ingest"])
    state = {r["stage"]: r for r in ws.status()}
    assert state["ingest"]["state"] == "complete" and state["register"]["state"] == "complete"
    assert state["register"]["stale_because"] == []
    assert state["register"]["finished_at"] == ws.manifest("register")["finished_at"]
    assert state["register"]["total_s"] == ws.manifest("register")["timings_s"]["total"]
    assert all(state[s]["state"] == "missing" for s in STAGES[2:])

    up.payload = b"two"
    ws.run_stage("ingest", Config(), up, force=True)
    state = {r["stage"]: r for r in ws.status()}
    assert state["ingest"]["state"] == "complete"
    assert state["register"]["state"] == "stale" and state["register"]["stale_because"] == ["ingest changed"]

    ws.run_stage("register", Config(), Recorder(), upstream=["ingest"])
    assert {r["stage"]: r["state"] for r in ws.status()}["register"] == "complete"


# ---- atomic -------------------------------------------------------------------------------------


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_json_leaves_no_temp_files(tmp_path):
    target = tmp_path / "d" / "data.json"
    atomic_write_json(target, {"a": [1, 2.5], "b": "x"})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert target.read_text().endswith("\n")
    assert [p.name for p in target.parent.iterdir()] == ["data.json"]


def test_atomic_write_text_and_bytes(tmp_path):
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode()
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "t.txt"]


def test_atomic_write_failure_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "data.json"
    atomic_write_json(target, {"old": True})

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(target, {"new": True})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_replace_dir_replaces_existing_folder(tmp_path):
    final, new, trash = tmp_path / "stage", tmp_path / "new", tmp_path / "trash"
    final.mkdir()
    (final / "old.txt").write_text("old")
    (final / "shared.txt").write_text("old")
    new.mkdir()
    (new / "shared.txt").write_text("new")
    (new / "fresh.txt").write_text("fresh")
    replace_dir(new, final, trash)
    assert tree(final) == {"fresh.txt": b"fresh", "shared.txt": b"new"}
    assert not new.exists()
    assert list(trash.iterdir()) == []


def test_replace_dir_into_missing_folder(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "a").write_text("a")
    replace_dir(new, tmp_path / "x" / "stage", tmp_path / "trash")
    assert tree(tmp_path / "x" / "stage") == {"a": b"a"}
    assert not new.exists() and not (tmp_path / "trash").exists()
