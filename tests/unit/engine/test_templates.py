"""Templates combined: include, extends, blocks and super(), as Jinja2 renders them, in ClientTree
and in the official client."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from livetemplate import Template
from tests.support.replay import assert_like_jinja, replay

FILES = {
    "base.html": (
        "<html><head><title>{% block title %}Site{% endblock %}</title></head>"
        "<body>{% block body %}<p>empty</p>{% endblock %}<footer>{{ footer }}</footer></body></html>"
    ),
    "page.html": (
        "{% extends 'base.html' %}{% set footer = 'page ' ~ n %}"
        "{% block title %}{{ title }} - {{ super() }}{% endblock %}"
        "{% block body %}<main>{% for x in items %}<i>{{ x }}</i>{% endfor %}</main>{% endblock %}"
    ),
    "row.html": '<li data-key="{{ item.id }}">{{ item.name }} {{ suffix }}</li>',
}


T1 = {"id": 1, "name": "one"}
T2 = {"id": 2, "name": "two"}


CASES: list[tuple[str, str, list[dict[str, Any]]]] = [
    (
        "include",
        "<ul>{% include 'row.html' %}</ul>",
        [{"item": T1, "suffix": "!"}, {"item": T2, "suffix": "?"}],
    ),
    (
        "include per loop item",
        "<ul>{% for item in todos %}{% include 'row.html' %}{% endfor %}</ul>",
        [
            {"todos": [T1, T2], "suffix": "."},
            {"todos": [T2, T1], "suffix": "."},
            {"todos": [T2], "suffix": ":"},
        ],
    ),
    (
        "extends with blocks and super",
        "{% extends 'page.html' %}",
        [{"n": 1, "title": "A", "items": [1]}, {"n": 2, "title": "B", "items": [2, 3]}],
    ),
]


@pytest.mark.parametrize(("source", "states"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_construct_matches_jinja_and_the_client(source: str, states: list[dict[str, Any]]) -> None:
    assert_like_jinja(source, states, FILES)


@pytest.mark.parametrize(
    "use",
    [
        "{{ super()|upper }}",
        "{{ super() ~ '!' }}",
        "{{ super() if b }}",
        "{% set v = super() %}[{{ v }}]",
        "{% for i in [1, 2] %}{{ super() }}{{ super()|length }}{% endfor %}",
        "{% macro m(a) %}<{{ a }}>{% endmacro %}{{ m(super()) }}",
    ],
)
def test_super_in_expressions(use: str) -> None:
    """``super()`` renders the parent block to markup; slots using it follow the parent's inputs."""
    files = {"base.html": "<main>{% block main %}<p>base {{ n }}</p>{% endblock %}</main>"}
    source = "{% extends 'base.html' %}{% block main %}" + use + "{% endblock %}"
    template = Template(source, loader=files)
    reference = jinja2.Environment(autoescape=True, loader=jinja2.DictLoader(files)).from_string(source)
    states = [{"n": 1, "b": True}, {"n": 2, "b": True}, {"n": 2, "b": False}, {"n": 3, "b": True}]
    for state in states:
        assert template.render(state) == reference.render(**state)
    sent = replay(template, states)
    if "b" not in use:
        assert sent[2] == {}  # only b changed, which the parent block does not read


def test_missing_include_with_ignore_missing_renders_nothing() -> None:
    template = Template("a{% include 'gone.html' ignore missing %}b", loader={})
    assert template.render({}) == "ab"
