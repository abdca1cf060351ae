"""The docs' examples run: every ```python block of a page, in order, in one namespace.

Fragments that only illustrate an API (a signature, a snippet needing the reader's own files) are
fenced as ```py and not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python\n" in p.read_text())


def test_some_pages_have_examples():
    assert {p.name for p in PAGES} >= {"cameras.md", "sample.md", "workspace.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for idx, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
        exec(compile(block, f"{page.name}[block {idx}]", "exec"), namespace)
