"""Templates: Jinja2 syntax, rendered to HTML or to LiveTemplate trees and updates."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import msgspec

from . import _engine
from ._compiler import Compiler
from .errors import TemplateError

__all__ = ["Environment", "Held", "Renderer", "Template"]

#: Recursion allowed through macros, includes and recursive loops before rendering fails.
DEFAULT_MAX_DEPTH = 64

LoaderSpec = jinja2.BaseLoader | str | os.PathLike[str] | Mapping[str, str] | None


def _loader(loader: LoaderSpec) -> jinja2.BaseLoader | None:
    if loader is None or isinstance(loader, jinja2.BaseLoader):
        return loader
    if isinstance(loader, Mapping):
        return jinja2.DictLoader(dict(loader))
    return jinja2.FileSystemLoader(os.fspath(loader))


class Environment:
    """Configuration shared by templates: where included and extended templates are
    loaded from, custom filters, tests and globals, and how undefined names behave.

    Register filters, tests and globals before creating templates: names are checked
    when a template is compiled. Filters and tests must be pure functions of their
    arguments (LiveTemplate skips re-evaluating slots whose inputs did not change).
    """

    def __init__(
        self,
        *,
        loader: LoaderSpec = None,
        strict_undefined: bool = False,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        tests: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        trim_blocks: bool = False,
        lstrip_blocks: bool = False,
        keep_trailing_newline: bool = False,
    ) -> None:
        self.jinja = jinja2.Environment(
            autoescape=True,
            loader=_loader(loader),
            undefined=jinja2.StrictUndefined if strict_undefined else jinja2.Undefined,
            trim_blocks=trim_blocks,
            lstrip_blocks=lstrip_blocks,
            keep_trailing_newline=keep_trailing_newline,
        )
        self.jinja.filters.update(filters or {})
        self.jinja.tests.update(tests or {})
        self.jinja.globals.update(globals or {})
        self.max_depth = max_depth
        self._cache: dict[tuple[str, str], Template] = {}

    @property
    def filters(self) -> dict[str, Any]:
        return self.jinja.filters

    @property
    def tests(self) -> dict[str, Any]:
        return self.jinja.tests

    @property
    def globals(self) -> dict[str, Any]:
        return self.jinja.globals

    def from_string(self, source: str, name: str | None = None) -> Template:
        """Compile ``source``; ``name`` is used in error messages."""
        return Template(source, name=name, environment=self)

    def get_template(self, name: str) -> Template:
        """Load and compile the template ``name`` through the loader (cached)."""
        key = (name, _engine.implementation())
        template = self._cache.get(key)
        if template is None:
            if self.jinja.loader is None:
                raise TemplateError("no loader configured", template=name)
            try:
                source, filename, _ = self.jinja.loader.get_source(self.jinja, name)
            except jinja2.TemplateNotFound:
                raise TemplateError("template not found", template=name) from None
            template = Template(source, name=name, environment=self, filename=filename)
            self._cache[key] = template
        return template


class Template:
    """A compiled template.

    ``render(data)`` returns the HTML; ``renderer()`` returns a :class:`Renderer` that
    produces the LiveTemplate tree for one client and then only what changes. ``data``
    is a mapping, a ``msgspec.Struct`` or a dataclass instance whose fields are the
    template's top-level names.
    """

    def __init__(
        self,
        source: str,
        *,
        name: str | None = None,
        loader: LoaderSpec = None,
        strict_undefined: bool = False,
        environment: Environment | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        tests: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
        filename: str | None = None,
    ) -> None:
        if environment is None:
            environment = Environment(
                loader=loader,
                strict_undefined=strict_undefined,
                filters=filters,
                tests=tests,
                globals=globals,
            )
        elif loader is not None or strict_undefined or filters or tests or globals:
            raise TypeError("with a shared environment, configure loader, filters, tests and globals on it")
        self.environment = environment
        self.name = name
        self.source = source
        self._engine = _engine.current()
        compiler = Compiler(environment.jinja, self._engine, environment.max_depth)
        self._program = compiler.compile(source, name, filename)
        #: The names the template (with what it includes) looks up in its data and ``extra``.
        self.names = compiler.context_names()
        self._empty = Held(self._engine.View())  # what a new client holds: nothing (shared by all)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        environment: Environment | None = None,
        strict_undefined: bool = False,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        tests: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
    ) -> Template:
        """Compile the template file at ``path``; includes and parents are looked up in
        its directory unless ``environment`` has a loader."""
        path = Path(path)
        source = path.read_text(encoding="utf-8")
        if environment is None:
            environment = Environment(
                loader=path.parent,
                strict_undefined=strict_undefined,
                filters=filters,
                tests=tests,
                globals=globals,
            )
        return cls(source, name=path.name, environment=environment, filename=str(path))

    def render(self, data: Any, extra: Mapping[str, Any] | None = None) -> str:
        """The complete HTML for ``data``. Names in ``extra`` are visible to the template
        too, ahead of the data's fields (the live runtime passes its ``lvt`` helper so)."""
        _check_data(data)
        return self._engine.render_html(self._program, data, _extra(extra))

    def renderer(self) -> Renderer:
        """A renderer for one client."""
        return Renderer(self)

    def __repr__(self) -> str:
        return f"<Template {self.name or '<string>'}>"


class Held:
    """What one or more clients hold of a template: an engine view, how many renderers
    (and render batches, see :mod:`.rendering`) share it, and a version that changes with
    every render on it in place."""

    __slots__ = ("__weakref__", "sharers", "version", "view")

    def __init__(self, view: Any) -> None:
        self.view = view
        self.sharers = 1
        self.version = 0


class Renderer:
    """One client's view of a template: the first :meth:`render` returns the complete
    tree (statics included), later calls only the minimal update (``{}`` when nothing
    changed). :meth:`reset` forgets what the client holds, as after a reconnect.

    Renderers whose clients hold equal states may share one (:meth:`share`); a render
    on a shared state copies it first, so the others keep theirs."""

    __slots__ = ("_engine", "_program", "held", "template")

    def __init__(self, template: Template) -> None:
        self.template = template
        self._program = template._program
        self._engine = template._engine
        self.held = template._empty
        self.held.sharers += 1

    def render(self, data: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The tree (first call) or update for ``data``; ``extra`` as in :meth:`Template.render`."""
        _check_data(data)
        held = self.held
        if held.sharers > 1:
            held.sharers -= 1
            held = self.held = Held(self._engine.clone_view(held.view))
        else:
            held.version += 1
        return self._engine.render_tree(self._program, data, held.view, _extra(extra))

    def reset(self) -> None:
        """Forget what the client holds: the next render is a complete tree."""
        self.take(self.template._empty)

    def share(self, held: Held) -> bool:
        """Hold ``held`` from now on, if it holds what this renderer's client holds."""
        if held is self.held:
            return True
        if not self._engine.same_view(held.view, self.held.view):
            return False
        self.take(held)
        return True

    def take(self, held: Held) -> None:
        """Hold ``held`` from now on: its client was sent what brings it there."""
        if held is not self.held:
            self.held.sharers -= 1
            held.sharers += 1
            self.held = held


def _extra(extra: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(extra) if extra is not None and type(extra) is not dict else extra


def _check_data(data: Any) -> None:
    if isinstance(data, (msgspec.Struct, Mapping)):  # PERF: the Struct check first (Mapping's is slow)
        return
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return
    kinds = "a mapping, a msgspec.Struct or a dataclass instance"
    raise TypeError(f"template data must be {kinds}, not {type(data).__name__}")
