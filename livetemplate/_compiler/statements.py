"""Statements of one template body: output, ``if``, ``for``, ``set``, ``with``,
``filter`` and scoped blocks of code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import Frame, find_undeclared

from ..wire import BRANCH_MARKER_BASE
from .core import CompilerBase
from .deps import VOLATILE, Dep
from .keyattr import find_key_attribute
from .scopes import Builder, CScope
from .syntax import is_name, stored_names


class Statements(CompilerBase):
    def visit_Output(self, node: nodes.Output, builder: Builder, frame: Frame, scope: CScope) -> None:
        if frame.require_output_check:
            return
        gen = self.exprs.gen
        finalize = gen._make_finalize()
        for child in node.nodes:
            try:
                if not (finalize.const or isinstance(child, nodes.TemplateData)):
                    raise nodes.Impossible()
                const = gen._output_child_to_const(child, frame, finalize)
            except (nodes.Impossible, Exception):
                self.dynamic_output(child, builder, frame, scope)
            else:
                builder.text(const)

    def dynamic_output(self, child: nodes.Expr, builder: Builder, frame: Frame, scope: CScope) -> None:
        if isinstance(child, nodes.Call) and not child.args and not child.kwargs and is_name(child.node, "super"):
            self.super_call(child, builder, frame, scope)
            return
        if isinstance(child, nodes.Call) and is_name(child.node, "loop"):
            ident = frame.symbols.find_ref("loop")
            loop_op = self.recursive_loops.get((id(scope.owner(ident)), ident)) if ident else None
            if loop_op is not None and len(child.args) == 1 and not child.kwargs:
                self.recursion(child, loop_op, builder, frame, scope)
                return
        if isinstance(child, nodes.Call) and self.deps.macro_callee(child.node, frame, scope) is not None:
            self.call(child, None, builder, frame, scope, escape=True)
            return
        op = self.op(self.engine.K_OUTPUT, child)
        op.fn = self.exprs.function("F, C", [f"return {self.exprs.output_source(child, frame)}"], [child], frame, scope)
        self.slot(op, self.deps.expr(child, frame, scope), builder, scope)

    def visit_If(self, node: nodes.If, builder: Builder, frame: Frame, scope: CScope) -> None:
        if_frame = frame.soft()
        op = self.op(self.engine.K_COND, node)
        tests = [node.test] + [elif_.test for elif_ in node.elif_]
        bodies = [node.body] + [elif_.body for elif_ in node.elif_]
        if node.else_:
            bodies.append(node.else_)
        op.tests = tuple(self.test_function(test, if_frame, scope) for test in tests)
        op.blocks = tuple(self.branch(body, if_frame, scope) for body in bodies)
        deps: list[Dep] = []
        for test in tests:
            deps.extend(self.deps.expr(test, if_frame, scope))
        for block in op.blocks:
            deps.extend(self.deps.blocks[id(block)])
            if any(sub.kind == self.engine.K_ASSIGN for sub in self.walk_soft(block)):
                deps.append(VOLATILE)  # assignments leak out of an if: always run it
        ranged = [b for b in op.blocks if b.has_range]
        if len(ranged) > 1:
            for b in ranged:
                b.marker = str(BRANCH_MARKER_BASE + b.uid)
        self.slot(op, deps, builder, scope)

    def test_function(self, test: nodes.Node, frame: Frame, scope: CScope) -> Any:
        return self.exprs.function("F, C", [f"return {self.exprs.source(test, frame)}"], [test], frame, scope)

    def branch(self, body: Iterable[nodes.Node], frame: Frame, scope: CScope) -> Any:
        """A branch of an ``if``: what is defined in it is known only inside it."""
        with self.deps.in_branch():
            return self.block(body, frame, scope)

    def walk_soft(self, block: Any) -> Iterable[Any]:
        """Ops of ``block`` and of the branches nested in it (same frame)."""
        for op in block.ops:
            yield op
            if op.kind == self.engine.K_COND:
                for b in op.blocks:
                    yield from self.walk_soft(b)

    def visit_For(self, node: nodes.For, builder: Builder, frame: Frame, scope: CScope) -> None:
        exprs = self.exprs
        loop_frame = frame.inner()
        loop_frame.loop_frame = True
        extended = (
            node.recursive
            or "loop" in find_undeclared(node.iter_child_nodes(only=("body",)), ("loop",))
            or any(block.scoped for block in node.find_all(nodes.Block))
        )
        loop_ref = loop_frame.symbols.declare_parameter("loop") if extended else None
        loop_frame.symbols.analyze_node(node, for_branch="body")
        for name in node.find_all(nodes.Name):
            if name.ctx == "store" and name.name == "loop":
                self.fail("Can't assign to special loop variable in for-loop target", name)

        op = self.op(self.engine.K_LOOP, node)
        body_scope = self.new_scope(loop_frame.symbols, scope)
        op.scope = body_scope.runtime
        op.fn = exprs.function("F, C", [f"return {exprs.source(node.iter, frame)}"], [node.iter], frame, scope)
        if isinstance(node.target, nodes.Name):
            op.target_index = body_scope.index(loop_frame.symbols.ref(node.target.name))
        else:
            op.bind = exprs.target_function(node.target, loop_frame, body_scope)
        deps = self.deps.expr(node.iter, frame, scope)
        if node.test is not None:
            deps.extend(self.loop_filter(op, node, frame, scope))
        if extended:
            assert loop_ref is not None
            op.extended = True
            op.loop_index = body_scope.index(loop_ref)
            if node.recursive:
                self.recursive_loops[(id(body_scope), loop_ref)] = op
                deps.append(VOLATILE)
        op.block = self.block(node.body, loop_frame, body_scope, items=True)
        self.deps.gate_items(op.block, body_scope)
        deps.extend(self.deps.blocks[id(op.block)])
        if node.else_:
            else_frame = frame.inner()
            else_frame.symbols.analyze_node(node, for_branch="else")
            else_scope = self.new_scope(else_frame.symbols, scope)
            op.else_scope = else_scope.runtime
            op.else_block = self.block(node.else_, else_frame, else_scope)
            deps.extend(self.deps.blocks[id(op.else_block)])
        self.key(op)
        self.slot(op, deps, builder, scope)

    def loop_filter(self, op: Any, node: nodes.For, frame: Frame, scope: CScope) -> list[Dep]:
        """``for ... if test``: the test, in a frame of its own; returns its dependencies."""
        assert node.test is not None
        test_frame = frame.inner()
        test_frame.symbols.analyze_node(node, for_branch="test")
        test_scope = self.new_scope(test_frame.symbols, scope)
        op.test_scope = test_scope.runtime
        op.test = self.test_function(node.test, test_frame, test_scope)
        # as in Jinja, an item that passes is the target packed again (a tuple for a tuple target)
        target = self.exprs.target_source(node.target, test_frame, test_scope)
        op.test_bind = self.exprs.function(
            "F, value", [f"{target} = value", f"return {target}"], [], test_frame, test_scope
        )
        return self.deps.expr(node.test, test_frame, test_scope)

    def key(self, op: Any) -> None:
        """Find how the loop's items are keyed: the data-key of their root element."""
        engine = self.engine
        block = op.block
        outputs = {sub.index for sub in block.ops if sub.kind == engine.K_OUTPUT}
        parts = find_key_attribute(block.statics, outputs)
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

    def recursion(self, call: nodes.Call, loop_op: Any, builder: Builder, frame: Frame, scope: CScope) -> None:
        """``{{ loop(children) }}`` in a recursive loop."""
        op = self.op(self.engine.K_RECURSE, call)
        op.loop = loop_op
        op.hops, op.loop_index = scope.locate(frame.symbols.ref("loop"))
        arg = call.args[0]
        op.fn = self.exprs.function("F, C", [f"return {self.exprs.source(arg, frame)}"], [arg], frame, scope)
        self.slot(op, [VOLATILE], builder, scope)

    def visit_Assign(self, node: nodes.Assign, builder: Builder, frame: Frame, scope: CScope) -> None:
        exprs = self.exprs
        self.deps.stored(node.target, frame, scope)
        op = self.op(self.engine.K_ASSIGN, node)
        lines = []
        for ref in dict.fromkeys(n.name for n in node.find_all(nodes.NSRef)):
            lines.append(f"if not isinstance({frame.symbols.ref(ref)}, Namespace):")
            lines.append('    raise TemplateRuntimeError("cannot assign attribute on non-namespace object")')
        lines.append(f"{exprs.target_source(node.target, frame, scope)} = {exprs.source(node.node, frame)}")
        lines.extend(self.exports(node.target, frame, scope))
        op.fn = exprs.function("F, C, rt", lines, [node.node, node.target], frame, scope)
        deps = self.deps.expr(node.node, frame, scope)
        if node.find(nodes.NSRef) is not None:
            self.side_effects.add(id(op))  # it changes a namespace: never run twice
            deps.append(VOLATILE)
        self.deps.ops[id(op)] = deps
        builder.statement(op)

    def visit_AssignBlock(self, node: nodes.AssignBlock, builder: Builder, frame: Frame, scope: CScope) -> None:
        exprs = self.exprs
        block_frame, inner = self.enter(node, frame, scope)
        block_frame.require_output_check = False
        body = self.block(node.body, block_frame, inner)
        block_frame.buffer = "_buf"
        if node.filter is not None:
            value = exprs.source(node.filter, block_frame, filter_node=True)
            needs: list[nodes.Node] = [node.filter]
        else:
            value = "concat(_buf)"
            needs = []
        self.deps.stored(node.target, frame, scope)
        op = self.op(self.engine.K_ASSIGN, node)
        lines = [
            f"Fb = enter({exprs.const(inner.runtime)}, F, C)",
            f"_buf = [render_text(rt, {exprs.const(body)}, Fb, C)]",
            *exprs.prologue(needs, block_frame, inner, frame_var="Fb"),
            f"{exprs.target_source(node.target, frame, scope)} = Markup({value})",
            *self.exports(node.target, frame, scope),
        ]
        op.fn = exprs.function("F, C, rt", lines, [node.target], frame, scope)
        self.deps.ops[id(op)] = self.inner_deps(body, node.filter, block_frame, inner, scope)
        builder.statement(op)

    def inner_deps(self, body: Any, expr: nodes.Expr | None, frame: Frame, inner: CScope, scope: CScope) -> list[Dep]:
        """The dependencies of ``body`` and ``expr`` (both in ``inner``) seen from ``scope``."""
        deps = self.deps.blocks[id(body)]
        if expr is not None:
            deps = [*deps, *self.deps.expr(expr, frame, inner)]
        return self.deps.translate(deps, inner, scope)

    def exports(self, target: nodes.Expr, frame: Frame, scope: CScope) -> list[str]:
        """Top-level assignments also go to the context, as Jinja does."""
        if not frame.toplevel:
            return []
        return [
            f"C.vars[{name!r}] = {self.exprs.ref_source(frame.symbols.ref(name), scope)}"
            for name in stored_names(target)
        ]

    def enter(self, node: nodes.Node, frame: Frame, scope: CScope) -> tuple[Frame, CScope]:
        """The frame and scope of a statement with a scope of its own, nested in ``scope``."""
        inner_frame = frame.inner()
        inner_frame.symbols.analyze_node(node)
        return inner_frame, self.new_scope(inner_frame.symbols, scope)

    def visit_With(self, node: nodes.With, builder: Builder, frame: Frame, scope: CScope) -> None:
        with_frame, inner = self.enter(node, frame, scope)
        op = self.op(self.engine.K_SCOPE, node)
        op.scope = inner.runtime
        lines = []
        deps: list[Dep] = []
        for target, expr in zip(node.targets, node.values, strict=True):
            target_source = self.exprs.target_source(target, with_frame, inner, frame_var="Fs")
            lines.append(f"{target_source} = {self.exprs.source(expr, frame)}")
            deps.extend(self.deps.expr(expr, frame, scope))
        op.fn = self.exprs.function("F, C, Fs", lines, list(node.values), frame, scope)
        op.block = self.block(node.body, with_frame, inner)
        deps.extend(self.deps.translate(self.deps.blocks[id(op.block)], inner, scope))
        self.slot(op, deps, builder, scope)

    def visit_FilterBlock(self, node: nodes.FilterBlock, builder: Builder, frame: Frame, scope: CScope) -> None:
        exprs = self.exprs
        filter_frame, inner = self.enter(node, frame, scope)
        body = self.block(node.body, filter_frame, inner)
        filter_frame.buffer = "_buf"
        op = self.op(self.engine.K_TEXT, node)
        lines = [
            f"Fb = enter({exprs.const(inner.runtime)}, F, C)",
            f"_buf = [render_text(C.rt, {exprs.const(body)}, Fb, C)]",
            *exprs.prologue([node.filter], filter_frame, inner, frame_var="Fb"),
            f"return {exprs.source(node.filter, filter_frame, filter_node=True)}",
        ]
        op.fn = exprs.function("F, C", lines, [], frame, scope)
        self.slot(op, self.inner_deps(body, node.filter, filter_frame, inner, scope), builder, scope)

    def visit_Scope(self, node: nodes.Scope, builder: Builder, frame: Frame, scope: CScope) -> None:
        scope_frame, inner = self.enter(node, frame, scope)
        op = self.op(self.engine.K_SCOPE, node)
        op.scope = inner.runtime
        op.block = self.block(node.body, scope_frame, inner)
        self.slot(op, self.inner_deps(op.block, None, scope_frame, inner, scope), builder, scope)
