"""Expressions: Python source written by Jinja's own code generator, made into functions
of the runtime frame.

Filters, tests, calls, undefined handling and operators therefore behave exactly as in
Jinja. A generated function loads the references its expressions read from the frame
(``F``, its parents ``F.p``) into the local names Jinja's generator uses, and sees the
template context as ``C``.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jinja2
import jinja2.runtime
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst

from .._engine import Engine
from ..errors import TemplateError
from .scopes import CScope
from .syntax import find_all, names


class ExpressionGenerator(CodeGenerator):
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


class Expressions:
    """Writes expressions as Python source and compiles the generated functions.

    ``super_ops`` is shared with the dependency analysis: ``super`` in an expression is
    loaded as a function rendering the parent block.
    """

    def __init__(self, environment: jinja2.Environment, engine: Engine, super_ops: dict[tuple[int, str], Any]) -> None:
        self.env = environment
        self.engine = engine
        self.access = engine.Access(environment)
        self.gen = ExpressionGenerator(environment, None, None)
        self.super_ops = super_ops
        self.ids = itertools.count()
        self.namespace = self._namespace()

    @property
    def template(self) -> str | None:
        return self.gen.name

    @contextmanager
    def in_template(self, name: str | None, filename: str | None) -> Iterator[None]:
        """Write code for template ``name`` (names in messages and tracebacks)."""
        saved = (self.gen.name, self.gen.filename)
        self.gen.name, self.gen.filename = name, filename
        try:
            yield
        finally:
            self.gen.name, self.gen.filename = saved

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

    def output_source(self, child: nodes.Expr, frame: Frame) -> str:
        """``escape_text(value)``: Jinja's ``escape(value)`` (with the environment's
        finalize, if any) as a plain string."""
        finalize = self.gen._make_finalize()

        def pre() -> None:
            self.gen.write("escape_text(")
            if finalize.src is not None:
                self.gen.write(finalize.src)

        return self.source(child, frame, pre=pre, post=lambda: self.gen._output_child_post(child, frame, finalize))

    def register_filters(self, node: nodes.Node) -> None:
        for kind, items, store in (
            ("filter", find_all(node, nodes.Filter), self.gen.filters),
            ("test", find_all(node, nodes.Test), self.gen.tests),
        ):
            for item in items:
                if item.name not in store:
                    alias = f"{kind[0]}_{item.name}_{len(store)}"
                    store[item.name] = alias
                    table = self.env.filters if kind == "filter" else self.env.tests
                    self.namespace[alias] = table[item.name]

    def target_source(self, target: nodes.Node, frame: Frame, scope: CScope, frame_var: str = "F") -> str:
        """Where an assignment target stores, as an assignable Python expression."""
        if isinstance(target, nodes.Name):
            return self.ref_source(frame.symbols.ref(target.name), scope, frame_var)
        if isinstance(target, nodes.NSRef):
            return f"{frame.symbols.ref(target.name)}[{target.attr!r}]"
        if isinstance(target, (nodes.Tuple, nodes.List)):
            inner = ", ".join(self.target_source(item, frame, scope, frame_var) for item in target.items)
            return f"({inner},)"
        raise TemplateError(f"cannot assign to {type(target).__name__}", template=self.template, lineno=target.lineno)

    def ref_source(self, ident: str, scope: CScope, frame_var: str = "F") -> str:
        hops, index = scope.locate(ident)
        return f"{frame_var}{'.p' * hops}.v[{index}]"

    def prologue(self, needs: Sequence[nodes.Node], frame: Frame, scope: CScope, frame_var: str = "F") -> list[str]:
        """Load the references the given expressions read into local names."""
        idents: dict[str, None] = {}
        for node in needs:
            for name in names(node):
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
        """A function ``params -> ...`` running ``body`` after loading what ``needs`` read."""
        lines = self.prologue(needs, frame, scope)
        text = "\n".join([*lines, *body])
        if "context" in text:
            lines.insert(0, "context = C.jinja_context()")
        name = f"_lt{next(self.ids)}"
        src = f"def {name}({params}):\n" + "\n".join("    " + line for line in [*lines, *body])
        code = compile(src, f"<livetemplate {self.template or 'template'}>", "exec")
        exec(code, self.namespace)
        return self.namespace.pop(name)  # type: ignore[no-any-return]

    def target_function(self, target: nodes.Node, frame: Frame, scope: CScope) -> Callable[..., Any]:
        """``(F, value)``: store ``value`` in ``target``."""
        return self.function("F, value", [f"{self.target_source(target, frame, scope)} = value"], [], frame, scope)

    def const(self, value: Any) -> str:
        """A name under which generated code sees ``value``."""
        name = f"_c{next(self.ids)}"
        self.namespace[name] = value
        return name

    def _namespace(self) -> dict[str, Any]:
        runtime = jinja2.runtime
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
