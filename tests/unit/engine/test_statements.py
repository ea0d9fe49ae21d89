"""Statements of a template body (output, if, for, set, with, filter, raw text) render as Jinja2
renders them, and the trees sent rebuild that HTML in ClientTree and in the official client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.replay import assert_like_jinja

CASES: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("output", "<p>{{ x }}</p>", [{"x": "<a&b>"}, {"x": 5}, {"x": None}]),
    (
        "filters",
        "{{ x|upper }} {{ x|length }} {{ 'a' ~ x }} {{ x|default('d') }}",
        [{"x": "ab"}, {"x": "cd"}, {}],
    ),
    (
        "tests",
        "{% if n is defined %}{{ 'even' if n is even else 'odd' }}{% endif %} {{ n is defined }}",
        [{"n": 2}, {"n": 3}, {}],
    ),
    (
        "if elif else",
        "{% if a %}<b>{{ a }}</b>{% elif b %}<i>{{ b }}</i>{% else %}none{% endif %}",
        [{"a": 1}, {"a": 2}, {"a": 0, "b": 1}, {"a": 0, "b": 0}, {"a": 3}],
    ),
    (
        "for with loop variables and else",
        "<ol>{% for x in xs %}<li>{{ loop.index }}/{{ loop.length }} {{ x }}"
        "{% if loop.first %} first{% endif %}{% if loop.last %} last{% endif %}</li>{% else %}<li>none</li>"
        "{% endfor %}</ol>",
        [{"xs": [1, 2, 3]}, {"xs": [1, 3]}, {"xs": []}, {"xs": [4]}],
    ),
    (
        "loop filter, cycle and tuple targets",
        "{% for k, v in d|dictsort if v %}{{ loop.cycle('odd', 'even') }}:{{ k }}={{ v }};{% endfor %}",
        [{"d": {"b": 1, "a": 2, "c": 0}}, {"d": {"a": 2, "c": 5}}],
    ),
    (
        "a filtered loop packs a tuple target again, as Jinja does",
        "{% for k, (a, b) in pairs if k %}{{ loop.previtem }}|{{ loop.nextitem }};{% endfor %}",
        [{"pairs": [["a", [1, 2]], ["", [3, 4]], ["c", [5, 6]]]}, {"pairs": [["a", [1, 2]], ["d", [0, 0]]]}],
    ),
    (
        "nested loops",
        "{% for a in x %}[{% for b in a %}{{ loop.index }}{{ b }}{% endfor %}]{% endfor %}",
        [{"x": [[1, 2], [3]]}, {"x": [[3], [1, 2]]}],
    ),
    (
        "recursive loop",
        "<ul>{% for n in tree recursive %}<li>{{ n.name }}"
        "{% if n.kids %}<ul>{{ loop(n.kids) }}</ul>{% endif %}</li>{% endfor %}</ul>",
        [
            {"tree": [{"name": "a", "kids": [{"name": "b", "kids": []}]}]},
            {"tree": [{"name": "a", "kids": [{"name": "c", "kids": [{"name": "d", "kids": []}]}]}]},
        ],
    ),
    (
        "set and with",
        "{% set t = n * 2 %}{{ t }}{% with u = t + 1, v = n %}[{{ u }} {{ v }}]{% endwith %}",
        [{"n": 1}, {"n": 2}],
    ),
    (
        "block set",
        "{% set box %}<b>{{ y }}</b>{% endset %}{{ box }} {{ box|length }}",
        [{"y": "<"}, {"y": "yy"}],
    ),
    (
        "namespace",
        "{% set ns = namespace(total=0) %}{% for x in xs %}{% set ns.total = ns.total + x %}{% endfor %}{{ ns.total }}",
        [{"xs": [1, 2]}, {"xs": [5]}],
    ),
    ("filter block", "{% filter upper %}hello {{ y }}{% endfilter %}", [{"y": "<x>"}, {"y": "z"}]),
    (
        "comments and whitespace control",
        "a {# note #} {%- if t -%}  [ {{ t }} ]  {%- endif -%}  b",
        [{"t": 1}, {"t": 0}],
    ),
    ("raw", "{% raw %}{{ not a slot }}{% endraw %}{{ x }}", [{"x": 1}, {"x": 2}]),
    (
        "markup and escaping",
        '{{ safe|safe }} {{ unsafe }} <a title="{{ q }}">',
        [
            {"safe": "<b>ok</b>", "unsafe": "<b>no</b>", "q": "\"'&"},
            {"safe": "<i>ok</i>", "unsafe": "&", "q": "x"},
        ],
    ),
]


@pytest.mark.parametrize(("source", "states"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_construct_matches_jinja_and_the_client(source: str, states: list[dict[str, Any]]) -> None:
    assert_like_jinja(source, states)
