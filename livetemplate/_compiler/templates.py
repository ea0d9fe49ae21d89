"""Whole templates and how they combine: the root of a template, ``extends`` and
``block`` (with ``super()``), and ``include``.

An included template and a block render in a frame of their own (a new root) and see the
data through a context of their own; the :class:`~.scopes.Boundary` of their root scope
says where they are rendered from, so their dependencies can be read at that place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import Frame, find_undeclared
from jinja2.nodes import EvalContext

from .core import Chain, CompilerBase, Unit
from .deps import VOLATILE
from .scopes import Boundary, Builder, CScope
from .syntax import check_names, check_super, constant_names


class Templates(CompilerBase):
    def unit(self, tree: nodes.Template, name: str | None, boundary: Boundary | None = None) -> Unit:
        """Compile a whole template: the root one, a parent or an included one."""
        if "self" in find_undeclared(tree.body, ("self",)):
            self.fail("'self' (block references) is not supported; use blocks or macros", tree)
        check_names(self.env, tree, self.template)
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
        builder = Builder()
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
            self.extend(parent, builder, scope, tree)
        self.fill_block(unit.block, builder, scope)
        unit.deps = self.deps.blocks[id(unit.block)]
        if name is not None:
            del self.units[name]
        return unit

    def extend(self, node: nodes.Extends, builder: Builder, scope: CScope, tree: nodes.Template) -> None:
        if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
            self.fail("{% extends %} needs a constant template name", node)
        self.add_definitions(tree, self.template)
        parent_name: str = node.template.value
        parent_tree, filename = self.load(parent_name, node)
        with self.exprs.in_template(parent_name, filename):
            self.add_definitions(parent_tree, parent_name)
            parent = self.unit(parent_tree, None, Boundary(scope, {}))
        op = self.op(self.engine.K_SCOPE, node)
        assert parent.scope is not None
        op.scope = parent.scope.runtime
        op.nested = False
        op.block = parent.block
        self.slot(op, self.deps.translate(parent.deps, parent.scope, scope), builder, scope)

    def add_definitions(self, tree: nodes.Template, template: str | None) -> None:
        """The blocks ``tree`` defines, after the more derived definitions found so far."""
        for block in tree.find_all(nodes.Block):
            chain = self.block_chain.setdefault(block.name, [])
            if not any(b is block for _, b in chain):
                chain.append((template, block))

    def visit_Block(self, node: nodes.Block, builder: Builder, frame: Frame, scope: CScope) -> None:
        # the most derived definition renders; super() reaches the next one
        chain = self.block_chain.get(node.name, [])
        if not any(b is node for _, b in chain):
            chain = [*chain, (self.template, node)]
        if node.required and len(chain) <= 1:
            self.fail(f"Required block {node.name!r} not found", node)
        op = self.block_op(chain, node, scope, scoped_frame=frame if node.scoped else None)
        self.slot(op, self.deps.ops[id(op)], builder, scope)

    def super_call(self, child: nodes.Call, builder: Builder, frame: Frame, scope: CScope) -> None:
        """``{{ super() }}`` on its own: the parent block, rendered in place."""
        chain = self.super_chains[-1] if self.super_chains else []
        if not chain:
            self.fail("super() called in a block that has no parent block", child)
        op = self.block_op(chain, child, scope)
        self.slot(op, self.deps.ops[id(op)], builder, scope)

    def block_op(self, chain: Chain, where: nodes.Node, scope: CScope, scoped_frame: Frame | None = None) -> Any:
        """A K_SCOPE op rendering ``chain[0]`` (``chain[1:]`` is what ``super()`` reaches),
        with its dependencies recorded (not yet a slot)."""
        template, node = chain[0]
        with self.exprs.in_template(template, self.exprs.gen.filename):
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
            if super_ref is not None and check_super(node, self.fail):
                if len(chain) < 2:
                    self.fail("super() called in a block that has no parent block", node)
                self.deps.super_ops[(id(inner), super_ref)] = self.block_op(chain[1:], where, inner)
            op.scope = inner.runtime
            op.nested = False
            if scoped_frame is not None:
                op.ctx_fn = self.context_function(local_names, scoped_frame, scope, inherits=True)
            self.super_chains.append(chain[1:])
            try:
                op.block = self.block(node.body, block_frame, inner)
            finally:
                self.super_chains.pop()
        self.deps.ops[id(op)] = self.deps.translate(self.deps.blocks[id(op.block)], inner, scope)
        return op

    def visit_Include(self, node: nodes.Include, builder: Builder, frame: Frame, scope: CScope) -> None:
        names = constant_names(node.template)
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
            saved, self.block_chain = self.block_chain, {}
            try:
                with self.exprs.in_template(name, filename):
                    unit = self.unit(tree, name, boundary)
            finally:
                self.block_chain = saved
            assert unit.scope is not None
            deps = self.deps.translate(unit.deps, unit.scope, scope)
        else:
            deps = [VOLATILE]  # a template including itself (its root is not done yet)
        op.block = unit.block
        assert unit.scope is not None
        op.scope = unit.scope.runtime
        self.slot(op, deps, builder, scope)

    def context_function(
        self,
        local_names: dict[str, str],
        frame: Frame,
        scope: CScope,
        *,
        inherits: bool,
        name: str | None = None,
    ) -> Callable[..., Any]:
        """``(F, C)``: the context an included template or a scoped block renders with."""
        exprs = self.exprs
        if not inherits:
            return exprs.function("F, C", [f"return Ctx(C.rt, {name!r}, None, None, None)"], [], frame, scope)
        items = ", ".join(f"{k!r}: {exprs.ref_source(ident, scope)}" for k, ident in local_names.items())
        return exprs.function(
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
