"""Replay a sequence of states through one renderer and check what a client would show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jinja2

from livetemplate import Template
from livetemplate.testing import ClientTree

from .htmlcompare import assert_same_html
from .oracle import shared_oracle


def has_statics(tree: Any) -> bool:
    """Whether a tree or update carries statics anywhere (an ``"s"`` key)."""
    if isinstance(tree, dict):
        return "s" in tree or any(has_statics(v) for v in tree.values())
    if isinstance(tree, list):
        return any(has_statics(v) for v in tree)
    return False


def replay(template: Template, states: Iterable[Any], *, exact: bool = True) -> list[dict[str, Any]]:
    """Render each state with one renderer and apply every tree to the project's
    ClientTree and to the official client (in Node); after each step both must show
    exactly ``template.render(state)`` (with ``exact=False``: the same parsed HTML, for
    values the server re-spells). Returns the trees sent."""
    renderer = template.renderer()
    mine = ClientTree()
    official = shared_oracle().session()
    sent = []
    try:
        for step, state in enumerate(states):
            tree = renderer.render(state)
            sent.append(tree)
            want = template.render(state)
            mine.apply(tree)
            for who, got in (("ClientTree", mine.html()), ("official client", official.apply(tree))):
                if exact:
                    assert got == want, f"step {step}: {who} differs after {tree!r}"
                else:
                    assert_same_html(got, want)
    finally:
        official.close()
    return sent


def assert_like_jinja(source: str, states: list[dict[str, Any]], loader: Mapping[str, str] | None = None) -> None:
    """``Template(source)`` renders what Jinja2 renders for each state, and :func:`replay`
    shows that HTML in both clients."""
    template = Template(source, loader=loader)
    reference = jinja2.Environment(autoescape=True, loader=jinja2.DictLoader(dict(loader or {}))).from_string(source)
    for state in states:
        assert template.render(state) == reference.render(**state)
    replay(template, states)
