"""reshoot.progress: rich bars on a terminal, plain lines a render manager follows, JSON lines for tools, or nothing."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reshoot import progress
from reshoot.progress import PLAIN_LINE, StepProgress, progress_mode, progress_stage, track
from reshoot.workspace import Workspace
from reshoot_cli import main as cli

DOCS = Path(__file__).resolve().parents[1] / "docs"
RESHOOT = Path(sys.executable).parent / "reshoot"
#: What docs/farm.md gives a render manager: the percent of the step going on.
RENDER_MANAGER_REGEX = r"^\[reshoot.*\] .* ([0-9]+\.[0-9])% elapsed"
JSON_FIELDS = {"event", "stage", "step", "done", "total", "percent", "elapsed_s", "eta_s", "figures"}


@pytest.fixture
def mode(monkeypatch):
    """Choose the progress mode (and the interval) as a user would, with the environment."""
    for name in ("RESHOOT_QUIET", "RESHOOT_PROGRESS", "RESHOOT_PROGRESS_INTERVAL"):
        monkeypatch.delenv(name, raising=False)

    def choose(name: str, interval_s: float | str | None = None) -> None:
        monkeypatch.setenv("RESHOOT_PROGRESS", name)
        if interval_s is not None:
            monkeypatch.setenv("RESHOOT_PROGRESS_INTERVAL", str(interval_s))
    return choose


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves: ``clock[0]`` is now, in seconds."""
    now = [0.0]
    monkeypatch.setattr(progress, "_clock", lambda: now[0])
    return now


def test_plain_lines_come_first_then_at_most_one_per_interval_then_last(mode, clock, capsys):
    mode("plain", interval_s=10)
    for _ in track(range(100), "rendering frames"):
        clock[0] += 1.0  # a second an item
    lines = capsys.readouterr().err.splitlines()
    fields = [PLAIN_LINE.match(line).groupdict() for line in lines]
    assert [int(f["done"]) for f in fields] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert lines[0] == "[reshoot] rendering frames 0/100 0.0% elapsed 0:00:00 eta ?"
    assert lines[1] == "[reshoot] rendering frames 10/100 10.0% elapsed 0:00:10 eta 0:01:30"
    assert lines[-1] == "[reshoot] rendering frames 100/100 100.0% elapsed 0:01:40 eta 0:00:00"


def test_plain_lines_carry_the_stage_and_the_figures_and_a_render_manager_reads_the_percent(mode, clock, capsys):
    mode("plain", interval_s=0)
    with progress_stage("reconstruct"), StepProgress("training", total=4, completed=1) as bar:
        for step in range(3):
            clock[0] += 2.0
            bar.update(1, loss=0.021087 / (step + 1), psnr=31.4512, gaussians=5210 + step)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[reshoot reconstruct] training 1/4 25.0% elapsed 0:00:00 eta ?"
    assert lines[1] == ("[reshoot reconstruct] training 2/4 50.0% elapsed 0:00:02 eta 0:00:04 "
                        "loss=0.02109 psnr=31.45 gaussians=5210")
    fields = PLAIN_LINE.match(lines[-1]).groupdict()
    assert fields == {"stage": "reconstruct", "step": "training", "done": "4", "total": "4", "percent": "100.0",
                      "elapsed": "0:00:06", "eta": "0:00:00", "figures": " loss=0.007029 psnr=31.45 gaussians=5212"}
    percents = [re.search(RENDER_MANAGER_REGEX, line).group(1) for line in lines]
    assert percents == ["25.0", "50.0", "75.0", "100.0"]


def test_a_step_with_spaces_quotes_and_no_known_total_still_matches(mode, clock, capsys):
    mode("plain", interval_s=0)
    for _ in track(iter(range(2)), "guide frames of 'over head'\n(v2)"):
        clock[0] += 1.0
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == "[reshoot] guide frames of 'over head' (v2) 2/? ?% elapsed 0:00:02 eta ?"
    assert all(PLAIN_LINE.match(line) for line in lines)


def test_json_lines_parse_and_carry_every_field(mode, clock, capsys):
    mode("json", interval_s=5)
    with progress_stage("refine"), StepProgress("refining 'overhead' (classical)", total=1) as bar:
        bar.set_total(12)
        for _ in range(12):
            clock[0] += 1.0
            bar.update(1, change=float("nan"), windows=2)
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert all(set(e) == JSON_FIELDS for e in events)
    assert [e["event"] for e in events] == ["start", "progress", "progress", "end"]
    assert [e["done"] for e in events] == [0, 5, 10, 12]
    assert events[0] == {"event": "start", "stage": "refine", "step": "refining 'overhead' (classical)", "done": 0,
                         "total": 1, "percent": 0.0, "elapsed_s": 0.0, "eta_s": None, "figures": {}}
    assert events[1]["total"] == 12 and events[1]["percent"] == pytest.approx(41.67)
    assert events[1]["elapsed_s"] == 5.0 and events[1]["eta_s"] == 7.0
    assert events[-1]["figures"] == {"change": None, "windows": 2}  # NaN is not JSON: null
    assert events[-1]["percent"] == 100.0 and events[-1]["eta_s"] == 0.0


def test_off_and_quiet_print_nothing_and_an_explicit_mode_beats_quiet(mode, capsys, monkeypatch):
    mode("off")
    assert list(track(range(3), "nothing")) == [0, 1, 2]
    with StepProgress("nothing", total=2) as bar:
        bar.update(2, loss=0.1)
    monkeypatch.delenv("RESHOOT_PROGRESS")
    monkeypatch.setenv("RESHOOT_QUIET", "1")
    assert progress_mode() == "off" and not progress.progress_enabled()
    list(track(range(3), "nothing"))
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RESHOOT_PROGRESS", "plain")
    assert progress_mode() == "plain"


def test_auto_is_rich_on_a_terminal_and_plain_lines_elsewhere(mode, monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress_mode() == "rich"
    for _ in track(range(3), "rendering frames"):
        pass
    drawn = sys.stderr.getvalue()
    assert "rendering frames" in drawn and "\x1b[" in drawn and "[reshoot" not in drawn  # a bar, redrawn in place
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, a pipe
    assert progress_mode() == "plain"
    monkeypatch.setenv("RESHOOT_PROGRESS", "auto")
    assert progress_mode() == "plain"


def test_a_wrong_setting_is_named(mode, monkeypatch):
    mode("bars")
    with pytest.raises(ValueError, match=r"RESHOOT_PROGRESS='bars': give one of auto, rich, plain, json, off"):
        progress_mode()
    mode("plain", interval_s="often")
    with pytest.raises(ValueError, match=r"RESHOOT_PROGRESS_INTERVAL='often'"):
        list(track(range(1), "x"))


def test_a_line_is_in_the_file_while_its_step_still_runs(mode, monkeypatch, tmp_path):
    mode("plain")
    log = tmp_path / "log"
    with log.open("w") as stream:  # block-buffered, as stderr redirected to a file can be
        monkeypatch.setattr(sys, "stderr", stream)
        for _ in track(range(2), "extracting cam0"):
            assert log.read_text() == "[reshoot] extracting cam0 0/2 0.0% elapsed 0:00:00 eta ?\n"
            break


def test_the_stage_is_named_by_the_workspace(mode, capsys, tmp_path):
    mode("json", interval_s=0)

    @dataclass
    class Config:
        frames: int = 2

    def stage(ctx) -> dict:
        (ctx.out_dir / "done.txt").write_text("ok")
        list(track(range(2), "counting"))
        return {}

    Workspace(tmp_path / "ws").run_stage("ingest", Config(), stage)
    list(track(range(1), "after"))
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert {e["stage"] for e in events if e["step"] == "counting"} == {"ingest"}
    assert {e["stage"] for e in events if e["step"] == "after"} == {None}


def test_the_cli_flags_set_the_mode_for_the_command_only(mode, monkeypatch):
    assert cli._take_progress_flags(["--json-progress", "ingest", "a.mov"]) == (["ingest", "a.mov"], "json")
    assert cli._take_progress_flags(["ingest", "a.mov", "--progress", "plain"]) == (["ingest", "a.mov"], "plain")
    assert cli._take_progress_flags(["status", "--progress=off"]) == (["status"], "off")
    with pytest.raises(ValueError, match="--progress 'loud': give one of auto, rich, plain, json, off"):
        cli._take_progress_flags(["--progress", "loud", "status"])
    seen = []
    monkeypatch.setattr(cli, "_run_command", lambda argv: seen.append((argv, os.environ["RESHOOT_PROGRESS"])) or 0)
    assert cli.main(["--json-progress", "status"]) == 0
    assert seen == [(["status"], "json")] and "RESHOOT_PROGRESS" not in os.environ


def test_a_command_with_stderr_in_a_file_writes_plain_lines_of_every_step(tiny_shoot, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESHOOT_")}
    sources = [str(tiny_shoot.root / f"cam{k}.mov") for k in range(3)]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        done = subprocess.run([str(RESHOOT), "ingest", *sources, "--workspace", str(tmp_path / "ws")],
                              stdout=subprocess.DEVNULL, stderr=stderr, env=env, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text
    lines = [PLAIN_LINE.match(line) for line in text.splitlines() if line.startswith("[reshoot")]
    assert lines and all(lines), text
    steps = {}
    for line in lines:
        assert line["stage"] == "ingest"
        steps.setdefault(line["step"], []).append(line)
    assert list(steps) == ["probing footage", "reading audio", "extracting cam0", "extracting cam1", "extracting cam2"]
    for step_lines in steps.values():  # its first line and its last
        assert step_lines[0]["done"] == "0" and step_lines[0]["percent"] == "0.0"
        assert step_lines[-1]["done"] == step_lines[-1]["total"] and step_lines[-1]["percent"] == "100.0"


def test_the_docs_give_the_regexes_of_the_code():
    page = (DOCS / "farm.md").read_text()
    assert PLAIN_LINE.pattern in page and RENDER_MANAGER_REGEX in page
    assert "(farm.md)" in (DOCS / "README.md").read_text()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
