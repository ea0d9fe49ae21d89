"""Compile a Jinja2 template into a LiveTemplate program.

Jinja2 parses the source. Statements are compiled here into the engine's blocks, slots
and frame layouts, mirroring how Jinja's own code generator scopes names (its ``Frame``
and ``Symbols`` are reused as they are). Every expression is turned into Python source
by Jinja's own ``CodeGenerator``, so filters, tests, calls, undefined handling and
operators behave exactly as in Jinja; each expression becomes a small function of the
runtime frame.

Alongside, the compiler works out each slot's dependencies: the attribute paths (rooted
at a frame value or a context name) that its output is a pure function of. The engine
skips a slot, a branch or a loop item whose paths read the same scalar values again.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, find_undeclared, optimizeconst
from jinja2.idtracking import VAR_LOAD_ALIAS, VAR_LOAD_PARAMETER, VAR_LOAD_RESOLVE, Symbols
from jinja2.nodes import EvalContext
from jinja2.utils import _PassArg

from ._keyattr import find_key_attribute
from ._markup import TEXT, VERBATIM, slot_contexts
from .errors import TemplateError
from .wire import BRANCH_MARKER_BASE

_ROOT_TAGS = ("<root>", "</root>")

#: Filters and tests whose result is not a function of their arguments.
_IMPURE = frozenset({"random"})


class _Volatile:
    """Marks a dependency set that no snapshot can stand for."""


VOLATILE = _Volatile()


@dataclass(frozen=True)
class RefDep:
    """A path rooted at a frame value: ``ident`` in scope ``owner``."""

    owner: CScope
    ident: str
    attrs: tuple[tuple[bool, Any], ...]


@dataclass(frozen=True)
class CtxDep:
    """A path rooted at a name the context of ``owner`` resolves."""

    owner: CScope
    name: str
    attrs: tuple[tuple[bool, Any], ...]


Dep = RefDep | CtxDep | _Volatile


class CScope:
    """Compile-time view of one runtime frame: a Jinja ``Symbols`` scope and the index of
    each of its references in the frame's value list."""

    def __init__(
        self,
        symbols: Symbols,
        parent: CScope | None,
        runtime: Any,
        boundary: Boundary | None = None,
    ) -> None:
        self.symbols = symbols
        self.parent = parent
        self.runtime = runtime
        self.boundary = boundary
        self.indexes: dict[str, int] = {}

    @property
    def level(self) -> int:
        return self.symbols.level

    def index(self, ident: str) -> int:
        try:
            return self.indexes[ident]
        except KeyError:
            i = self.indexes[ident] = len(self.indexes)
            return i

    def owner(self, ident: str) -> CScope:
        """The scope (this one or an enclosing one) that holds ``ident``."""
        level = int(ident.split("_", 2)[1])
        scope: CScope | None = self
        while scope is not None and scope.level != level:
            scope = scope.parent
        if scope is None:  # pragma: no cover - Jinja's symbol tables guarantee the owner
            raise AssertionError(f"unknown reference {ident}")
        return scope

    def locate(self, ident: str) -> tuple[int, int]:
        """``(hops, index)`` of ``ident`` seen from a frame of this scope."""
        owner = self.owner(ident)
        return self.level - owner.level, owner.index(ident)

    def is_within(self, other: CScope) -> bool:
        """Whether ``other`` is this scope or one of its enclosing frames."""
        scope: CScope | None = self
        while scope is not None:
            if scope is other:
                return True
            scope = scope.parent
        return False


@dataclass
class Boundary:
    """Where a scope with a context of its own (an included template, a block) sits:
    the scope it is rendered from, and the locals it was given (name -> reference)."""

    outer: CScope
    locals: dict[str, str]
    inherits: bool = True  # False for ``without context``: only the globals are visible


@dataclass
class Unit:
    """A compiled template body: its root block and root scope."""

    name: str | None
    block: Any
    scope: CScope | None = None
    deps: list[Dep] = field(default_factory=list)


class _Builder:
    """Accumulates the statics and ops of one block."""

    def __init__(self) -> None:
        self.statics: list[str] = [""]
        self.ops: list[Any] = []
        self.nslots = 0

    def text(self, s: str) -> None:
        self.statics[-1] += s

    def slot(self, op: Any) -> None:
        op.index = self.nslots
        self.nslots += 1
        self.ops.append(op)
        self.statics.append("")

    def statement(self, op: Any) -> None:
        op.index = -1
        self.ops.append(op)


class Compiler:
    """Compiles one template (with what it includes and extends) into a program."""

    def __init__(
        self,
        environment: jinja2.Environment,
        engine: ModuleType,
        max_depth: int,
    ) -> None:
        self.env = environment
        self.engine = engine
        self.max_depth = max_depth
        self.gen = _ExpressionGenerator(environment, None, None)
        self.access = engine.Access(environment)
        self.template: str | None = None
        self.uids = itertools.count()
        self.fn_ids = itertools.count()
        self.scopes: list[CScope] = []
        self.units: dict[str, Unit] = {}
        self.op_deps: dict[int, list[Dep]] = {}
        self.block_deps: dict[int, list[Dep]] = {}
        self.gated: list[tuple[Any, CScope]] = []
        self.loop_bodies: list[tuple[Any, CScope]] = []
        # (owner scope id, reference) -> (MacroSpec, branch path of its definition), or None
        # once something else is stored there: what a call statically refers to
        self.definitions: dict[tuple[int, str], tuple[Any, tuple[int, ...]] | None] = {}
        self.branch: tuple[int, ...] = ()  # the {% if %} branches being compiled, outermost first
        self.branch_ids = itertools.count()
        self.macro_deps: dict[int, list[Dep]] = {}
        self.recursive_loops: dict[tuple[int, str], Any] = {}  # (scope id, loop ref) -> K_LOOP op
        self.block_chain: dict[str, list[tuple[str | None, nodes.Block]]] = {}
        self.super_chains: list[list[tuple[str | None, nodes.Block]]] = []
        # (block scope id, reference of its ``super``) -> the op rendering the parent block,
        # for ``super()`` inside expressions
        self.super_ops: dict[tuple[int, str], Any] = {}
        self.side_effects: set[int] = set()  # ids of assignments that change a namespace
        self.namespace = self._namespace()

    # -- entry point --------------------------------------------------------------

    def compile(self, source: str, name: str | None, filename: str | None) -> Any:
        tree = parse(self.env, source, name, filename)
        unit = self.unit(tree, name, filename)
        self.finish()
        assert unit.scope is not None
        return self.engine.Program(name, self.env, self.access, unit.block, unit.scope.runtime, self.max_depth)

    def unit(self, tree: nodes.Template, name: str | None, filename: str | None) -> Unit:
        """Compile a whole template (the root or an included one)."""
        saved = (self.template, self.gen.name, self.gen.filename)
        self.template = name
        self.gen.name, self.gen.filename = name, filename
        try:
            return self._unit(tree, name)
        finally:
            self.template, self.gen.name, self.gen.filename = saved

    def _unit(self, tree: nodes.Template, name: str | None, boundary: Boundary | None = None) -> Unit:
        if "self" in find_undeclared(tree.body, ("self",)):
            self.fail("'self' (block references) is not supported; use blocks or macros", tree)
        self.check_names(tree, getattr(tree, "lt_source", ""))
        unit = Unit(name, self.new_block())
        if name is not None:
            self.units[name] = unit  # until compiled: an include of it is recursive
        frame = Frame(EvalContext(self.env, name))
        frame.symbols.analyze_node(tree)
        frame.toplevel = frame.rootlevel = True
        scope = self.new_scope(frame.symbols, None, boundary)
        unit.scope = scope
        extends = [n for n in tree.body if isinstance(n, nodes.Extends)]
        if tree.find(nodes.Extends) is not None and not extends:
            self.fail("{% extends %} is only supported at the top level of a template", tree.find(nodes.Extends))
        for block in tree.find_all(nodes.Block):
            self.block_chain.setdefault(block.name, [])
        builder = _Builder()
        parent: nodes.Extends | None = None
        for node in tree.body:
            if isinstance(node, nodes.Extends):
                if parent is not None:
                    self.fail("a template can extend only one parent", node)
                parent = node
                # a child template renders only through its parent's blocks
                frame.require_output_check = True
                continue
            if parent is not None and isinstance(node, nodes.Block):
                continue
            self.statement(node, builder, frame, scope)
        if parent is not None:
            # as in Jinja, the parent renders once the child's top-level code has run
            self.extend(parent, builder, frame, scope, tree)
        self.fill_block(unit.block, builder, scope)
        unit.deps = self.block_deps[id(unit.block)]
        if name is not None:
            del self.units[name]
        return unit

    # -- blocks -------------------------------------------------------------------

    def new_block(self) -> Any:
        return self.engine.Block(next(self.uids), [""], [])

    def new_scope(self, symbols: Symbols, parent: CScope | None, boundary: Boundary | None = None) -> CScope:
        scope = CScope(symbols, parent, self.engine.Scope(), boundary)
        self.scopes.append(scope)
        return scope

    def block(self, body: Iterable[nodes.Node], frame: Frame, scope: CScope, *, items: bool = False) -> Any:
        builder = _Builder()
        for node in body:
            self.statement(node, builder, frame, scope)
        block = self.new_block()
        self.fill_block(block, builder, scope)
        block.slot_gates = not items
        return block

    def fill_block(self, block: Any, builder: _Builder, scope: CScope) -> None:
        block.statics = list(builder.statics)
        block.wire_statics = [self.engine.guard_static(s) for s in builder.statics]
        block.ops = list(builder.ops)
        block.nslots = builder.nslots
        self.seams(block)
        deps: list[Dep] = []
        for op in builder.ops:
            deps.extend(self.op_deps.get(id(op), ()))
            if op.kind in (self.engine.K_LOOP, self.engine.K_RECURSE, self.engine.K_CALL) or (
                op.kind in (self.engine.K_COND, self.engine.K_SCOPE)
                and any(b.has_range for b in self.nested_blocks(op))
            ):
                block.has_range = True
        self.block_deps[id(block)] = deps

    def seams(self, block: Any) -> None:
        """Text slots whose value could form ``<root>``/``</root>`` (which the client
        deletes) with the statics around them get a seam: the engine respells such values."""
        engine = self.engine
        contexts = slot_contexts(block.statics)
        for op in block.ops:
            if op.kind not in (engine.K_OUTPUT, engine.K_TEXT, engine.K_CALL) or contexts[op.index] == VERBATIM:
                continue
            left = block.wire_statics[op.index][-6:]
            right = block.wire_statics[op.index + 1][:6]
            if any(
                left.endswith(tag[:k]) or right.startswith(tag[k:]) for tag in _ROOT_TAGS for k in range(1, len(tag))
            ):
                op.seam = (left, right, contexts[op.index] == TEXT)

    def nested_blocks(self, op: Any) -> list[Any]:
        blocks = list(op.blocks)
        for b in (op.block, op.else_block):
            if b is not None:
                blocks.append(b)
        return blocks

    # -- statements ---------------------------------------------------------------

    def statement(self, node: nodes.Node, builder: _Builder, frame: Frame, scope: CScope) -> None:
        visit = getattr(self, f"visit_{type(node).__name__}", None)
        if visit is None:
            self.fail(f"{{% {_tag_name(node)} %}} is not supported", node)
        visit(node, builder, frame, scope)

    def visit_Output(self, node: nodes.Output, builder: _Builder, frame: Frame, scope: CScope) -> None:
        if frame.require_output_check:
            return
        finalize = self.gen._make_finalize()
        for child in node.nodes:
            try:
                if not (finalize.const or isinstance(child, nodes.TemplateData)):
                    raise nodes.Impossible()
                const = self.gen._output_child_to_const(child, frame, finalize)
            except (nodes.Impossible, Exception):
                self.dynamic_output(child, builder, frame, scope)
            else:
                builder.text(const)

    def dynamic_output(self, child: nodes.Expr, builder: _Builder, frame: Frame, scope: CScope) -> None:
        if isinstance(child, nodes.Call) and not child.args and not child.kwargs and _is_name(child.node, "super"):
            self.super_call(child, builder, frame, scope)
            return
        if isinstance(child, nodes.Call) and _is_name(child.node, "loop"):
            ident = frame.symbols.find_ref("loop")
            loop_op = self.recursive_loops.get((id(scope.owner(ident)), ident)) if ident else None
            if loop_op is not None and len(child.args) == 1 and not child.kwargs:
                self.recursion(child, loop_op, builder, frame, scope)
                return
        if isinstance(child, nodes.Call) and self.macro_callee(child.node, frame, scope) is not None:
            self.call(child, None, builder, frame, scope, escape=True)
            return
        op = self.op(self.engine.K_OUTPUT, child)
        source = self.output_source(child, frame)
        op.fn = self.function("F, C", [f"return {source}"], [child], frame, scope)
        self.op_deps[id(op)] = self.expr_deps(child, frame, scope)
        self.gate(op, scope)
        builder.slot(op)

    def output_source(self, child: nodes.Expr, frame: Frame) -> str:
        """``escape_text(value)``: Jinja's ``escape(value)`` (with the environment's
        finalize, if any) as a plain string."""
        finalize = self.gen._make_finalize()

        def pre() -> None:
            self.gen.write("escape_text(")
            if finalize.src is not None:
                self.gen.write(finalize.src)

        return self.source(child, frame, pre=pre, post=lambda: self.gen._output_child_post(child, frame, finalize))

    def visit_If(self, node: nodes.If, builder: _Builder, frame: Frame, scope: CScope) -> None:
        if_frame = frame.soft()
        op = self.op(self.engine.K_COND, node)
        tests = [node.test] + [elif_.test for elif_ in node.elif_]
        bodies = [node.body] + [elif_.body for elif_ in node.elif_]
        if node.else_:
            bodies.append(node.else_)
        op.tests = tuple(
            self.function("F, C", [f"return {self.source(t, if_frame)}"], [t], if_frame, scope) for t in tests
        )
        op.blocks = tuple(self.branch_block(body, if_frame, scope) for body in bodies)
        deps: list[Dep] = []
        for test in tests:
            deps.extend(self.expr_deps(test, if_frame, scope))
        for block in op.blocks:
            deps.extend(self.block_deps[id(block)])
            if any(sub.kind == self.engine.K_ASSIGN for sub in self.walk_soft(block)):
                deps.append(VOLATILE)  # assignments leak out of an if: always run it
        ranged = [b for b in op.blocks if b.has_range]
        if len(ranged) > 1:
            for b in ranged:
                b.marker = str(BRANCH_MARKER_BASE + b.uid)
        self.op_deps[id(op)] = deps
        self.gate(op, scope)
        builder.slot(op)

    def branch_block(self, body: Iterable[nodes.Node], frame: Frame, scope: CScope) -> Any:
        """A branch of an ``if``: what is defined in it is known only inside it."""
        saved = self.branch
        self.branch = (*saved, next(self.branch_ids))
        try:
            return self.block(body, frame, scope)
        finally:
            self.branch = saved

    def walk_soft(self, block: Any) -> Iterable[Any]:
        """Ops of ``block`` and of the branches nested in it (same frame)."""
        for op in block.ops:
            yield op
            if op.kind == self.engine.K_COND:
                for b in op.blocks:
                    yield from self.walk_soft(b)

    def visit_For(self, node: nodes.For, builder: _Builder, frame: Frame, scope: CScope) -> None:
        engine = self.engine
        loop_frame = frame.inner()
        loop_frame.loop_frame = True
        test_frame = frame.inner()
        else_frame = frame.inner()
        extended = (
            node.recursive
            or "loop" in find_undeclared(node.iter_child_nodes(only=("body",)), ("loop",))
            or any(block.scoped for block in node.find_all(nodes.Block))
        )
        loop_ref = loop_frame.symbols.declare_parameter("loop") if extended else None
        loop_frame.symbols.analyze_node(node, for_branch="body")
        if node.else_:
            else_frame.symbols.analyze_node(node, for_branch="else")
        for name in node.find_all(nodes.Name):
            if name.ctx == "store" and name.name == "loop":
                self.fail("Can't assign to special loop variable in for-loop target", name)

        op = self.op(engine.K_LOOP, node)
        body_scope = self.new_scope(loop_frame.symbols, scope)
        op.scope = body_scope.runtime
        op.fn = self.function("F, C", [f"return {self.source(node.iter, frame)}"], [node.iter], frame, scope)
        self.bind_target(op, node.target, loop_frame, body_scope)
        deps = list(self.expr_deps(node.iter, frame, scope))
        if node.test is not None:
            test_frame.symbols.analyze_node(node, for_branch="test")
            test_scope = self.new_scope(test_frame.symbols, scope)
            op.test_scope = test_scope.runtime
            op.test = self.function(
                "F, C", [f"return {self.source(node.test, test_frame)}"], [node.test], test_frame, test_scope
            )
            # as in Jinja, an item that passes is the target packed again (a tuple for a tuple target)
            target = self.target_source(node.target, test_frame, test_scope)
            op.test_bind = self.function(
                "F, value", [f"{target} = value", f"return {target}"], [], test_frame, test_scope
            )
            deps.extend(self.expr_deps(node.test, test_frame, test_scope))
        if extended:
            assert loop_ref is not None
            op.extended = True
            op.loop_index = body_scope.index(loop_ref)
            if node.recursive:
                self.recursive_loops[(id(body_scope), loop_ref)] = op
                deps.append(VOLATILE)
        op.block = self.block(node.body, loop_frame, body_scope, items=True)
        self.loop_bodies.append((op.block, body_scope))
        deps.extend(self.block_deps[id(op.block)])
        if node.else_:
            else_scope = self.new_scope(else_frame.symbols, scope)
            op.else_scope = else_scope.runtime
            op.else_block = self.block(node.else_, else_frame, else_scope)
            deps.extend(self.block_deps[id(op.else_block)])
        self.key(op, loop_frame)
        self.op_deps[id(op)] = deps
        self.gate(op, scope)
        builder.slot(op)

    def bind_target(self, op: Any, target: nodes.Node, frame: Frame, scope: CScope) -> None:
        if isinstance(target, nodes.Name):
            op.target_index = scope.index(frame.symbols.ref(target.name))
        else:
            op.bind = self.target_function(target, frame, scope)

    def target_function(self, target: nodes.Node, frame: Frame, scope: CScope) -> Callable[..., Any]:
        return self.function("F, value", [f"{self.target_source(target, frame, scope)} = value"], [], frame, scope)

    def key(self, op: Any, loop_frame: Frame) -> None:
        """Find how the loop's items are keyed: the data-key of their root element."""
        engine = self.engine
        block = op.block
        outputs = {sub.index: sub for sub in block.ops if sub.kind == engine.K_OUTPUT}
        parts = find_key_attribute(block.statics, set(outputs))
        if parts is None:
            op.key_mode = engine.KEY_HASH
            return
        last = max((p for p in parts if isinstance(p, int)), default=-1)
        for sub in block.ops:
            if sub.index == last:
                break
            if sub.kind == engine.K_ASSIGN and id(sub) in self.side_effects:
                op.key_mode = engine.KEY_HASH
                return
        op.key_mode = engine.KEY_SLOTS
        op.key_parts = tuple(parts)
        if len(parts) == 1 and isinstance(parts[0], int):
            op.id_slot = parts[0]

    def recursion(self, call: nodes.Call, loop_op: Any, builder: _Builder, frame: Frame, scope: CScope) -> None:
        op = self.op(self.engine.K_RECURSE, call)
        op.loop = loop_op
        op.hops, op.loop_index = scope.locate(frame.symbols.ref("loop"))
        arg = call.args[0]
        op.fn = self.function("F, C", [f"return {self.source(arg, frame)}"], [arg], frame, scope)
        self.op_deps[id(op)] = [VOLATILE]
        builder.slot(op)

    def visit_Assign(self, node: nodes.Assign, builder: _Builder, frame: Frame, scope: CScope) -> None:
        self.stored(node.target, frame, scope)
        op = self.op(self.engine.K_ASSIGN, node)
        lines = []
        for ref in dict.fromkeys(n.name for n in node.find_all(nodes.NSRef)):
            lines.append(f"if not isinstance({frame.symbols.ref(ref)}, Namespace):")
            lines.append('    raise TemplateRuntimeError("cannot assign attribute on non-namespace object")')
        lines.append(f"{self.target_source(node.target, frame, scope)} = {self.source(node.node, frame)}")
        lines.extend(self.exports(node.target, frame, scope))
        op.fn = self.function("F, C, rt", lines, [node.node, node.target], frame, scope)
        deps = self.expr_deps(node.node, frame, scope)
        if node.find(nodes.NSRef) is not None:
            self.side_effects.add(id(op))  # it changes a namespace: never run twice
            deps = [*deps, VOLATILE]
        self.op_deps[id(op)] = deps
        builder.statement(op)

    def visit_AssignBlock(self, node: nodes.AssignBlock, builder: _Builder, frame: Frame, scope: CScope) -> None:
        block_frame = frame.inner()
        block_frame.require_output_check = False
        block_frame.symbols.analyze_node(node)
        inner = self.new_scope(block_frame.symbols, scope)
        body = self.block(node.body, block_frame, inner)
        block_frame.buffer = "_buf"
        if node.filter is not None:
            value = self.source(node.filter, block_frame, filter_node=True)
            needs: list[nodes.Node] = [node.filter]
        else:
            value = "concat(_buf)"
            needs = []
        self.stored(node.target, frame, scope)
        op = self.op(self.engine.K_ASSIGN, node)
        lines = [
            f"Fb = enter({self.const(inner.runtime)}, F, C)",
            f"_buf = [render_text(rt, {self.const(body)}, Fb, C)]",
            *self.prologue(needs, block_frame, inner, frame_var="Fb"),
            f"{self.target_source(node.target, frame, scope)} = Markup({value})",
            *self.exports(node.target, frame, scope),
        ]
        op.fn = self.function("F, C, rt", lines, [node.target], frame, scope)
        deps = list(self.translate(self.block_deps[id(body)], inner, scope))
        if node.filter is not None:
            deps.extend(self.translate(self.expr_deps(node.filter, block_frame, inner), inner, scope))
        self.op_deps[id(op)] = deps
        builder.statement(op)

    def stored(self, target: nodes.Expr, frame: Frame, scope: CScope) -> None:
        """Names assigned by ``target`` no longer statically refer to a macro."""
        for name in _find_all(target, nodes.Name):
            if name.ctx == "store":
                ident = frame.symbols.ref(name.name)
                self.definitions[(id(scope.owner(ident)), ident)] = None

    def exports(self, target: nodes.Expr, frame: Frame, scope: CScope) -> list[str]:
        """Top-level assignments also go to the context, as Jinja does."""
        if not frame.toplevel:
            return []
        lines = []
        for name in target.find_all(nodes.Name) if not isinstance(target, nodes.Name) else [target]:
            if name.ctx == "store":
                hops, index = scope.locate(frame.symbols.ref(name.name))
                lines.append(f"C.vars[{name.name!r}] = F{'.p' * hops}.v[{index}]")
        return lines

    def visit_With(self, node: nodes.With, builder: _Builder, frame: Frame, scope: CScope) -> None:
        with_frame = frame.inner()
        with_frame.symbols.analyze_node(node)
        inner = self.new_scope(with_frame.symbols, scope)
        op = self.op(self.engine.K_SCOPE, node)
        op.scope = inner.runtime
        lines = []
        deps: list[Dep] = []
        for target, expr in zip(node.targets, node.values, strict=True):
            target_source = self.target_source(target, with_frame, inner, frame_var="Fs")
            lines.append(f"{target_source} = {self.source(expr, frame)}")
            deps.extend(self.expr_deps(expr, frame, scope))
        op.fn = self.function("F, C, Fs", lines, list(node.values), frame, scope)
        op.block = self.block(node.body, with_frame, inner)
        deps.extend(self.translate(self.block_deps[id(op.block)], inner, scope))
        self.op_deps[id(op)] = deps
        self.gate(op, scope)
        builder.slot(op)

    def visit_Macro(self, node: nodes.Macro, builder: _Builder, frame: Frame, scope: CScope) -> None:
        spec = self.macro_body(node, frame, scope)
        ident = frame.symbols.ref(node.name)
        _, index = scope.locate(ident)
        self.definitions[(id(scope.owner(ident)), ident)] = (spec, self.branch)
        op = self.op(self.engine.K_ASSIGN, node)
        lines = [f"F.v[{index}] = define_macro(rt, {self.const(spec)}, F, C)"]
        if frame.toplevel:
            lines.append(f"C.vars[{node.name!r}] = F.v[{index}]")
        op.fn = self.function("F, C, rt", lines, [], frame, scope)
        self.op_deps[id(op)] = []
        builder.statement(op)

    def macro_body(self, node: nodes.Macro | nodes.CallBlock, frame: Frame, scope: CScope) -> Any:
        """Mirror Jinja's macro scoping; returns the engine's MacroSpec."""
        macro_frame = frame.inner()
        macro_frame.symbols.analyze_node(node)
        explicit_caller = None
        skip_special: set[str] = set()
        refs = []
        for idx, arg in enumerate(node.args):
            if arg.name == "caller":
                explicit_caller = idx
            if arg.name in ("kwargs", "varargs"):
                skip_special.add(arg.name)
            refs.append(macro_frame.symbols.ref(arg.name))
        undeclared = find_undeclared(node.body, ("caller", "kwargs", "varargs"))
        accesses_caller = accesses_kwargs = accesses_varargs = False
        if "caller" in undeclared:
            if explicit_caller is not None:
                try:
                    node.defaults[explicit_caller - len(node.args)]
                except IndexError:
                    self.fail(
                        'When defining macros or call blocks the special "caller" argument must be'
                        " omitted or be given a default.",
                        node,
                    )
            else:
                refs.append(macro_frame.symbols.declare_parameter("caller"))
            accesses_caller = True
        if "kwargs" in undeclared and "kwargs" not in skip_special:
            refs.append(macro_frame.symbols.declare_parameter("kwargs"))
            accesses_kwargs = True
        if "varargs" in undeclared and "varargs" not in skip_special:
            refs.append(macro_frame.symbols.declare_parameter("varargs"))
            accesses_varargs = True
        macro_frame.require_output_check = False
        macro_frame.symbols.analyze_node(node)
        inner = self.new_scope(macro_frame.symbols, scope)

        spec = self.engine.MacroSpec()
        spec.name = getattr(node, "name", None)
        spec.arguments = tuple(arg.name for arg in node.args)
        spec.catch_kwargs = accesses_kwargs
        spec.catch_varargs = accesses_varargs
        spec.caller = accesses_caller
        spec.scope = inner.runtime
        spec.arg_indexes = tuple(inner.index(ref) for ref in refs)
        spec.template = self.template
        spec.lineno = node.lineno
        # defaults, evaluated in order in the macro's frame, as Jinja does
        lines = []
        params = [macro_frame.symbols.ref(arg.name) for arg in node.args]
        for idx, arg in enumerate(node.args):
            ref = params[idx]
            lines.append(f"if {ref} is missing:")
            try:
                default = node.defaults[idx - len(node.args)]
            except IndexError:
                message = f"parameter {arg.name!r} was not provided"
                lines.append(f"    {ref} = undefined({message!r}, name={arg.name!r})")
            else:
                lines.append(f"    {ref} = {self.source(default, macro_frame)}")
        if lines:
            loads = [f"{ref} = F.v[{inner.index(ref)}]" for ref in params]
            stores = [f"F.v[{inner.index(ref)}] = {ref}" for ref in params]
            spec.defaults = self.function("F, C", [*loads, *lines, *stores], list(node.defaults), macro_frame, inner)
        else:
            spec.defaults = None
        spec.block = self.block(node.body, macro_frame, inner)
        if spec.block.has_range:
            spec.block.marker = str(BRANCH_MARKER_BASE + spec.block.uid)
        deps: list[Dep] = []
        for default in node.defaults:
            deps.extend(self.translate(self.expr_deps(default, macro_frame, inner), inner, scope))
        deps.extend(self.translate(self.block_deps[id(spec.block)], inner, scope))
        self.macro_deps[id(spec)] = deps
        return spec

    def visit_CallBlock(self, node: nodes.CallBlock, builder: _Builder, frame: Frame, scope: CScope) -> None:
        spec = self.macro_body(node, frame, scope)
        self.call(node.call, spec, builder, frame, scope, escape=False)

    def call(
        self, call: nodes.Call, caller: Any, builder: _Builder, frame: Frame, scope: CScope, *, escape: bool
    ) -> None:
        """A call slot: a macro renders as a node; anything else as text."""
        op = self.op(self.engine.K_CALL, call)
        op.macro = caller
        extra = {"caller": "caller"} if caller is not None else None
        bind = self.source(call, frame, callee_prefix="bind_macro(", extra_kwargs=extra)
        op.fn = self.function("F, C, caller", [f"return {bind}"], [call], frame, scope)
        if escape:
            text = self.source(
                call,
                frame,
                pre=lambda: self.gen.write("escape_text("),
                post=lambda: self.gen.write(")"),
                extra_kwargs=extra,
            )
        else:
            text = self.source(call, frame, extra_kwargs=extra)
        op.alt = self.function("F, C, caller", [f"return {text}"], [call], frame, scope)
        deps = self.expr_deps(call, frame, scope)
        if caller is not None:
            deps.extend(self.macro_deps[id(caller)])
        self.op_deps[id(op)] = deps
        self.gate(op, scope)
        builder.slot(op)

    def macro_callee(self, callee: nodes.Expr, frame: Frame, scope: CScope) -> Any:
        """The MacroSpec a call expression statically refers to, if any: a macro defined
        in this template's scopes, stored over by nothing since, and not in an ``if``
        branch the call is outside of (``_caller_spec`` for ``caller`` in a macro)."""
        if not isinstance(callee, nodes.Name):
            return None
        ident = frame.symbols.find_ref(callee.name)
        if ident is None:
            return None
        if callee.name == "caller" and frame.symbols.find_load(ident) == (VAR_LOAD_PARAMETER, None):
            return self._caller_spec
        try:
            owner = scope.owner(ident)
        except AssertionError:
            return None
        found = self.definitions.get((id(owner), ident))
        if found is None:
            return None
        spec, branch = found
        return spec if self.branch[: len(branch)] == branch else None

    #: ``caller()`` inside a macro: a body known only at the call site.
    _caller_spec = object()

    def super_call(self, child: nodes.Call, builder: _Builder, frame: Frame, scope: CScope) -> None:
        chain = self.super_chains[-1] if self.super_chains else []
        if not chain:
            self.fail("super() called in a block that has no parent block", child)
        self.render_block(chain, builder, child, scope)

    def super_op(self, n: nodes.Node, frame: Frame, scope: CScope) -> Any:
        """The op rendering the parent block, if ``n`` is the ``super`` of the block being compiled."""
        if not _is_name(n, "super"):
            return None
        ident = frame.symbols.find_ref("super")
        return None if ident is None else self.super_ops.get((id(scope.owner(ident)), ident))

    def visit_Block(self, node: nodes.Block, builder: _Builder, frame: Frame, scope: CScope) -> None:
        # the most derived definition renders; super() reaches the next one
        chain = self.block_chain.get(node.name, [])
        if not any(b is node for _, b in chain):
            chain = [*chain, (self.template, node)]
        if node.required and len(chain) <= 1:
            self.fail(f"Required block {node.name!r} not found", node)
        self.render_block(chain, builder, node, scope, scoped_frame=frame if node.scoped else None)

    def render_block(
        self,
        chain: Sequence[tuple[str | None, nodes.Block]],
        builder: _Builder,
        where: nodes.Node,
        scope: CScope,
        scoped_frame: Frame | None = None,
    ) -> None:
        op = self.block_op(chain, where, scope, scoped_frame)
        self.gate(op, scope)
        builder.slot(op)

    def block_op(
        self,
        chain: Sequence[tuple[str | None, nodes.Block]],
        where: nodes.Node,
        scope: CScope,
        scoped_frame: Frame | None = None,
    ) -> Any:
        """A K_SCOPE op rendering ``chain[0]`` (``chain[1:]`` is what ``super()`` reaches)."""
        template, node = chain[0]
        saved = (self.template, self.gen.name)
        self.template = self.gen.name = template
        try:
            block_frame = Frame(EvalContext(self.env, template))
            block_frame.block_frame = True
            block_frame.block = node.name
            undeclared = find_undeclared(node.body, ("self", "super"))
            if "self" in undeclared:
                self.fail("'self' (block references) is not supported", node)
            super_ref = block_frame.symbols.declare_parameter("super") if "super" in undeclared else None
            block_frame.symbols.analyze_node(node)
            op = self.op(self.engine.K_SCOPE, where)
            local_names = scoped_frame.symbols.dump_stores() if scoped_frame is not None else {}
            inner = self.new_scope(block_frame.symbols, None, Boundary(scope, local_names))
            if super_ref is not None and _check_super(node, self):
                if len(chain) < 2:
                    self.fail("super() called in a block that has no parent block", node)
                self.super_ops[(id(inner), super_ref)] = self.block_op(chain[1:], where, inner)
            op.scope = inner.runtime
            op.nested = False
            if scoped_frame is not None:
                op.ctx_fn = self.context_function(local_names, scoped_frame, scope, inherits=True)
            self.super_chains.append(list(chain[1:]))
            try:
                op.block = self.block(node.body, block_frame, inner)
            finally:
                self.super_chains.pop()
        finally:
            self.template, self.gen.name = saved
        self.op_deps[id(op)] = list(self.translate(self.block_deps[id(op.block)], inner, scope))
        return op

    def extend(self, node: nodes.Extends, builder: _Builder, frame: Frame, scope: CScope, tree: nodes.Template) -> None:
        if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
            self.fail("{% extends %} needs a constant template name", node)
        for block in tree.find_all(nodes.Block):
            chain = self.block_chain.setdefault(block.name, [])
            if not any(b is block for _, b in chain):
                chain.append((self.template, block))
        parent_name: str = node.template.value
        parent_tree, filename = self.load(parent_name, node)
        saved = (self.template, self.gen.name, self.gen.filename)
        self.template, self.gen.name, self.gen.filename = parent_name, parent_name, filename
        try:
            for block in parent_tree.find_all(nodes.Block):
                chain = self.block_chain.setdefault(block.name, [])
                if not any(b is block for _, b in chain):
                    chain.append((parent_name, block))
            parent = self._unit(parent_tree, None, Boundary(scope, {}))
        finally:
            self.template, self.gen.name, self.gen.filename = saved
        op = self.op(self.engine.K_SCOPE, node)
        assert parent.scope is not None
        op.scope = parent.scope.runtime
        op.nested = False
        op.block = parent.block
        self.op_deps[id(op)] = list(self.translate(parent.deps, parent.scope, scope))
        self.gate(op, scope)
        builder.slot(op)

    def visit_Include(self, node: nodes.Include, builder: _Builder, frame: Frame, scope: CScope) -> None:
        names = _constant_names(node.template)
        if names is None:
            self.fail("{% include %} needs a constant template name (or a constant list of names)", node)
        chosen: tuple[str, nodes.Template, str | None] | None = None
        for name in names:
            try:
                chosen = (name, *self.load(name, node))
                break
            except jinja2.TemplateNotFound:
                continue
        if chosen is None:
            if node.ignore_missing:
                return
            self.fail(f"included template {names[0]!r} not found", node)
        name, tree, filename = chosen
        local_names = frame.symbols.dump_stores() if node.with_context else {}
        boundary = Boundary(scope, local_names, inherits=node.with_context)
        op = self.op(self.engine.K_SCOPE, node)
        op.nested = False
        op.ctx_fn = self.context_function(local_names, frame, scope, inherits=node.with_context, name=name)
        unit = self.units.get(name)
        if unit is None:
            # each include site compiles its own copy: its gates are rooted at this site
            saved = (self.template, self.gen.name, self.gen.filename, self.block_chain)
            self.template, self.gen.name, self.gen.filename = name, name, filename
            self.block_chain = {}
            try:
                unit = self._unit(tree, name, boundary)
            finally:
                self.template, self.gen.name, self.gen.filename, self.block_chain = saved
            assert unit.scope is not None
            self.op_deps[id(op)] = list(self.translate(unit.deps, unit.scope, scope))
        else:
            self.op_deps[id(op)] = [VOLATILE]  # a template including itself (its root is not done yet)
        op.block = unit.block
        assert unit.scope is not None
        op.scope = unit.scope.runtime
        self.gate(op, scope)
        builder.slot(op)

    def context_function(
        self,
        local_names: dict[str, str],
        frame: Frame,
        scope: CScope,
        *,
        inherits: bool,
        name: str | None = None,
    ) -> Callable[..., Any]:
        if not inherits:
            return self.function("F, C", [f"return Ctx(C.rt, {name!r}, None, None, None)"], [], frame, scope)
        items = ", ".join(f"{k!r}: {self.ref_source(ident, scope)}" for k, ident in local_names.items())
        return self.function(
            "F, C",
            [
                f"loc = {{{items}}}",
                f"return Ctx(C.rt, {name if name is not None else self.template!r}, None, C,"
                " {k: v for k, v in loc.items() if v is not missing})",
            ],
            [],
            frame,
            scope,
        )

    def visit_FilterBlock(self, node: nodes.FilterBlock, builder: _Builder, frame: Frame, scope: CScope) -> None:
        filter_frame = frame.inner()
        filter_frame.symbols.analyze_node(node)
        inner = self.new_scope(filter_frame.symbols, scope)
        body = self.block(node.body, filter_frame, inner)
        filter_frame.buffer = "_buf"
        op = self.op(self.engine.K_TEXT, node)
        lines = [
            f"Fb = enter({self.const(inner.runtime)}, F, C)",
            f"_buf = [render_text(C.rt, {self.const(body)}, Fb, C)]",
            *self.prologue([node.filter], filter_frame, inner, frame_var="Fb"),
            f"return {self.source(node.filter, filter_frame, filter_node=True)}",
        ]
        op.fn = self.function("F, C", lines, [], frame, scope)
        deps = list(self.translate(self.block_deps[id(body)], inner, scope))
        deps.extend(self.translate(self.expr_deps(node.filter, filter_frame, inner), inner, scope))
        self.op_deps[id(op)] = deps
        self.gate(op, scope)
        builder.slot(op)

    def visit_Scope(self, node: nodes.Scope, builder: _Builder, frame: Frame, scope: CScope) -> None:
        scope_frame = frame.inner()
        scope_frame.symbols.analyze_node(node)
        inner = self.new_scope(scope_frame.symbols, scope)
        op = self.op(self.engine.K_SCOPE, node)
        op.scope = inner.runtime
        op.block = self.block(node.body, scope_frame, inner)
        self.op_deps[id(op)] = list(self.translate(self.block_deps[id(op.block)], inner, scope))
        self.gate(op, scope)
        builder.slot(op)

    # -- expressions --------------------------------------------------------------

    def source(
        self,
        node: nodes.Node,
        frame: Frame,
        *,
        pre: Callable[[], None] | None = None,
        post: Callable[[], None] | None = None,
        callee_prefix: str | None = None,
        extra_kwargs: dict[str, str] | None = None,
        filter_node: bool = False,
    ) -> str:
        """Python source of an expression, written by Jinja's code generator."""
        gen = self.gen
        gen.stream = io.StringIO()
        gen._new_lines = 0
        gen._first_write = True
        gen._indentation = 0
        self.register_filters(node)
        if pre is not None:
            pre()
        if callee_prefix is not None:
            assert isinstance(node, nodes.Call)
            gen.write(callee_prefix)
            gen.visit(node.node, frame)
            gen.signature(node, frame, extra_kwargs)
            gen.write(")")
        elif isinstance(node, nodes.Call) and extra_kwargs:
            gen.visit_Call(node, frame, forward_caller=True)
        elif filter_node:
            assert isinstance(node, nodes.Filter)
            gen.visit_Filter(node, frame)
        else:
            gen.visit(node, frame)
        if post is not None:
            post()
        return gen.stream.getvalue()

    def register_filters(self, node: nodes.Node) -> None:
        for kind, items, store in (
            ("filter", _find_all(node, nodes.Filter), self.gen.filters),
            ("test", _find_all(node, nodes.Test), self.gen.tests),
        ):
            for item in items:
                if item.name not in store:
                    alias = f"{kind[0]}_{item.name}_{len(store)}"
                    store[item.name] = alias
                    table = self.env.filters if kind == "filter" else self.env.tests
                    self.namespace[alias] = table[item.name]

    def check_names(self, tree: nodes.Node, source: str) -> None:
        """Unknown filters and tests fail at construction, wherever they are used."""
        for kind, table in ((nodes.Filter, self.env.filters), (nodes.Test, self.env.tests)):
            for item in tree.find_all(kind):
                if item.name not in table:
                    what = "filter" if kind is nodes.Filter else "test"
                    raise TemplateError(
                        f"No {what} named {item.name!r}.",
                        template=self.template,
                        lineno=item.lineno,
                        column=_find_column(source, item.lineno, item.name),
                    )

    def target_source(self, target: nodes.Node, frame: Frame, scope: CScope, frame_var: str = "F") -> str:
        if isinstance(target, nodes.Name):
            hops, index = scope.locate(frame.symbols.ref(target.name))
            return f"{frame_var}{'.p' * hops}.v[{index}]"
        if isinstance(target, nodes.NSRef):
            return f"{frame.symbols.ref(target.name)}[{target.attr!r}]"
        if isinstance(target, (nodes.Tuple, nodes.List)):
            inner = ", ".join(self.target_source(item, frame, scope, frame_var) for item in target.items)
            return f"({inner},)"
        return self.fail(f"cannot assign to {type(target).__name__}", target)

    def ref_source(self, ident: str, scope: CScope, frame_var: str = "F") -> str:
        hops, index = scope.locate(ident)
        return f"{frame_var}{'.p' * hops}.v[{index}]"

    def prologue(self, needs: Sequence[nodes.Node], frame: Frame, scope: CScope, frame_var: str = "F") -> list[str]:
        """Load the references the given expressions read into local names."""
        idents: dict[str, None] = {}
        for node in needs:
            for name in _names(node):
                ident = frame.symbols.find_ref(name)
                if ident is not None:
                    idents[ident] = None
        lines = []
        for ident in idents:
            parent = self.super_ops.get((id(scope.owner(ident)), ident))
            if parent is not None:  # super(): the parent block as markup, in this context
                block, parent_scope = self.const(parent.block), self.const(parent.scope)
                lines.append(f"{ident} = lambda: Markup(render_text(C.rt, {block}, enter({parent_scope}, None, C), C))")
            else:
                lines.append(f"{ident} = {self.ref_source(ident, scope, frame_var)}")
        return lines

    def function(
        self, params: str, body: list[str], needs: Sequence[nodes.Node], frame: Frame, scope: CScope
    ) -> Callable[..., Any]:
        lines = self.prologue(needs, frame, scope)
        text = "\n".join([*lines, *body])
        if "context" in text:
            lines.insert(0, "context = C.jinja_context()")
        name = f"_lt{next(self.fn_ids)}"
        src = f"def {name}({params}):\n" + "\n".join("    " + line for line in [*lines, *body])
        code = compile(src, f"<livetemplate {self.template or 'template'}>", "exec")
        exec(code, self.namespace)
        return self.namespace.pop(name)  # type: ignore[no-any-return]

    def const(self, value: Any) -> str:
        name = f"_c{next(self.fn_ids)}"
        self.namespace[name] = value
        return name

    def _namespace(self) -> dict[str, Any]:
        import jinja2.runtime as runtime

        ns: dict[str, Any] = {name: getattr(runtime, name) for name in runtime.exported}
        engine = self.engine
        ns.update(
            environment=self.env,
            undefined=self.env.undefined,
            concat=self.env.concat,
            cond_expr_undefined=runtime.Undefined,
            _loop_vars={},
            _block_vars={},
            bind_macro=engine.bind_macro,
            define_macro=engine.define_macro,
            render_text=engine.render_text,
            enter=engine.enter,
            Ctx=engine.Ctx,
            escape_text=engine.escape_text,
            getattr_=self.access.getattr,
            getitem_=self.access.getitem,
        )
        return ns

    # -- dependencies -------------------------------------------------------------

    def expr_deps(self, node: nodes.Node, frame: Frame, scope: CScope) -> list[Dep]:
        """The paths an expression reads, rooted at references of ``scope``'s chain.

        A call contributes its arguments and its callee: a macro known statically
        contributes the dependencies of its body (``caller`` is volatile: its body is
        known only at the call site); a method of a value (``x.meth(...)``) depends on the
        receiver ``x``, since only exact scalars are remembered and their methods are pure;
        any other callee is a value like any other.
        """
        deps: list[Dep] = []

        def add(name: str, attrs: tuple[tuple[bool, Any], ...]) -> None:
            ident = frame.symbols.find_ref(name)
            if ident is None:
                deps.append(VOLATILE)
            else:
                deps.append(RefDep(scope.owner(ident), ident, attrs))

        def callee(n: nodes.Expr) -> None:
            spec = self.macro_callee(n, frame, scope)
            parent = self.super_op(n, frame, scope)
            if parent is not None:
                deps.extend(self.op_deps[id(parent)])
            elif spec is self._caller_spec:
                deps.append(VOLATILE)
            elif spec is not None:
                deps.extend(self.macro_deps[id(spec)])
            else:
                p = _path(n)
                if p is not None and p[1]:
                    add(p[0], p[1][:-1])
                else:
                    visit(n)

        def visit(n: nodes.Node) -> None:
            p = _path(n)
            if p is not None:
                add(*p)
                return
            if isinstance(n, (nodes.Filter, nodes.Test)):
                table = self.env.filters if isinstance(n, nodes.Filter) else self.env.tests
                func = table.get(n.name)
                if n.name in _IMPURE or (
                    func is not None
                    and _PassArg.from_obj(func) is _PassArg.context  # type: ignore[type-var]
                    and getattr(func, "__module__", "") != "jinja2.filters"
                ):
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

    def translate(self, deps: Iterable[Dep], inner: CScope, outer: CScope) -> Iterable[Dep]:
        """Re-root dependencies found in ``inner`` (a scope nested in ``outer``) at
        ``outer``: values loaded on entry to a nested frame become the paths they load
        from; values bound inside (loop targets, assignments) are derived from other
        dependencies and drop out."""
        for dep in deps:
            moved = self._translate(dep, outer)
            if moved is not None:
                yield moved

    def _translate(self, dep: Dep, outer: CScope) -> Dep | None:
        while True:
            if isinstance(dep, _Volatile):
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
            root = dep.owner
            while root.parent is not None:
                root = root.parent
            if outer.is_within(root) or root.boundary is None:
                return CtxDep(outer, dep.name, dep.attrs) if outer.is_within(root) else dep
            boundary = root.boundary
            if not boundary.inherits:
                return None
            ident = boundary.locals.get(dep.name)
            if ident is not None:
                dep = RefDep(boundary.outer.owner(ident), ident, dep.attrs)
            else:
                dep = CtxDep(boundary.outer, dep.name, dep.attrs)

    def gate(self, op: Any, scope: CScope) -> None:
        """Give ``op`` a gate over its dependencies, built when the frame layouts are final."""
        self.gated.append((op, scope))

    def build_gate(self, deps: Iterable[Dep], scope: CScope) -> Any:
        paths = []
        seen = set()
        for dep in self.translate(deps, scope, scope):
            if isinstance(dep, _Volatile):
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

    def finish(self) -> None:
        """Fix frame layouts, then build the gates that point into them."""
        for scope in self.scopes:
            for ident in scope.symbols.loads:
                scope.index(ident)
        for op, scope in self.gated:
            op.gate = self.build_gate(self.op_deps[id(op)], scope)
        for block, scope in self.loop_bodies:
            block.gate = self.build_gate(self.block_deps[id(block)], scope)
        for scope in self.scopes:
            loads = []
            for ident, (kind, param) in scope.symbols.loads.items():
                if kind == VAR_LOAD_RESOLVE:
                    loads.append((scope.index(ident), self.engine.LOAD_RESOLVE, param, 0))
                elif kind == VAR_LOAD_ALIAS:
                    assert scope.parent is not None
                    owner = scope.parent.owner(param)
                    loads.append(
                        (
                            scope.index(ident),
                            self.engine.LOAD_ALIAS,
                            scope.level - owner.level,
                            owner.index(param),
                        )
                    )
            scope.runtime.size = len(scope.indexes)
            scope.runtime.loads = tuple(loads)

    # -- helpers ------------------------------------------------------------------

    def op(self, kind: int, node: nodes.Node) -> Any:
        return self.engine.Op(kind, -1, self.template, node.lineno)

    def load(self, name: str, node: nodes.Node) -> tuple[nodes.Template, str | None]:
        loader = self.env.loader
        if loader is None:
            return self.fail(f"cannot load {name!r}: the template has no loader", node)
        source, filename, _ = loader.get_source(self.env, name)
        return parse(self.env, source, name, filename), filename

    def fail(self, message: str, node: nodes.Node | None) -> NoReturn:
        raise TemplateError(message, template=self.template, lineno=getattr(node, "lineno", None))


class _ExpressionGenerator(CodeGenerator):
    """Jinja's code generator, with attribute and item lookups bound to the engine's
    ``Access`` (same semantics as ``Environment.getattr``/``getitem``, faster)."""

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        self.write("getattr_(")
        self.visit(node.node, frame)
        self.write(f", {node.attr!r})")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("getitem_(")
        self.visit(node.node, frame)
        self.write(", ")
        self.visit(node.arg, frame)
        self.write(")")


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


def _find_all(node: nodes.Node, kind: type[nodes.Node] | tuple[type[nodes.Node], ...]) -> Iterable[Any]:
    """``node`` itself, if of ``kind``, then its descendants of ``kind``."""
    if isinstance(node, kind):
        yield node
    yield from node.find_all(kind)


def _find_column(source: str, lineno: int, needle: str) -> int | None:
    lines = source.splitlines()
    if 0 < lineno <= len(lines):
        found = lines[lineno - 1].find(needle)
        if found >= 0:
            return found + 1
    return None


def _path(n: nodes.Node) -> tuple[str, tuple[tuple[bool, Any], ...]] | None:
    """``name`` and its lookups (``(is_item, key)``) when ``n`` is a name followed by
    attribute and constant item lookups, else None."""
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


def _names(node: nodes.Node) -> Iterable[str]:
    for n in _find_all(node, (nodes.Name, nodes.NSRef)):
        if not isinstance(n, nodes.Name) or n.ctx == "load":
            yield n.name


def _check_super(block: nodes.Block, compiler: Compiler) -> bool:
    """``super`` is supported called without arguments: ``{{ super() }}`` on its own renders
    the parent block in place, ``super()`` in an expression renders it to markup. Whether the
    block has the second kind."""
    alone = set()
    for output in block.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.Call) and _is_name(child.node, "super"):
                alone.add(id(child.node))
    calls = {id(call.node) for call in block.find_all(nodes.Call) if not (call.args or call.kwargs)}
    in_expressions = False
    for name in block.find_all(nodes.Name):
        if name.name == "super" and name.ctx == "load":
            if id(name) not in calls:
                compiler.fail("super is only supported called without arguments, as super()", name)
            in_expressions = in_expressions or id(name) not in alone
    return in_expressions


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name and node.ctx == "load"


def _constant_names(node: nodes.Expr) -> list[str] | None:
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


def _tag_name(node: nodes.Node) -> str:
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
