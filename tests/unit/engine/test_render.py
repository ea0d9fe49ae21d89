"""The render engine: the trees and updates sent (keyed range operations, statics sent once,
values re-spelled for the client), and failures while rendering."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from livetemplate import Environment, Template, TemplateError
from tests.support.errors import error_of
from tests.support.replay import has_statics, replay

LIST = '<ul>{% for t in todos %}<li data-key="{{ t.id }}">{{ t.title }}</li>{% endfor %}</ul>'


def todos(*spec: int | tuple[int, str]) -> dict[str, Any]:
    items = []
    for entry in spec:
        key, title = entry if isinstance(entry, tuple) else (entry, f"T{entry}")
        items.append({"id": key, "title": title})
    return {"todos": items}


def item(key: int, title: str | None = None) -> dict[str, str]:
    return {"0": str(key), "1": title or f"T{key}", "_k": str(key)}


GOLDEN = [
    ("remove", todos(1, 2, 3), todos(1, 3), [["r", "2"]]),
    ("update one field", todos(1, 2, 3), todos(1, (2, "B"), 3), [["u", "2", {"1": "B"}]]),
    ("reorder", todos(1, 2, 3), todos(3, 1, 2), [["o", ["3", "1", "2"]]]),
    ("move one", todos(1, 2, 3), todos(2, 3, 1), [["o", ["2", "3", "1"]]]),
    ("prepend", todos(1, 2, 3), todos(4, 1, 2, 3), [["p", [item(4)]]]),
    ("insert after a key", todos(1, 2, 3), todos(1, 4, 2, 3), [["i", "1", [item(4)]]]),
    ("append", todos(1, 2, 3), todos(1, 2, 3, 4), [["a", [item(4)]]]),
    ("insert two", todos(1, 2), todos(1, 5, 6, 2), [["i", "1", [item(5), item(6)]]]),
    (
        "mixed edit",
        todos(1, 2, 3),
        todos(2, 4, (3, "C")),
        [["r", "1"], ["u", "3", {"1": "C"}], ["i", "2", [item(4)]]],
    ),
]


@pytest.mark.parametrize(("before", "after", "ops"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_keyed_edit_sends_exact_operations(before: Any, after: Any, ops: list[Any]) -> None:
    sent = replay(Template(LIST), [before, after])
    assert sent[1] == {"0": ops}


def test_first_render_is_a_range_with_statics_keys_and_id_key() -> None:
    tree = Template(LIST).renderer().render(todos(1, 2))
    assert tree == {
        "s": ["<ul>", "</ul>"],
        "0": {"s": ['<li data-key="', '">', "</li>"], "d": [item(1), item(2)], "m": {"idKey": "0"}},
    }


def test_a_single_move_in_a_long_list_moves_only_that_item() -> None:
    keys = list(range(1, 51))
    moved = [1, *range(3, 26), 2, *range(26, 51)]
    sent = replay(Template(LIST), [todos(*keys), todos(*moved)])
    assert sent[1] == {"0": [["r", "2"], ["i", "25", [item(2)]]]}


def test_an_item_whose_key_changes_in_place_is_re_keyed() -> None:
    """A new key where a removed item stood: that item, edited. The update carries the new
    ``_k`` (the client re-keys the item) and only the changed slots, never statics."""
    template = Template(
        '<ul>{% for t in todos %}<li data-key="{{ t.id }}">'
        "{% if t.on %}<b>{{ t.name }}</b>{% endif %}</li>{% endfor %}</ul>"
    )
    first = {"todos": [{"id": 1, "name": "n", "on": True}, {"id": 2, "name": "m", "on": True}]}
    second = {"todos": [{"id": 3, "name": "n", "on": True}, {"id": 2, "name": "m", "on": True}]}
    sent = replay(template, [first, second])
    assert sent[1] == {"0": [["u", "1", {"0": "3", "_k": "3"}]]}


def test_replacing_every_item_re_keys_them_and_adding_appends() -> None:
    sent = replay(Template(LIST), [todos(1, 2), todos(3, 4, 5)])
    assert sent[1] == {
        "0": [
            ["u", "1", {"0": "3", "1": "T3", "_k": "3"}],
            ["u", "2", {"0": "4", "1": "T4", "_k": "4"}],
            ["a", [item(5)]],
        ]
    }


def test_emptying_and_refilling_a_loop_with_else() -> None:
    template = Template(
        '<ul>{% for t in todos %}<li data-key="{{ t.id }}">{{ t.title }}</li>'
        "{% else %}<li>nothing for {{ who }}</li>{% endfor %}</ul>"
    )
    sent = replay(
        template,
        [
            {**todos(1), "who": "ann"},
            {**todos(), "who": "ann"},
            {**todos(), "who": "bob"},
            {**todos(2), "who": "bob"},
            {**todos(), "who": "bob"},
        ],
    )
    assert sent[1] == {"0": {"d": [], "else": {"s": ["<li>nothing for ", "</li>"], "0": "ann"}}}
    assert sent[2] == {"0": {"else": {"0": "bob"}}}
    assert sent[3] == {"0": [["a", [item(2)]]]}
    assert sent[4] == {"0": {"d": []}}  # the client still holds the current else node


def test_unkeyed_items_are_keyed_by_a_stable_hash_of_their_content() -> None:
    template = Template("{% for x in xs %}<b>{{ x }}</b>{% endfor %}")
    sent = replay(
        template,
        [
            {"xs": ["a", "b"]},
            {"xs": ["b", "a"]},
            {"xs": ["b", "c"]},
            {"xs": ["b", "c", "a"]},
            {"xs": ["c", "a"]},
        ],
    )
    key_a, key_b = (it["_k"] for it in sent[0]["0"]["d"])
    assert len(key_a) == 16 and key_a != key_b
    assert sent[1] == {"0": [["o", [key_b, key_a]]]}
    # an item edited in place keeps its key: the client gets the change, not a new item
    assert sent[2] == {"0": [["u", key_a, {"0": "c"}]]}
    # new content gets the hash of its content (the same hash "a" had at first)
    assert sent[3] == {"0": [["a", [{"0": "a", "_k": key_a + "#1"}]]]}
    assert sent[4] == {"0": [["r", key_b]]}


def test_duplicate_keys_stay_distinct() -> None:
    template = Template(LIST)
    sent = replay(template, [todos(1, 1, 2), todos(1, 2), todos(1, 1, 1, 2)])
    assert [it["_k"] for it in sent[0]["0"]["d"]] == ["1", "1#1", "2"]


def test_duplicate_keys_keep_the_numbers_the_client_holds() -> None:
    """After the first of two duplicates goes, the second keeps ``b#1``: a later render that
    evaluates the items again (the title is in every item) must not re-key it to ``b``."""
    template = Template(
        '<ul>{% for t in todos %}<li data-key="{{ t.id }}">{{ t.title }} {{ title }}</li>{% endfor %}</ul>'
    )
    first = {"id": "b", "title": "x"}
    state = {"title": "t", "todos": [first, {"id": "a", "title": "y"}, {"id": "b", "title": "z"}]}

    def states() -> Any:
        yield state
        state["todos"].remove(first)
        yield state
        state["title"] = "u"
        yield state

    sent = replay(template, states())
    assert sent[1] == {"0": [["r", "b"]]}
    assert sent[2] == {"0": [["u", "a", {"2": "u"}], ["u", "b#1", {"2": "u"}]]}


def test_no_change_sends_nothing() -> None:
    sent = replay(Template(LIST), [todos(1, 2), todos(1, 2)])
    assert sent[1] == {}


class Todo(msgspec.Struct):
    id: int
    title: str
    done: bool = False


class Page(msgspec.Struct):
    todos: list[Todo]


def test_in_place_mutation_of_structs_is_detected() -> None:
    template = Template(
        '<ul>{% for t in todos %}<li data-key="{{ t.id }}" class="{{ "done" if t.done }}">{{ t.title }}</li>'
        "{% endfor %}</ul>"
    )
    page = Page([Todo(1, "a"), Todo(2, "b"), Todo(3, "c")])
    renderer = template.renderer()
    renderer.render(page)
    page.todos[1].done = True
    assert renderer.render(page) == {"0": [["u", "2", {"1": "done"}]]}
    page.todos.insert(0, Todo(4, "d"))
    assert renderer.render(page) == {"0": [["p", [{"0": "4", "1": "", "2": "d", "_k": "4"}]]]}
    del page.todos[2]
    assert renderer.render(page) == {"0": [["r", "2"]]}
    page.todos.reverse()
    assert renderer.render(page) == {"0": [["o", ["3", "1", "4"]]]}
    assert renderer.render(page) == {}


def test_switching_between_branches_that_both_hold_loops_replaces_the_branch() -> None:
    """The client merges a new branch into the old one unless the old one has a slot the
    new one lacks: a range at slot 0 would keep its stale items under a new branch node
    holding a range deeper down. Branches that may hold ranges carry a marker slot."""
    template = Template(
        "{% if grid %}<ul>{% for r in rows %}<li>{{ r }}</li>{% endfor %}</ul>"
        "{% else %}<div>{% if rows %}<ol>{% for r in rows %}<li>{{ r }}</li>{% endfor %}</ol>{% endif %}</div>"
        "{% endif %}"
    )
    sent = replay(
        template,
        [{"grid": True, "rows": [1, 2]}, {"grid": False, "rows": [3]}, {"grid": True, "rows": []}],
    )
    first_branch = sent[0]["0"]
    second_branch = sent[1]["0"]
    markers = [k for k in first_branch if k.isdigit() and int(k) >= 1_000_000]
    assert len(markers) == 1 and markers[0] not in second_branch


def test_updates_do_not_resend_statics_when_shapes_stay() -> None:
    template = Template(
        "<h1>{{ title }}</h1>{% if user %}<p>Hi {{ user.name }}</p>{% endif %}"
        '<ul>{% for t in todos %}<li data-key="{{ t.id }}">{{ t.name }}{% if t.done %} ✓{% endif %}</li>'
        "{% endfor %}</ul>"
    )
    first = {"title": "a", "user": {"name": "x"}, "todos": [{"id": 1, "name": "one", "done": False}]}
    second = {"title": "b", "user": {"name": "y"}, "todos": [{"id": 1, "done": False, "name": "uno"}]}
    sent = replay(template, [first, second])
    assert sent[1] == {"0": "b", "1": {"0": "y"}, "2": [["u", "1", {"1": "uno"}]]}
    assert not has_statics(sent[1])


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


@pytest.mark.parametrize(
    "source",
    [
        "{% macro m(n) %}<i>{{ m(n + 1) }}</i>{% endmacro %}{{ m(0) }}",
        "{% macro m(n) %}<i>{% if n %}{{ m(n - 1) }}{% endif %}</i>{% endmacro %}{{ m(1000) }}",
        "{% for x in xs recursive %}{{ loop(xs) }}{% endfor %}",
    ],
)
def test_recursion_past_the_depth_limit(source: str) -> None:
    err = error_of(source, {"xs": [1]})
    assert "recursion deeper than 64 levels" in err.detail
    assert err.lineno == 1


def test_recursive_include_past_the_depth_limit() -> None:
    err = error_of("{% include 'page.html' %}", {}, loader={"page.html": "<i>{% include 'page.html' %}</i>"})
    assert "recursion deeper than" in err.detail


def test_depth_limit_is_configurable() -> None:

    env = Environment(max_depth=5)
    template = env.from_string("{% macro m(n) %}{% if n %}<i>{{ m(n - 1) }}</i>{% endif %}{% endmacro %}{{ m(k) }}")
    assert template.render({"k": 4}) == "<i>" * 4 + "</i>" * 4
    with pytest.raises(TemplateError, match="recursion deeper than 5 levels"):
        template.render({"k": 6})


def test_strict_undefined_names_the_variable() -> None:
    err = error_of("<p>\n{{ user }}</p>", {}, strict_undefined=True)
    assert (err.detail, err.lineno) == ("'user' is undefined", 2)
    renderer = Template("{{ a }}", strict_undefined=True).renderer()
    with pytest.raises(TemplateError, match="'a' is undefined"):
        renderer.render({})


def test_runtime_errors_carry_the_template_line_and_cause() -> None:
    err = error_of("\n\n{{ 10 // n }}", {"n": 0})
    assert err.lineno == 3
    assert err.detail == "ZeroDivisionError: integer division or modulo by zero"
    assert isinstance(err.__cause__, ZeroDivisionError)
