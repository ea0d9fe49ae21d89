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
