"""``livetemplate check``: validate templates before they are served.

Each template is compiled exactly as :class:`livetemplate.Template` compiles it, so an error
found here is the error the app would raise at start: syntax, constructs LiveTemplate does
not support, unknown filters and tests. A compiled template is then linted: a ``{% for %}``
over a collection whose items have no ``data-key`` is a warning (items are then keyed by their
content, so an edit can resend a whole item where a keyed update would send one value).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import jinja2
from jinja2 import nodes

from .. import _engine
from .._compiler import Compiler, parse
from ..app import LiveApp
from ..errors import TemplateError
from ..template import Environment, Template
from ._help import HelpFormatter
from ._load import import_object

__all__ = ["TEMPLATE_SUFFIXES", "Finding", "check_file", "check_paths", "find_templates"]

#: Files that ``check DIRECTORY`` looks at (the suffixes ``mount(template=...)`` takes as paths).
TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".tmpl", ".tpl")
_SKIPPED_DIRECTORIES = frozenset({"node_modules", "__pycache__", "site-packages"})
_FOR_TAG = re.compile(r"\{%[-+]?\s*for\b")

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: where (1-based line and column), how bad, what."""

    path: str
    line: int
    column: int
    level: Level
    code: str  # syntax, unsupported, unknown-filter, unknown-test, template, unkeyed-loop, read
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.level}: {self.message}"


class _LintingCompiler(Compiler):
    """The compiler, noting each loop's keying decision as it makes it."""

    def __init__(self, environment: jinja2.Environment, engine: Any, max_depth: int) -> None:
        super().__init__(environment, engine, max_depth)
        self._loops: list[nodes.For] = []
        self._per_line: dict[tuple[str | None, int], int] = {}
        #: which ``{% for %}`` of its line each loop is (0 for the first), in source order
        self.ordinal: dict[int, int] = {}
        self.unkeyed: list[tuple[str | None, nodes.For]] = []

    def visit_For(self, node: nodes.For, builder: Any, frame: Any, scope: Any) -> None:
        if id(node) not in self.ordinal:  # a macro's loop is compiled once per call
            line = (self.template, node.lineno)
            self.ordinal[id(node)] = self._per_line.get(line, 0)
            self._per_line[line] = self.ordinal[id(node)] + 1
        self._loops.append(node)
        try:
            super().visit_For(node, builder, frame, scope)
        finally:
            self._loops.pop()

    def key(self, op: Any) -> None:
        super().key(op)
        if op.key_mode == self.engine.KEY_HASH:
            self.unkeyed.append((self.template, self._loops[-1]))


def find_templates(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The files named, and the templates below the directories named (hidden directories,
    ``node_modules`` and the like skipped), in a stable order."""
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        found = []
        for candidate in path.rglob("*"):
            parts = candidate.relative_to(path).parts
            if any(p.startswith(".") or p in _SKIPPED_DIRECTORIES for p in parts[:-1]):
                continue
            if candidate.suffix.lower() in TEMPLATE_SUFFIXES and candidate.is_file():
                found.append(candidate)
        yield from sorted(found)


def check_file(path: Path, environment: Environment | None = None, search_path: Sequence[Path] = ()) -> list[Finding]:
    """The findings for one template file. Includes and parents are looked up in
    ``environment``'s loader, else in ``search_path``, else next to the file."""
    shown = str(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return [Finding(shown, 1, 1, "error", "read", f"cannot read the template: {reason}")]
    if environment is None:
        roots = [str(p) for p in search_path] or [str(path.parent)]
        environment = Environment(loader=jinja2.FileSystemLoader(roots))
    name = _template_name(path, search_path)
    jinja_env = environment.jinja
    try:
        parse(jinja_env, source, name, str(path))
    except TemplateError as exc:
        return [_error(exc, "syntax", path, name, source, jinja_env)]
    compiler = _LintingCompiler(jinja_env, _engine.current(), environment.max_depth)
    try:
        compiler.compile(source, name, str(path))
    except TemplateError as exc:
        return [_error(exc, _error_code(exc.detail), path, name, source, jinja_env)]
    findings: dict[tuple[str, int, int], Finding] = {}
    for template, loop in compiler.unkeyed:
        if not _over_collection(loop.iter):
            continue
        where, text = _locate(template, name, path, source, jinja_env)
        line = loop.lineno
        column = _for_column(text, line, compiler.ordinal.get(id(loop), 0))
        finding = Finding(where, line, column, "warning", "unkeyed-loop", _unkeyed_message(loop))
        findings.setdefault((finding.path, finding.line, finding.column), finding)
    return sorted(findings.values(), key=lambda f: (f.path, f.line, f.column))


def _template_name(path: Path, search_path: Sequence[Path]) -> str:
    for root in search_path:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def _error_code(detail: str) -> str:
    if detail.startswith("No filter named"):
        return "unknown-filter"
    if detail.startswith("No test named"):
        return "unknown-test"
    if "not supported" in detail or "is only supported" in detail:
        return "unsupported"
    return "template"


def _error(exc: TemplateError, code: str, path: Path, name: str, source: str, env: jinja2.Environment) -> Finding:
    where, text = _locate(exc.template, name, path, source, env)
    line = exc.lineno or 1
    column = exc.column or _first_column(text, line)
    return Finding(where, line, column, "error", code, exc.detail)


def _locate(template: str | None, name: str, path: Path, source: str, env: jinja2.Environment) -> tuple[str, str]:
    """The file and source of ``template``: the checked file, or one it includes."""
    if template is None or template == name or env.loader is None:
        return str(path), source
    try:
        text, filename, _ = env.loader.get_source(env, template)
    except jinja2.TemplateNotFound:
        return template, ""
    return (filename or template), text


def _first_column(source: str, line: int) -> int:
    lines = source.splitlines()
    if 0 < line <= len(lines):
        text = lines[line - 1]
        return len(text) - len(text.lstrip()) + 1
    return 1


def _for_column(source: str, line: int, ordinal: int) -> int:
    """The column of the ``ordinal``-th ``{% for`` on ``line``."""
    lines = source.splitlines()
    if 0 < line <= len(lines):
        matches = list(_FOR_TAG.finditer(lines[line - 1]))
        if ordinal < len(matches):
            return matches[ordinal].start() + 1
    return _first_column(source, line)


def _over_collection(iterable: nodes.Node) -> bool:
    """False for literals and ``range(...)``: fixed lists whose items never change."""
    if isinstance(iterable, nodes.Const):
        return False
    if isinstance(iterable, (nodes.List, nodes.Tuple)):
        return not all(isinstance(item, nodes.Const) for item in iterable.items)
    if isinstance(iterable, nodes.Dict):
        return not all(isinstance(p.key, nodes.Const) and isinstance(p.value, nodes.Const) for p in iterable.items)
    if isinstance(iterable, nodes.Call) and isinstance(iterable.node, nodes.Name):
        return iterable.node.name != "range"
    if isinstance(iterable, nodes.Filter) and iterable.node is not None:
        return _over_collection(iterable.node)
    return True


def _describe(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_describe(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return f"{_describe(node.node)}[{node.arg.value!r}]"
    if isinstance(node, nodes.Filter) and node.node is not None:
        return f"{_describe(node.node)}|{node.name}"
    if isinstance(node, nodes.Call):
        return f"{_describe(node.node)}(...)"
    return "a collection"


def _unkeyed_message(loop: nodes.For) -> str:
    item = loop.target.name if isinstance(loop.target, nodes.Name) else "item"
    return (
        f"loop over {_describe(loop.iter)} without data-key on its item's root element: items are "
        f'matched by content, so an edit can resend a whole item (add data-key="{{{{ {item}.id }}}}")'
    )


# -- running over many files -------------------------------------------------------------------


@dataclass
class Report:
    """The findings over every file checked."""

    files: int
    findings: list[Finding]

    @property
    def errors(self) -> int:
        return sum(f.level == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level == "warning" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": [asdict(f) for f in self.findings],
        }


def check_paths(
    paths: Sequence[str | Path],
    *,
    environment: Environment | None = None,
    search_path: Sequence[Path] = (),
    progress: TextIO | None = None,
) -> Report:
    """Check every template under ``paths``; with ``progress``, show how far it got there."""
    files = list(find_templates(paths))
    findings: list[Finding] = []
    seen: set[Finding] = set()
    width = len(str(len(files)))
    for done, path in enumerate(files, 1):
        if not path.exists():
            findings.append(Finding(str(path), 1, 1, "error", "read", "no such file or directory"))
        else:
            for finding in check_file(path, environment, search_path):
                if finding not in seen:  # a warning in an included file is reported once
                    seen.add(finding)
                    findings.append(finding)
        if progress is not None:
            progress.write(f"\r[{done:>{width}}/{len(files)}] {_clip(str(path), 60):<60}")
            progress.flush()
    if progress is not None and files:
        progress.write("\r" + " " * (width * 2 + 64) + "\r")
        progress.flush()
    return Report(len(files), findings)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def _summary(report: Report) -> str:
    files = f"{report.files} template{'s' if report.files != 1 else ''} checked"
    if not report.findings:
        return f"{files}: no problems"
    counts = []
    if report.errors:
        counts.append(f"{report.errors} error{'s' if report.errors != 1 else ''}")
    if report.warnings:
        counts.append(f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    return f"{files}: {', '.join(counts)}"


def environment_from(target: str) -> Environment:
    """The template environment ``MODULE:ATTRIBUTE`` names: an :class:`Environment`, a
    :class:`Template` or a mounted app (its template's environment)."""
    found = import_object(target)
    if isinstance(found, LiveApp):
        return found.template.environment
    if isinstance(found, Template):
        return found.environment
    if isinstance(found, Environment):
        return found
    raise ValueError(f"{target} is a {type(found).__name__}, not an Environment, a Template or an app")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        formatter_class=HelpFormatter,
        help="validate templates: syntax, supported constructs, filters, keyed loops",
        description=(
            "Compile each template as the app would and report what would fail, one line per finding "
            "(file:line:column: level: message). Directories are searched for "
            f"{', '.join('*' + s for s in TEMPLATE_SUFFIXES)}. Exit status 1 when there are errors."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="template files or directories")
    parser.add_argument(
        "--environment",
        metavar="MODULE:ATTRIBUTE",
        help="the Environment (or Template, or app) whose loader, filters, tests and globals to use",
    )
    parser.add_argument(
        "-I",
        "--search-path",
        metavar="DIR",
        action="append",
        type=Path,
        default=[],
        help="where includes and parents are looked up (repeatable) [default: next to each file]",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 on warnings too")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr [default: when stderr is a terminal]",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.environment and args.search_path:
        raise SystemExit("livetemplate check: error: --environment and --search-path exclude each other")
    environment = None
    if args.environment:
        try:
            environment = environment_from(args.environment)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SystemExit(f"livetemplate check: error: {exc}") from None
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = check_paths(
        args.paths,
        environment=environment,
        search_path=args.search_path,
        progress=sys.stderr if show_progress else None,
    )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for finding in report.findings:
            print(finding)
        sys.stdout.flush()
        print(_summary(report), file=sys.stderr)
    failed = report.errors or (args.strict and report.warnings)
    return 1 if failed else 0
