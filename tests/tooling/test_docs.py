"""Every Python sample in the documentation runs.

The ```python blocks of each page run in order in one namespace (a page builds its example up),
in a fresh working directory; functions a block defines whose names start with ``test_`` are then
called (``async def`` ones on an event loop), so samples written as tests are run as tests. A
block preceded by ``<!-- not-run: reason -->`` is shown only; the reason is required."""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tooling.processes import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!-- not-run: (\S.*) -->$")


@dataclass
class Block:
    language: str
    line: int  # of the first line of code
    code: str
    not_run: str | None


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous.strip())
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        found.append(Block(match.group(1), i + 2, "\n".join(lines[i + 1 : end]) + "\n", marker and marker.group(1)))
        i = end + 1
    return found


def test_the_pages_are_there() -> None:
    names = {p.name for p in PAGES}
    expected = {
        "getting-started.md",
        "templates.md",
        "actions-and-state.md",
        "forms-and-validation.md",
        "server-push-and-topics.md",
        "testing.md",
        "operations.md",
        "security.md",
        "migrating-from-go.md",
        "cli.md",
        "scaling.md",
        "README.md",
    }
    assert expected <= names, expected - names


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_samples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")  # a real module: type hints resolve
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    ran = 0
    for block in blocks(page):
        if block.language != "python" or block.not_run:
            continue
        known = set(namespace)
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        exec(code, namespace)
        for name in sorted(set(namespace) - known):
            test = namespace[name]
            if name.startswith("test_") and callable(test):
                result = test()
                if inspect.iscoroutine(result):
                    asyncio.run(result)
        ran += 1
    python = [b for b in blocks(page) if b.language == "python"]
    assert ran == len([b for b in python if not b.not_run])


def test_every_python_block_runs_or_says_why_not() -> None:
    shown_only = [(p.name, b.line, b.not_run) for p in PAGES for b in blocks(p) if b.language == "python" and b.not_run]
    assert all(reason and len(reason) > 10 for _, _, reason in shown_only)
    assert len(shown_only) <= 6, shown_only
    total = sum(b.language == "python" for p in PAGES for b in blocks(p))
    assert total >= 25, "the documentation shows code"


def test_links_between_pages_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).resolve().exists(), f"{page.name} links to missing {target}"
