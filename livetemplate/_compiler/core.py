"""The compiler's shared state and the machinery every kind of statement uses: blocks,
scopes, ops, the statement dispatch and the final layout of frames and gates."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.compiler import Frame
from jinja2.idtracking import VAR_LOAD_RESOLVE, Symbols

from .._engine import Engine
from ..errors import TemplateError
from .deps import Dep, Dependencies
from .expressions import Expressions
from .markup import TEXT, VERBATIM, slot_contexts
from .scopes import Boundary, Builder, CScope
from .syntax import parse, tag_name

#: The tags the client deletes from every node's HTML.
ROOT_TAGS = ("<root>", "</root>")

Chain = list[tuple[str | None, nodes.Block]]  # a block's definitions, most derived first


@dataclass
class Unit:
    """A compiled template body: its root block and root scope."""

    name: str | None
    block: Any
    scope: CScope | None = None
    deps: list[Dep] = field(default_factory=list)


class CompilerBase:
    """State of one compilation, and what all statements share. The statement visitors
    (``visit_<Node>``) are mixed in by the modules that compile each kind."""

    def __init__(self, environment: jinja2.Environment, engine: Engine, max_depth: int) -> None:
        self.env = environment
        self.engine = engine
        self.max_depth = max_depth
        self.deps = Dependencies(environment, engine)
        self.exprs = Expressions(environment, engine, self.deps.super_ops)
        self.uids = itertools.count()
        self.scopes: list[CScope] = []
        self.units: dict[str, Unit] = {}  # templates being compiled, by name
        self.recursive_loops: dict[tuple[int, str], Any] = {}  # (scope id, loop ref) -> K_LOOP op
        self.block_chain: dict[str, Chain] = {}
        self.super_chains: list[Chain] = []
        self.side_effects: set[int] = set()  # ids of assignments that change a namespace

    @property
    def template(self) -> str | None:
        """The name of the template being compiled."""
        return self.exprs.template

    # -- the program ----------------------------------------------------------------

    def compile(self, source: str, name: str | None, filename: str | None) -> Any:
        """The engine's Program for ``source``."""
        tree = parse(self.env, source, name, filename)
        with self.exprs.in_template(name, filename):
            unit = self.unit(tree, name)
        self.finish()
        assert unit.scope is not None
        return self.engine.Program(name, self.env, self.exprs.access, unit.block, unit.scope.runtime, self.max_depth)

    def context_names(self) -> frozenset[str]:
        """The names the compiled templates look up in their context (the data, ``extra``
        and the globals)."""
        return frozenset(
            param for scope in self.scopes for kind, param in scope.symbols.loads.values() if kind == VAR_LOAD_RESOLVE
        )

    def unit(self, tree: nodes.Template, name: str | None, boundary: Boundary | None = None) -> Unit:
        raise NotImplementedError  # templates.Templates

    def finish(self) -> None:
        """Fix frame layouts, then build the gates that point into them."""
        for scope in self.scopes:
            scope.reserve_loads()
        self.deps.build_gates()
        for scope in self.scopes:
            scope.lay_out(self.engine)

    # -- blocks ---------------------------------------------------------------------

    def new_block(self) -> Any:
        return self.engine.Block(next(self.uids), [""], [])

    def new_scope(self, symbols: Symbols, parent: CScope | None, boundary: Boundary | None = None) -> CScope:
        scope = CScope(symbols, parent, self.engine.Scope(), boundary)
        self.scopes.append(scope)
        return scope

    def block(self, body: Iterable[nodes.Node], frame: Frame, scope: CScope, *, items: bool = False) -> Any:
        """Compile ``body`` into a new block (of loop items when ``items``)."""
        builder = Builder()
        for node in body:
            self.statement(node, builder, frame, scope)
        block = self.new_block()
        self.fill_block(block, builder, scope)
        block.slot_gates = not items
        return block

    def fill_block(self, block: Any, builder: Builder, scope: CScope) -> None:
        engine = self.engine
        block.statics = list(builder.statics)
        block.wire_statics = [engine.guard_static(s) for s in builder.statics]
        block.ops = list(builder.ops)
        block.nslots = builder.nslots
        self.seams(block)
        deps: list[Dep] = []
        for op in builder.ops:
            deps.extend(self.deps.ops.get(id(op), ()))
            if op.kind in (engine.K_LOOP, engine.K_RECURSE, engine.K_CALL) or (
                op.kind in (engine.K_COND, engine.K_SCOPE) and any(b.has_range for b in nested_blocks(op))
            ):
                block.has_range = True
        self.deps.blocks[id(block)] = deps

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
                left.endswith(tag[:k]) or right.startswith(tag[k:]) for tag in ROOT_TAGS for k in range(1, len(tag))
            ):
                op.seam = (left, right, contexts[op.index] == TEXT)

    # -- statements -----------------------------------------------------------------

    def statement(self, node: nodes.Node, builder: Builder, frame: Frame, scope: CScope) -> None:
        visit = getattr(self, f"visit_{type(node).__name__}", None)
        if visit is None:
            self.fail(f"{{% {tag_name(node)} %}} is not supported", node)
        visit(node, builder, frame, scope)

    def slot(self, op: Any, deps: list[Dep], builder: Builder, scope: CScope) -> None:
        """Add the slot ``op``, gated by ``deps``."""
        self.deps.ops[id(op)] = deps
        self.deps.gate(op, scope)
        builder.slot(op)

    def call(
        self, call: nodes.Call, caller: Any, builder: Builder, frame: Frame, scope: CScope, *, escape: bool
    ) -> None:
        raise NotImplementedError  # macros.Macros

    def super_call(self, child: nodes.Call, builder: Builder, frame: Frame, scope: CScope) -> None:
        raise NotImplementedError  # templates.Templates

    # -- helpers --------------------------------------------------------------------

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


def nested_blocks(op: Any) -> list[Any]:
    """The blocks an op renders in place: branches, a loop's body and else, a scope's block."""
    blocks = list(op.blocks)
    for b in (op.block, op.else_block):
        if b is not None:
            blocks.append(b)
    return blocks
