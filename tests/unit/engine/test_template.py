"""The template API: Template, Environment and Renderer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from livetemplate import Environment, Template, TemplateError
from tests.support.replay import replay

FILES = {"row.html": '<li data-key="{{ item.id }}">{{ item.name }} {{ suffix }}</li>'}


T1 = {"id": 1, "name": "one"}


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


def test_environment_get_template_loads_once_and_reports_missing_names() -> None:
    env = Environment(loader=FILES)
    page = env.get_template("row.html")
    assert env.get_template("row.html") is page  # cached
    assert page.render({"item": T1, "suffix": "!"}) == '<li data-key="1">one !</li>'
    with pytest.raises(TemplateError, match="template not found"):
        env.get_template("missing.html")
    with pytest.raises(TemplateError, match="no loader configured"):
        Environment().get_template("row.html")


def test_custom_filters_registered_on_the_template() -> None:
    template = Template("{{ name|shout }}", filters={"shout": lambda s: s.upper() + "!"})
    assert template.render({"name": "hi"}) == "HI!"


def test_undefined_names_render_empty_by_default() -> None:
    assert Template("[{{ missing }}][{{ missing|default('d') }}]").render({}) == "[][d]"


@pytest.mark.parametrize("data", [None, 3, "text", ["list"]])
def test_data_must_be_a_mapping_struct_or_dataclass(data: Any) -> None:
    template = Template("{{ x }}")
    with pytest.raises(TypeError, match="template data must be a mapping"):
        template.render(data)
    with pytest.raises(TypeError, match="template data must be a mapping"):
        template.renderer().render(data)


def test_a_failed_render_keeps_the_client_view_usable() -> None:
    template = Template("{{ 10 // n }}")
    renderer = template.renderer()
    assert renderer.render({"n": 2}) == {"s": ["", ""], "0": "5"}
    with pytest.raises(TemplateError):
        renderer.render({"n": 0})
    renderer.reset()
    assert renderer.render({"n": 5}) == {"s": ["", ""], "0": "2"}
