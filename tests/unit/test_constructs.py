"""Every supported construct renders exactly as Jinja2 does, and the trees sent for a
sequence of states rebuild that HTML in the project's ClientTree and in the official
client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import msgspec
import pytest

from livetemplate import Environment, Template, TemplateError
from tests.support.replay import has_statics, replay

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
T3 = {"id": 3, "name": "three"}

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
    template = Template(source, loader=FILES)
    reference = jinja2.Environment(autoescape=True, loader=jinja2.DictLoader(FILES)).from_string(source)
    for state in states:
        assert template.render(state) == reference.render(**state)
    replay(template, states)


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


def test_custom_filters_tests_and_globals_on_a_shared_environment() -> None:
    env = Environment(
        filters={"money": lambda v: f"${v:,.2f}"},
        tests={"big": lambda v: v > 100},
        globals={"site": "Shop"},
    )
    template = env.from_string("{{ site }}: {{ price|money }}{% if price is big %} (big){% endif %}")
    assert template.render({"price": 1234.5}) == "Shop: $1,234.50 (big)"
    replay(template, [{"price": 5}, {"price": 500}])


def test_data_as_dataclass_and_struct() -> None:
    @dataclass
    class Counter:
        count: int
        label: str = "clicks"

    class Counted(msgspec.Struct):
        count: int
        label: str = "clicks"

    template = Template("<p>{{ count }} {{ label }}</p>")
    for kind in (Counter, Counted):
        sent = replay(template, [kind(1), kind(1), kind(2), kind(2, "taps")])
        assert sent[1:] == [{}, {"0": "2"}, {"1": "taps"}]


def test_from_file_resolves_includes_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<main>{% include 'part.html' %}</main>\n")
    (tmp_path / "part.html").write_text("<p>{{ who }}</p>")
    template = Template.from_file(tmp_path / "page.html")
    assert template.name == "page.html"
    assert template.render({"who": "me"}) == "<main><p>me</p></main>"


def test_updates_do_not_resend_statics_when_shapes_stay() -> None:
    template = Template(
        "<h1>{{ title }}</h1>{% if user %}<p>Hi {{ user.name }}</p>{% endif %}"
        '<ul>{% for t in todos %}<li data-key="{{ t.id }}">{{ t.name }}{% if t.done %} ✓{% endif %}</li>'
        "{% endfor %}</ul>"
    )
    first = {"title": "a", "user": {"name": "x"}, "todos": [{**T1, "done": False}]}
    second = {"title": "b", "user": {"name": "y"}, "todos": [{**T1, "done": False, "name": "uno"}]}
    sent = replay(template, [first, second])
    assert sent[1] == {"0": "b", "1": {"0": "y"}, "2": [["u", "1", {"1": "uno"}]]}
    assert not has_statics(sent[1])


def test_environment_get_template_loads_once_and_reports_missing_names() -> None:
    env = Environment(loader=FILES)
    page = env.get_template("row.html")
    assert env.get_template("row.html") is page  # cached
    assert page.render({"item": T1, "suffix": "!"}) == '<li data-key="1">one !</li>'
    with pytest.raises(TemplateError, match="template not found"):
        env.get_template("missing.html")
    with pytest.raises(TemplateError, match="no loader configured"):
        Environment().get_template("row.html")


# -- what the client would lose, sent so that it does not (issue 12) ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "value", "sent"),
    [
        ("<{{ tg }}>x</{{ tg }}>", "root", ["ROOT", "ROOT"]),  # tag names are case-insensitive
        ("<ro{{ tg }}>x</ro{{ tg }}>", "ot", ["OT", "OT"]),
        ("<root{{ tg|safe }}x</root>", ">", [" >"]),
        ('<a title="<{{ tg }}>">x</a>', "root", ["&#114;oot"]),  # text: a character reference
        ("<{{ tg }}>x</{{ tg }}>", "b", ["b", "b"]),  # forms no <root>: sent as it is
    ],
)
def test_root_tags_formed_by_statics_and_a_value_are_respelled(source: str, value: str, sent: list[str]) -> None:
    template = Template(source)
    tree = replay(template, [{"tg": value}, {"tg": "i"}, {"tg": value}], exact=False)[0]
    assert [tree[str(i)] for i in range(len(sent))] == sent


def test_values_like_placeholders_are_sent_as_nodes_the_client_shows_verbatim() -> None:
    """The client blanks a string ``{{...}}``; a node's statics it shows as they are, in raw text too."""
    template = Template('<script type="text/x-template">{{ s }}</script><p title="{{ s }}">{{ s }}</p>')
    sent = replay(template, [{"s": "{{name}}"}, {"s": "a"}, {"s": "{{b}}"}])
    assert sent[0]["0"] == {"s": ["{{name}}"]}
    assert sent[1:] == [
        {"0": "a", "1": "a", "2": "a"},
        {"0": {"s": ["{{b}}"]}, "1": {"s": ["{{b}}"]}, "2": {"s": ["{{b}}"]}},
    ]
