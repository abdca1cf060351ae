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


def test_links_between_pages_lead_somewhere():
    """Every relative link in README.md and docs/*.md names a file or folder that exists, and an anchor
    (``page.md#heading``) names a heading of that page (GitHub's slugs: lower case, punctuation dropped)."""
    pages = [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            if not linked.exists():
                broken.append(f"{page.relative_to(DOCS.parent)}: {target} (no {linked})")
            elif anchor and linked.suffix == ".md" and anchor not in _slugs(linked):
                broken.append(f"{page.relative_to(DOCS.parent)}: {target} (no heading #{anchor} in {linked.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def _slugs(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    slugs = set()
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs
