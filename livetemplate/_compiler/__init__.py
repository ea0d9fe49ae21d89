"""Compile a Jinja2 template into a LiveTemplate program.

Jinja2 parses the source (:mod:`.syntax`). Statements are compiled into the engine's
blocks, slots and frame layouts, mirroring how Jinja's own code generator scopes names
(:mod:`.scopes`; statements in :mod:`.statements`, :mod:`.macros` and :mod:`.templates`).
Every expression is written as Python source by Jinja's own code generator and becomes a
small function of the runtime frame (:mod:`.expressions`).

Alongside, the compiler works out each slot's dependencies (:mod:`.deps`): the attribute
paths its output is a pure function of. The engine skips a slot, a branch or a loop item
whose paths read the same scalar values again.
"""

from __future__ import annotations

from .macros import Macros
from .statements import Statements
from .syntax import parse
from .templates import Templates

__all__ = ["Compiler", "parse"]


class Compiler(Templates, Macros, Statements):
    """Compiles one template (with what it includes and extends) into a program:
    ``Compiler(environment, engine, max_depth).compile(source, name, filename)``."""
