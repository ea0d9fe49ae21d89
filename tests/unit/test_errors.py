"""Bad templates and bad data fail with a clear TemplateError."""

from __future__ import annotations

from typing import Any

import pytest

from livetemplate import Template, TemplateError


def error_of(source: str, data: Any = None, **options: Any) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        template = Template(source, name="page.html", **options)
        if data is not None:
            template.render(data)
    return info.value


def test_syntax_error_has_line_and_column() -> None:
    err = error_of("<p>\n  {{ user.name }\n</p>")
    assert (err.template, err.lineno, err.column) == ("page.html", 2, 16)
    assert str(err) == "template 'page.html', line 2, column 16: unexpected '}'"


def test_syntax_error_in_a_statement() -> None:
    err = error_of("<ul>\n{% for x in %}{% endfor %}</ul>")
    assert (err.lineno, err.column) == (2, 13)
    assert "Expected an expression" in err.detail


def test_unclosed_block() -> None:
    err = error_of("{% if x %}\n<p>")
    assert "endif" in err.detail


@pytest.mark.parametrize(
    ("source", "detail", "column"),
    [
        ("<p>\n{{ name|shout }}</p>", "No filter named 'shout'.", 9),
        ("{% if show %}{{ x is oddish }}{% endif %}", "No test named 'oddish'.", 22),
    ],
)
def test_unknown_filters_and_tests_fail_at_construction(source: str, detail: str, column: int) -> None:
    err = error_of(source)
    assert err.detail == detail
    assert err.column == column


def test_custom_filters_registered_on_the_template() -> None:
    template = Template("{{ name|shout }}", filters={"shout": lambda s: s.upper() + "!"})
    assert template.render({"name": "hi"}) == "HI!"


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
    from livetemplate import Environment

    env = Environment(max_depth=5)
    template = env.from_string("{% macro m(n) %}{% if n %}<i>{{ m(n - 1) }}</i>{% endif %}{% endmacro %}{{ m(k) }}")
    assert template.render({"k": 4}) == "<i>" * 4 + "</i>" * 4
    with pytest.raises(TemplateError, match="recursion deeper than 5 levels"):
        template.render({"k": 6})


def test_undefined_names_render_empty_by_default() -> None:
    assert Template("[{{ missing }}][{{ missing|default('d') }}]").render({}) == "[][d]"


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


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("{% import 'm.html' as m %}", "{% import %} is not supported"),
        ("{% from 'm.html' import x %}", "{% from ... import %} is not supported"),
        ("{% autoescape false %}{{ x }}{% endautoescape %}", "{% autoescape %} is not supported"),
        ("{% extends layout %}", "{% extends %} needs a constant template name"),
        ("{% include name %}", "{% include %} needs a constant template name (or a constant list of names)"),
        (
            "{% if x %}{% extends 'a' %}{% endif %}",
            "{% extends %} is only supported at the top level of a template",
        ),
        ("{{ self.title() }}", "'self' (block references) is not supported; use blocks or macros"),
        ("{% include 'missing.html' %}", "cannot load 'missing.html': the template has no loader"),
    ],
)
def test_unsupported_constructs_fail_at_construction(source: str, detail: str) -> None:
    err = error_of(source)
    assert err.detail == detail
    assert err.lineno == 1


@pytest.mark.parametrize("use", ["{{ super() }}", "{{ super()|upper }}"])
def test_super_outside_a_child_block(use: str) -> None:
    err = error_of("{% block a %}" + use + "{% endblock %}")
    assert err.detail == "super() called in a block that has no parent block"


@pytest.mark.parametrize("use", ["{{ super }}", "{{ super.super() }}", "{{ super(1) }}"])
def test_super_only_as_a_call_without_arguments(use: str) -> None:
    err = error_of(
        "{% extends 'base.html' %}{% block a %}" + use + "{% endblock %}",
        loader={"base.html": "{% block a %}{% endblock %}"},
    )
    assert err.detail == "super is only supported called without arguments, as super()"


def test_missing_include_with_ignore_missing_renders_nothing() -> None:
    template = Template("a{% include 'gone.html' ignore missing %}b", loader={})
    assert template.render({}) == "ab"


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
