"""Dependency analysis: the inputs each slot's output is a pure function of.

A dependency is an attribute path rooted at a frame value or at a name the context
resolves. The engine reads a slot's paths on every render and evaluates the slot again
only when one of them reads a different scalar; a path whose value is not a scalar (a
container, an object), or an input no path can stand for, makes the slot volatile.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import Frame
from jinja2.idtracking import VAR_LOAD_ALIAS, VAR_LOAD_PARAMETER, VAR_LOAD_RESOLVE
from jinja2.utils import _PassArg

from .._engine import Engine
from .scopes import CScope
from .syntax import is_name, path, stored_names

#: Filters and tests whose result is not a function of their arguments.
IMPURE = frozenset({"random"})

Attrs = tuple[tuple[bool, Any], ...]


class Volatile:
    """Marks a dependency set that no snapshot can stand for."""


VOLATILE = Volatile()

#: What ``caller`` refers to inside a macro: a body known only at the call site.
CALLER = object()


@dataclass(frozen=True)
class RefDep:
    """A path rooted at a frame value: ``ident`` in scope ``owner``."""

    owner: CScope
    ident: str
    attrs: Attrs


@dataclass(frozen=True)
class CtxDep:
    """A path rooted at a name the context of ``owner`` resolves."""

    owner: CScope
    name: str
    attrs: Attrs


Dep = RefDep | CtxDep | Volatile


class Dependencies:
    """The dependencies of ops and blocks, what calls statically refer to, and the gates
    built from both once the frame layouts are final."""

    def __init__(self, environment: jinja2.Environment, engine: Engine) -> None:
        self.env = environment
        self.engine = engine
        self.ops: dict[int, list[Dep]] = {}  # id(op) -> its dependencies
        self.blocks: dict[int, list[Dep]] = {}  # id(block) -> the dependencies of its ops
        self.macros: dict[int, list[Dep]] = {}  # id(MacroSpec) -> its body's, at its definition
        self.gated: list[tuple[Any, CScope]] = []
        self.item_gated: list[tuple[Any, CScope]] = []
        # (owner scope id, reference) -> (MacroSpec, branch path of its definition), or None
        # once something else is stored there
        self.definitions: dict[tuple[int, str], tuple[Any, tuple[int, ...]] | None] = {}
        self.branch: tuple[int, ...] = ()  # the {% if %} branches being compiled, outermost first
        self.branch_ids = itertools.count()
        # (block scope id, reference of its ``super``) -> the op rendering the parent block
        self.super_ops: dict[tuple[int, str], Any] = {}

    # -- what calls refer to --------------------------------------------------------

    def define(self, spec: Any, ident: str, scope: CScope) -> None:
        """``ident`` now holds the macro ``spec``."""
        self.definitions[(id(scope.owner(ident)), ident)] = (spec, self.branch)

    def stored(self, target: nodes.Expr, frame: Frame, scope: CScope) -> None:
        """Names assigned by ``target`` no longer statically refer to a macro."""
        for name in stored_names(target):
            ident = frame.symbols.ref(name)
            self.definitions[(id(scope.owner(ident)), ident)] = None

    @contextmanager
    def in_branch(self) -> Iterator[None]:
        """Compiling a branch of an ``if``: what is defined in it is known only inside it."""
        saved = self.branch
        self.branch = (*saved, next(self.branch_ids))
        try:
            yield
        finally:
            self.branch = saved

    def macro_callee(self, callee: nodes.Expr, frame: Frame, scope: CScope) -> Any:
        """The MacroSpec a call expression statically refers to, if any: a macro defined
        in this template's scopes, stored over by nothing since, and not in an ``if``
        branch the call is outside of (``CALLER`` for ``caller`` in a macro)."""
        if not isinstance(callee, nodes.Name):
            return None
        ident = frame.symbols.find_ref(callee.name)
        if ident is None:
            return None
        if callee.name == "caller" and frame.symbols.find_load(ident) == (VAR_LOAD_PARAMETER, None):
            return CALLER
        try:
            owner = scope.owner(ident)
        except AssertionError:
            return None
        found = self.definitions.get((id(owner), ident))
        if found is None:
            return None
        spec, branch = found
        return spec if self.branch[: len(branch)] == branch else None

    def super_op(self, n: nodes.Node, frame: Frame, scope: CScope) -> Any:
        """The op rendering the parent block, if ``n`` is the ``super`` of the block being compiled."""
        if not is_name(n, "super"):
            return None
        ident = frame.symbols.find_ref("super")
        return None if ident is None else self.super_ops.get((id(scope.owner(ident)), ident))

    # -- expressions ----------------------------------------------------------------

    def expr(self, node: nodes.Node, frame: Frame, scope: CScope) -> list[Dep]:
        """The paths an expression reads, rooted at references of ``scope``'s chain.

        A call contributes its arguments and its callee: a macro known statically (or
        ``super``) contributes the dependencies of its body (``caller`` is volatile: its
        body is known only at the call site); a method of a value (``x.meth(...)``)
        depends on the receiver ``x``, since only exact scalars are remembered and their
        methods are pure; any other callee is a value like any other.
        """
        deps: list[Dep] = []

        def add(name: str, attrs: Attrs) -> None:
            ident = frame.symbols.find_ref(name)
            if ident is None:
                deps.append(VOLATILE)
            else:
                deps.append(RefDep(scope.owner(ident), ident, attrs))

        def callee(n: nodes.Expr) -> None:
            spec = self.macro_callee(n, frame, scope)
            parent = self.super_op(n, frame, scope)
            if parent is not None:
                deps.extend(self.ops[id(parent)])
            elif spec is CALLER:
                deps.append(VOLATILE)
            elif spec is not None:
                deps.extend(self.macros[id(spec)])
            else:
                p = path(n)
                if p is not None and p[1]:
                    add(p[0], p[1][:-1])
                else:
                    visit(n)

        def visit(n: nodes.Node) -> None:
            p = path(n)
            if p is not None:
                add(*p)
                return
            if isinstance(n, (nodes.Filter, nodes.Test)) and self.impure(n):
                deps.append(VOLATILE)
            if isinstance(n, nodes.Call):
                callee(n.node)
                for child in itertools.chain(n.args, n.kwargs):
                    visit(child)
                for extra in (n.dyn_args, n.dyn_kwargs):
                    if extra is not None:
                        visit(extra)
                return
            if isinstance(n, nodes.NSRef):
                ident = frame.symbols.find_ref(n.name)
                if ident is not None:
                    deps.append(RefDep(scope.owner(ident), ident, ((True, n.attr),)))
                return
            for child in n.iter_child_nodes():
                visit(child)

        visit(node)
        return deps

    def impure(self, n: nodes.Filter | nodes.Test) -> bool:
        """Whether a filter or test may not be a function of its arguments: ``random``, or
        one of the application's that takes the context."""
        table = self.env.filters if isinstance(n, nodes.Filter) else self.env.tests
        func = table.get(n.name)
        return n.name in IMPURE or (
            func is not None
            and _PassArg.from_obj(func) is _PassArg.context  # type: ignore[type-var]
            and getattr(func, "__module__", "") != "jinja2.filters"
        )

    # -- moving between scopes ------------------------------------------------------

    def translate(self, deps: Iterable[Dep], inner: CScope, outer: CScope) -> list[Dep]:
        """Re-root dependencies found in ``inner`` (a scope nested in ``outer``) at
        ``outer``: values loaded on entry to a nested frame become the paths they load
        from; values bound inside (loop targets, assignments) are derived from other
        dependencies and drop out."""
        moved = (self._translate(dep, outer) for dep in deps)
        return [dep for dep in moved if dep is not None]

    def _translate(self, dep: Dep, outer: CScope) -> Dep | None:
        while True:
            if isinstance(dep, Volatile):
                return dep
            if isinstance(dep, RefDep):
                if outer.is_within(dep.owner):
                    return dep
                load = dep.owner.symbols.find_load(dep.ident)
                if load is None or load[0] not in (VAR_LOAD_RESOLVE, VAR_LOAD_ALIAS):
                    return None
                if load[0] == VAR_LOAD_RESOLVE:
                    dep = CtxDep(dep.owner, load[1], dep.attrs)
                else:
                    assert dep.owner.parent is not None
                    dep = RefDep(dep.owner.parent.owner(load[1]), load[1], dep.attrs)
                continue
            # a context name: the same context until a scope with a context of its own
            root = dep.owner.root()
            if outer.is_within(root):
                return CtxDep(outer, dep.name, dep.attrs)
            boundary = root.boundary
            if boundary is None:
                return dep
            if not boundary.inherits:
                return None
            ident = boundary.locals.get(dep.name)
            if ident is not None:
                dep = RefDep(boundary.outer.owner(ident), ident, dep.attrs)
            else:
                dep = CtxDep(boundary.outer, dep.name, dep.attrs)

    # -- gates ----------------------------------------------------------------------

    def gate(self, op: Any, scope: CScope) -> None:
        """Give ``op`` a gate over its dependencies, built when the frame layouts are final."""
        self.gated.append((op, scope))

    def gate_items(self, block: Any, scope: CScope) -> None:
        """Give a loop body a gate over its dependencies, read for every item."""
        self.item_gated.append((block, scope))

    def build_gates(self) -> None:
        for op, scope in self.gated:
            op.gate = self.build_gate(self.ops[id(op)], scope)
        for block, scope in self.item_gated:
            block.gate = self.build_gate(self.blocks[id(block)], scope)

    def build_gate(self, deps: Iterable[Dep], scope: CScope) -> Any:
        paths = []
        seen = set()
        for dep in self.translate(deps, scope, scope):
            if isinstance(dep, Volatile):
                return None
            if isinstance(dep, RefDep):
                hops, index = scope.locate(dep.ident)
                key: tuple[Any, ...] = (hops, index, None, dep.attrs)
            else:
                key = (-1, -1, dep.name, dep.attrs)
            if key not in seen:
                seen.add(key)
                paths.append(self.engine.Path(*key))
        return self.engine.Gate(tuple(paths))
