"""Macros, call blocks and call slots render as Jinja2 renders them, in ClientTree and in the
official client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.replay import assert_like_jinja

T1 = {"id": 1, "name": "one"}
T2 = {"id": 2, "name": "two"}
T3 = {"id": 3, "name": "three"}


CASES: list[tuple[str, str, list[dict[str, Any]]]] = [
    (
        "macro and call",
        "{% macro card(title, body='-') %}<div><h2>{{ title }}</h2>{{ body }}{{ caller() if caller }}</div>"
        "{% endmacro %}{{ card(a) }}{% call card(b, body='x') %}<i>{{ c }}</i>{% endcall %}",
        [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 4, "c": 5}],
    ),
    (
        "call with caller arguments",
        "{% macro each(xs) %}<ul>{% for x in xs %}<li>{{ caller(x) }}</li>{% endfor %}</ul>{% endmacro %}"
        "{% call(x) each(items) %}<b>{{ x * k }}</b>{% endcall %}",
        [{"items": [1, 2], "k": 10}, {"items": [2, 3], "k": 10}, {"items": [3], "k": 1}],
    ),
    (
        "macro per loop item",
        '{% macro row(t) %}<li data-key="{{ t.id }}">{{ t.name }}</li>{% endmacro %}'
        "<ul>{% for t in todos %}{{ row(t) }}{% endfor %}</ul>",
        [{"todos": [T1, T2]}, {"todos": [T1, {**T2, "name": "TWO"}]}, {"todos": [T3, T1]}],
    ),
]


@pytest.mark.parametrize(("source", "states"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_construct_matches_jinja_and_the_client(source: str, states: list[dict[str, Any]]) -> None:
    assert_like_jinja(source, states)
