"""docs/cli.md, the command-line reference, is the CLI's own ``--help`` and stays in sync with it."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import tyro

import reshoot_bench as bench
from reshoot_cli.main import COMMANDS
from reshoot_cli.reference import REGENERATE, cli_reference

ROOT = Path(__file__).resolve().parents[1]
POSITIONAL = typing.get_args(tyro.conf.Positional[int])[1]


@pytest.fixture(scope="module")
def reference() -> str:
    return cli_reference()


def test_docs_cli_md_is_the_current_help(reference):
    assert (ROOT / "docs" / "cli.md").read_text() == reference, f"docs/cli.md is stale: run `{REGENERATE}`"


def test_every_command_has_a_section_with_all_its_flags(reference):
    sections = _sections(reference)
    assert list(sections) == ["reshoot", *(f"reshoot {name}" for name in COMMANDS)]
    assert all(name in sections["reshoot"] for name in COMMANDS)  # the overview lists every command
    for name, command in COMMANDS.items():
        body = sections[f"reshoot {name}"]
        assert f"usage: reshoot {name} " in body
        missing = [flag for flag in _flags(command) if not re.search(rf"^ +{re.escape(flag)}(?=[ ,]|$)", body, re.M)]
        assert not missing, f"`reshoot {name} --help` in docs/cli.md lacks {missing}"
    assert "--workspace" in _flags(COMMANDS["register"]) and "--steps" in _flags(COMMANDS["reconstruct"])
    assert "--reconstruct.steps" in _flags(COMMANDS["run"])  # the job's stage configs keep their prefix


def test_the_reference_has_no_colour_and_no_path_of_this_machine(reference):
    assert "\x1b[" not in reference
    assert str(ROOT) not in reference and str(bench.DEFAULT_DATA) not in reference
    assert not any(line != line.rstrip() for line in reference.splitlines())


def test_help_texts_are_rewrapped_not_broken_where_the_source_lines_break(reference):
    # reshoot/stages/register.py's --camera-motion docstring breaks its source line after "(dolly,"
    register = _sections(reference)["reshoot register"]
    assert "one pose per frame (dolly, handheld), matched sequentially" in register
    assert "(dolly,\n" not in register


def _sections(markdown: str) -> dict[str, str]:
    """Each ``## TITLE`` section's text, by title, in order."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _flags(cls: type, prefix: str = "") -> list[str]:
    """The ``--flags`` tyro makes of a command's fields: a config marked ``arg(name="")`` is flattened into its
    fields, another nested config prefixes its fields with its name (``--reconstruct.steps``); positionals have none."""
    hints = typing.get_type_hints(cls, include_extras=True)
    flags = []
    for field in (f for f in dataclasses.fields(cls) if f.init):
        hint, markers = hints[field.name], ()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *markers = typing.get_args(hint)
        if POSITIONAL in markers:
            continue
        if dataclasses.is_dataclass(hint):
            flattened = any(getattr(marker, "name", None) == "" for marker in markers)
            flags += _flags(hint, prefix if flattened else f"{prefix}{field.name}.")
        else:
            flags.append(f"--{prefix}{field.name}".replace("_", "-"))
    return flags
