"""Macros, call blocks and call slots.

A macro's body is a block rendered in a frame of its own below the frame it was defined
in. Called at a slot of its own (``{{ m(...) }}``, ``{% call %}``) it renders as a node
the engine updates in place; called inside an expression it renders to markup.
"""

from __future__ import annotations

from typing import Any

from jinja2 import nodes
from jinja2.compiler import Frame, find_undeclared

from ..wire import BRANCH_MARKER_BASE
from .core import CompilerBase
from .scopes import Builder, CScope


class Macros(CompilerBase):
    def visit_Macro(self, node: nodes.Macro, builder: Builder, frame: Frame, scope: CScope) -> None:
        spec = self.macro_body(node, frame, scope)
        ident = frame.symbols.ref(node.name)
        _, index = scope.locate(ident)
        self.deps.define(spec, ident, scope)
        op = self.op(self.engine.K_ASSIGN, node)
        lines = [f"F.v[{index}] = define_macro(rt, {self.exprs.const(spec)}, F, C)"]
        if frame.toplevel:
            lines.append(f"C.vars[{node.name!r}] = F.v[{index}]")
        op.fn = self.exprs.function("F, C, rt", lines, [], frame, scope)
        self.deps.ops[id(op)] = []
        builder.statement(op)

    def macro_body(self, node: nodes.Macro | nodes.CallBlock, frame: Frame, scope: CScope) -> Any:
        """Mirror Jinja's macro scoping; returns the engine's MacroSpec."""
        macro_frame = frame.inner()
        macro_frame.symbols.analyze_node(node)
        refs = [macro_frame.symbols.ref(arg.name) for arg in node.args]
        declared = {arg.name for arg in node.args}
        undeclared = find_undeclared(node.body, ("caller", "kwargs", "varargs"))
        if "caller" in undeclared and "caller" in declared:
            explicit = [arg.name for arg in node.args].index("caller")
            if explicit < len(node.args) - len(node.defaults):
                self.fail(
                    'When defining macros or call blocks the special "caller" argument must be'
                    " omitted or be given a default.",
                    node,
                )
        special = [name for name in ("caller", "kwargs", "varargs") if name in undeclared and name not in declared]
        refs += [macro_frame.symbols.declare_parameter(name) for name in special]
        macro_frame.require_output_check = False
        macro_frame.symbols.analyze_node(node)
        inner = self.new_scope(macro_frame.symbols, scope)

        spec = self.engine.MacroSpec()
        spec.name = getattr(node, "name", None)
        spec.arguments = tuple(arg.name for arg in node.args)
        spec.catch_kwargs = "kwargs" in special
        spec.catch_varargs = "varargs" in special
        spec.caller = "caller" in undeclared
        spec.scope = inner.runtime
        spec.arg_indexes = tuple(inner.index(ref) for ref in refs)
        spec.template = self.template
        spec.lineno = node.lineno
        spec.defaults = self.defaults(node, macro_frame, inner)
        spec.block = self.block(node.body, macro_frame, inner)
        if spec.block.has_range:
            spec.block.marker = str(BRANCH_MARKER_BASE + spec.block.uid)
        deps = [dep for default in node.defaults for dep in self.deps.expr(default, macro_frame, inner)]
        self.deps.macros[id(spec)] = self.deps.translate([*deps, *self.deps.blocks[id(spec.block)]], inner, scope)
        return spec

    def defaults(self, node: nodes.Macro | nodes.CallBlock, frame: Frame, inner: CScope) -> Any:
        """``(F, C)``: fill the arguments not given, evaluated in order in the macro's
        frame as Jinja does; None when there are no arguments."""
        if not node.args:
            return None
        lines = []
        params = [frame.symbols.ref(arg.name) for arg in node.args]
        for idx, arg in enumerate(node.args):
            ref = params[idx]
            lines.append(f"if {ref} is missing:")
            try:
                default = node.defaults[idx - len(node.args)]
            except IndexError:
                message = f"parameter {arg.name!r} was not provided"
                lines.append(f"    {ref} = undefined({message!r}, name={arg.name!r})")
            else:
                lines.append(f"    {ref} = {self.exprs.source(default, frame)}")
        loads = [f"{ref} = F.v[{inner.index(ref)}]" for ref in params]
        stores = [f"F.v[{inner.index(ref)}] = {ref}" for ref in params]
        return self.exprs.function("F, C", [*loads, *lines, *stores], list(node.defaults), frame, inner)

    def visit_CallBlock(self, node: nodes.CallBlock, builder: Builder, frame: Frame, scope: CScope) -> None:
        spec = self.macro_body(node, frame, scope)
        self.call(node.call, spec, builder, frame, scope, escape=False)

    def call(
        self, call: nodes.Call, caller: Any, builder: Builder, frame: Frame, scope: CScope, *, escape: bool
    ) -> None:
        """A call slot: a macro renders as a node; anything else as text."""
        exprs = self.exprs
        op = self.op(self.engine.K_CALL, call)
        op.macro = caller
        extra = {"caller": "caller"} if caller is not None else None
        bind = exprs.source(call, frame, callee_prefix="bind_macro(", extra_kwargs=extra)
        op.fn = exprs.function("F, C, caller", [f"return {bind}"], [call], frame, scope)
        if escape:
            text = exprs.source(
                call,
                frame,
                pre=lambda: exprs.gen.write("escape_text("),
                post=lambda: exprs.gen.write(")"),
                extra_kwargs=extra,
            )
        else:
            text = exprs.source(call, frame, extra_kwargs=extra)
        op.alt = exprs.function("F, C, caller", [f"return {text}"], [call], frame, scope)
        deps = self.deps.expr(call, frame, scope)
        if caller is not None:
            deps.extend(self.deps.macros[id(caller)])
        self.slot(op, deps, builder, scope)
