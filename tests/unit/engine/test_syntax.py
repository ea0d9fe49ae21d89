"""Bad templates fail when constructed, with a clear TemplateError (template, line, column)."""

from __future__ import annotations

import pytest

from tests.support.errors import error_of


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
