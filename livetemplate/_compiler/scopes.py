"""Compile-time scopes: where each name lives in the runtime frames, and block builders.

The compiler scopes names exactly as Jinja's own code generator does, with its ``Frame``
and ``Symbols``; a :class:`CScope` maps one Jinja scope onto one runtime frame (an index
for every reference) and knows how its frame is filled on entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2.idtracking import VAR_LOAD_ALIAS, VAR_LOAD_RESOLVE, Symbols

from .._engine import Engine


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

    def root(self) -> CScope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def reserve_loads(self) -> None:
        """Give every value loaded on entry its index (before gates add theirs)."""
        for ident in self.symbols.loads:
            self.index(ident)

    def lay_out(self, engine: Engine) -> None:
        """Fix the runtime frame layout: its size and the loads run on entry."""
        loads = []
        for ident, (kind, param) in self.symbols.loads.items():
            if kind == VAR_LOAD_RESOLVE:
                loads.append((self.index(ident), engine.LOAD_RESOLVE, param, 0))
            elif kind == VAR_LOAD_ALIAS:
                assert self.parent is not None
                owner = self.parent.owner(param)
                loads.append((self.index(ident), engine.LOAD_ALIAS, self.level - owner.level, owner.index(param)))
        self.runtime.size = len(self.indexes)
        self.runtime.loads = tuple(loads)


@dataclass
class Boundary:
    """Where a scope with a context of its own (an included template, a block) sits:
    the scope it is rendered from, and the locals it was given (name -> reference)."""

    outer: CScope
    locals: dict[str, str]
    inherits: bool = True  # False for ``without context``: only the globals are visible


class Builder:
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
