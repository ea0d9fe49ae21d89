"""Parsing with Jinja2, and questions asked of its syntax trees."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes

from ..errors import TemplateError

Path = tuple[str, tuple[tuple[bool, Any], ...]]  # a name and its lookups: (is an item lookup, key)


def parse(env: jinja2.Environment, source: str, name: str | None, filename: str | None) -> nodes.Template:
    """Parse with Jinja2, reporting syntax errors with their line and column."""
    parser = jinja2.parser.Parser(env, source, name, filename)
    try:
        tree = parser.parse()
        tree.lt_source = source  # type: ignore[attr-defined]
        return tree
    except jinja2.TemplateSyntaxError as exc:
        message = exc.message or "syntax error"
        column = _column(env, source, exc.lineno, parser.stream.current, message)
        raise TemplateError(message, template=name, lineno=exc.lineno, column=column) from None


def _column(env: jinja2.Environment, source: str, lineno: int, current: Any, message: str) -> int | None:
    """Best-effort 1-based column of a syntax error on ``lineno``: the token the parser
    stopped at or, for an error of the lexer, the character it names after that token."""
    lines = source.splitlines()
    if not 0 < lineno <= len(lines):
        return None
    line = lines[lineno - 1]
    text = {
        "block_end": env.block_end_string,
        "variable_end": env.variable_end_string,
        "block_begin": env.block_start_string,
        "variable_begin": env.variable_start_string,
    }.get(current.type)
    if text is None and current.type not in ("eof", "data", "initial"):
        text = str(current.value)
    start = line.find(text) if text and current.lineno == lineno else -1
    unexpected = re.fullmatch(r"unexpected '(.+)'", message)
    if unexpected is not None:
        found = line.find(unexpected.group(1), start + len(text or "") if start >= 0 else 0)
        if found >= 0:
            return found + 1
    if start >= 0:
        return start + 1
    return len(line.rstrip()) + 1


def check_names(env: jinja2.Environment, tree: nodes.Node, template: str | None) -> None:
    """Unknown filters and tests fail at construction, wherever they are used."""
    source = getattr(tree, "lt_source", "")
    for kind, table in ((nodes.Filter, env.filters), (nodes.Test, env.tests)):
        for item in tree.find_all(kind):
            if item.name not in table:
                what = "filter" if kind is nodes.Filter else "test"
                raise TemplateError(
                    f"No {what} named {item.name!r}.",
                    template=template,
                    lineno=item.lineno,
                    column=_find_column(source, item.lineno, item.name),
                )


def _find_column(source: str, lineno: int, needle: str) -> int | None:
    lines = source.splitlines()
    if 0 < lineno <= len(lines):
        found = lines[lineno - 1].find(needle)
        if found >= 0:
            return found + 1
    return None


def find_all(node: nodes.Node, kind: type[nodes.Node] | tuple[type[nodes.Node], ...]) -> Iterable[Any]:
    """``node`` itself, if of ``kind``, then its descendants of ``kind``."""
    if isinstance(node, kind):
        yield node
    yield from node.find_all(kind)


def path(n: nodes.Node) -> Path | None:
    """The name and lookups of ``n`` when it is a name followed by attribute and constant
    item lookups, else None."""
    attrs: list[tuple[bool, Any]] = []
    while True:
        if isinstance(n, nodes.Getattr):
            attrs.append((False, n.attr))
            n = n.node
        elif isinstance(n, nodes.Getitem) and isinstance(n.arg, nodes.Const):
            attrs.append((True, n.arg.value))
            n = n.node
        elif isinstance(n, nodes.Name) and n.ctx == "load":
            attrs.reverse()
            return n.name, tuple(attrs)
        else:
            return None


def names(node: nodes.Node) -> Iterable[str]:
    """The names ``node`` reads."""
    for n in find_all(node, (nodes.Name, nodes.NSRef)):
        if not isinstance(n, nodes.Name) or n.ctx == "load":
            yield n.name


def stored_names(target: nodes.Node) -> Iterable[str]:
    """The names an assignment target stores."""
    for n in find_all(target, nodes.Name):
        if n.ctx == "store":
            yield n.name


def is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name and node.ctx == "load"


def check_super(block: nodes.Block, fail: Callable[[str, nodes.Node], NoReturn]) -> bool:
    """``super`` is supported called without arguments: ``{{ super() }}`` on its own renders
    the parent block in place, ``super()`` in an expression renders it to markup. Whether the
    block has the second kind."""
    alone = set()
    for output in block.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.Call) and is_name(child.node, "super"):
                alone.add(id(child.node))
    calls = {id(call.node) for call in block.find_all(nodes.Call) if not (call.args or call.kwargs)}
    in_expressions = False
    for name in block.find_all(nodes.Name):
        if name.name == "super" and name.ctx == "load":
            if id(name) not in calls:
                fail("super is only supported called without arguments, as super()", name)
            in_expressions = in_expressions or id(name) not in alone
    return in_expressions


def constant_names(node: nodes.Expr) -> list[str] | None:
    """The template names of an include that names them as constants."""
    if isinstance(node, nodes.Const):
        if isinstance(node.value, str):
            return [node.value]
        if isinstance(node.value, (list, tuple)) and all(isinstance(v, str) for v in node.value):
            return list(node.value)
    if isinstance(node, (nodes.List, nodes.Tuple)) and all(
        isinstance(i, nodes.Const) and isinstance(i.value, str) for i in node.items
    ):
        return [i.value for i in node.items]  # type: ignore[attr-defined]
    return None


def tag_name(node: nodes.Node) -> str:
    """How a statement is written in a template, for messages."""
    return {
        "Import": "import",
        "FromImport": "from ... import",
        "EvalContextModifier": "autoescape",
        "ScopedEvalContextModifier": "autoescape",
        "ExprStmt": "do",
        "Break": "break",
        "Continue": "continue",
        "OverlayScope": "overlay",
    }.get(type(node).__name__, type(node).__name__.lower())
