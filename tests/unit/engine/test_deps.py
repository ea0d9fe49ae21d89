"""Change tracking: slots whose inputs did not change are not evaluated again, and
in-place mutations are still seen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livetemplate import Template
from tests.support.replay import has_statics, replay


class Spy:
    """A filter that records the values it is applied to."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, value: Any) -> Any:
        self.calls.append(value)
        return value

    def take(self) -> list[Any]:
        calls, self.calls = self.calls, []
        return calls


PAGE = '<h1>{{ title|spy }}</h1><ul>{% for r in rows %}<li data-key="{{ r.id }}">{{ r.name|spy }}</li>{% endfor %}</ul>'


def test_only_slots_with_changed_inputs_are_evaluated() -> None:
    spy = Spy()
    template = Template(PAGE, filters={"spy": spy})
    rows = [{"id": i, "name": f"n{i}"} for i in range(5)]
    state = {"title": "T", "rows": rows}
    renderer = template.renderer()
    renderer.render(state)
    assert sorted(spy.take()) == ["T", "n0", "n1", "n2", "n3", "n4"]

    assert renderer.render(state) == {}
    assert spy.take() == []

    rows[3]["name"] = "x"  # mutated in place: the list and the dict are the same objects
    assert renderer.render(state) == {"1": [["u", "3", {"1": "x"}]]}
    assert spy.take() == ["x"]

    state["title"] = "T2"
    assert renderer.render(state) == {"0": "T2"}
    assert spy.take() == ["T2"]


def test_values_that_are_containers_are_always_re_evaluated() -> None:
    template = Template("<p>{{ tags|join(', ') }}</p><p>{{ tags|length }}</p>")
    tags = ["a", "b"]
    state = {"tags": tags}
    renderer = template.renderer()
    renderer.render(state)
    tags.append("c")
    assert renderer.render(state) == {"0": "a, b, c", "1": "3"}


def test_equal_values_of_another_type_are_a_change() -> None:
    template = Template("{{ v }}")
    sent = replay(template, [{"v": 1}, {"v": True}, {"v": 1.0}, {"v": 0.0}, {"v": -0.0}, {"v": "1"}])
    assert sent[1:] == [{"0": "True"}, {"0": "1.0"}, {"0": "0.0"}, {"0": "-0.0"}, {"0": "1"}]


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


@dataclass
class Tree:
    root: Node


def test_nested_objects_mutated_in_place() -> None:
    template = Template(
        "<h1>{{ root.name }}</h1>"
        "{% for c in root.children %}<p>{{ c.name }}:{% for g in c.children %}{{ g.name }} {% endfor %}</p>"
        "{% endfor %}"
    )
    tree = Tree(Node("r", [Node("a", [Node("x")]), Node("b")]))
    renderer = template.renderer()
    renderer.render(tree)
    tree.root.children[0].children[0].name = "y"
    tree.root.children[1].children.append(Node("z"))
    update = renderer.render(tree)
    assert not has_statics(update)  # same shapes: no statics sent again
    replay(template, [Tree(Node("r", [Node("a", [Node("x")])])), tree])


def test_assignments_inside_a_branch_are_rerun() -> None:
    template = Template("{% if on %}{% set label = 'on ' ~ n %}{% endif %}<b>{{ label }}</b>")
    replay(template, [{"on": True, "n": 1}, {"on": True, "n": 2}, {"on": False, "n": 2}, {"on": True, "n": 3}])


def test_loop_variables_are_inputs_of_items() -> None:
    template = Template(
        '{% for x in xs %}<i data-key="{{ x }}">{{ loop.index }}/{{ loop.length }}'
        "{% if loop.last %}.{% endif %}</i>{% endfor %}"
    )
    sent = replay(template, [{"xs": ["a", "b"]}, {"xs": ["c", "a", "b"]}, {"xs": ["c", "a"]}])
    assert sent[1] == {
        "0": [
            ["u", "a", {"1": "2", "2": "3"}],
            ["u", "b", {"1": "3", "2": "3"}],
            ["p", [{"0": "c", "1": "1", "2": "3", "3": "", "_k": "c"}]],
        ]
    }


def test_a_namespace_mutated_in_a_loop() -> None:
    template = Template(
        "{% set ns = namespace(total=0) %}"
        "{% for x in xs %}{% set ns.total = ns.total + x %}<i>{{ ns.total }}</i>{% endfor %}"
        "<b>{{ ns.total }}</b>"
    )
    replay(template, [{"xs": [1, 2]}, {"xs": [1, 3]}, {"xs": [5]}, {"xs": [5]}])


# -- dependencies through calls (issue 12, T1-T3): each state changes one input only ----------------------------

MACRO = "{% macro m(a) %}[{{ a }}]{% endmacro %}"


def test_macro_arguments_that_call_methods_depend_on_the_receiver() -> None:
    replay(Template(MACRO + "{{ m(s.upper()) }}"), [{"s": "x"}, {"s": "y"}, {"s": "y"}])
    replay(Template(MACRO + "{{ m(d.get('k', '-')) }}"), [{"d": {"k": "x"}}, {"d": {"k": "y"}}, {"d": {}}])
    keyed = Template(MACRO + '{% for it in xs %}<p data-key="{{ it.id }}">{{ m(it.name.upper()) }}</p>{% endfor %}')
    sent = replay(keyed, [{"xs": [{"id": 1, "name": "a"}]}, {"xs": [{"id": 1, "name": "b"}]}])
    assert sent[1] == {"0": [["u", "1", {"1": {"0": "B"}}]]}


def test_a_macro_call_as_a_macro_argument_carries_that_macros_dependencies() -> None:
    template = Template("{% macro m2() %}{{ s }}{% endmacro %}" + MACRO + "{{ m(m2()) }}")
    assert replay(template, [{"s": "x"}, {"s": "y"}])[1] == {"0": {"0": "y"}}


def test_caller_passed_on_as_a_macro_argument() -> None:
    template = Template(MACRO + "{% macro w() %}{{ m(caller()) }}{% endmacro %}{% call w() %}{{ s }}{% endcall %}")
    replay(template, [{"s": "x"}, {"s": "y"}])


def test_call_block_in_a_child_block_of_a_macro_defined_outside_the_blocks() -> None:
    files = {"base.html": "<main>{% block main %}base{% endblock %}</main>"}
    source = (
        "{% extends 'base.html' %}{% macro m() %}{{ s }}{{ caller() }}{% endmacro %}"
        "{% block main %}{% call m() %}{{ t }}{% endcall %}{{ m2() }}{% endblock %}"
        "{% macro m2() %}<{{ u }}>{% endmacro %}"
    )
    states = [{"s": "x", "t": 1, "u": "a"}, {"s": "y", "t": 1, "u": "a"}, {"s": "y", "t": 2, "u": "a"}]
    replay(Template(source, loader=files), [*states, {"s": "y", "t": 2, "u": "b"}])


def test_a_macro_name_stored_over_in_a_branch_is_not_statically_known() -> None:
    states = [{"a": True, "x": 1, "y": 2, "f": lambda: "F"}, {"a": False, "x": 1, "y": 2, "f": lambda: "F"}]
    for source in (
        "{% if a %}{% macro m() %}A{{ x }}{% endmacro %}{% else %}{% macro m() %}B{{ y }}{% endmacro %}{% endif %}",
        "{% macro m() %}A{{ x }}{% endmacro %}{% if a %}{% macro m() %}B{{ y }}{% endmacro %}{% endif %}",
        "{% macro m() %}A{{ x }}{% endmacro %}{% if a %}{% set m = f %}{% endif %}",
    ):
        replay(Template(source + "{{ m() }}"), [*states, states[0]])


def test_a_macro_defined_in_a_branch_is_known_inside_it() -> None:
    template = Template("{% if a %}{% macro m() %}<b>{{ x }}</b>{% endmacro %}{{ m() }}{% endif %}")
    sent = replay(template, [{"a": True, "x": 1}, {"a": True, "x": 2}])
    assert sent[1] == {"0": {"0": {"0": "2"}}}  # the call is a node: the macro is known there


def test_method_calls_are_evaluated_again_only_when_the_receiver_changes() -> None:
    spy = Spy()
    template = Template("{{ s.upper()|spy }} {{ d.get('k')|spy }}", filters={"spy": spy})
    renderer = template.renderer()
    state: dict[str, Any] = {"s": "x", "d": {"k": "v"}}
    renderer.render(state)
    assert spy.take() == ["X", "v"]
    assert renderer.render(state) == {}
    assert spy.take() == ["v"]  # a dict is a container: always read again
    state["s"] = "y"
    assert renderer.render(state) == {"0": "Y"}
    assert spy.take() == ["Y", "v"]
