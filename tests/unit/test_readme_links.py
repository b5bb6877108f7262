"""The README stands alone: every link it makes points inside the repository and exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_links_stay_in_the_repository_and_exist() -> None:
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text and "/work/" not in text
    targets = [t for t in LINK.findall(text) if not t.startswith(("http://", "https://"))]
    assert targets, "the README links its docs"
    for target in targets:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT), f"{target} points outside the repository"
        assert path.exists(), f"{target} does not exist"


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "Quick start"
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make run" in quick and "make test" in quick
    for later in ("Python client library", "Configuration", "Deployment", "Troubleshooting"):
        assert later in headings
    order = [
        headings.index(h)
        for h in ("Python client library", "Configuration", "Deployment", "Troubleshooting")
    ]
    assert order == sorted(order)
