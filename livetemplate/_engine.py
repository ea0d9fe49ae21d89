"""The render engine behind templates: the typed interface both of its twins provide,
and a registry to choose one by name.

``compiled`` is ``livetemplate._render_c`` (Cython), ``python`` its pure-Python twin
``livetemplate._render_py``, ``auto`` the compiled one unless extensions are disabled
(``LIVETEMPLATE_NO_EXTENSIONS=1``) or were not built. Templates bind the engine that is
selected when they are constructed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from . import _render_py as rp
from ._twins import compiled, extensions_disabled


class Engine(Protocol):
    """What the compiler, templates and the live runtime use of a render engine.

    ``_render_py`` is checked against it by mypy; the compiled module, built from the
    same source, by ``tests/unit/engine/test_engine.py`` (same members, same signatures).
    """

    # fmt: off
    @property
    def COMPILED(self) -> bool: ...
    # op kinds, scope load instructions and range key modes
    @property
    def K_OUTPUT(self) -> int: ...
    @property
    def K_COND(self) -> int: ...
    @property
    def K_LOOP(self) -> int: ...
    @property
    def K_CALL(self) -> int: ...
    @property
    def K_SCOPE(self) -> int: ...
    @property
    def K_TEXT(self) -> int: ...
    @property
    def K_RECURSE(self) -> int: ...
    @property
    def K_ASSIGN(self) -> int: ...
    @property
    def LOAD_RESOLVE(self) -> int: ...
    @property
    def LOAD_ALIAS(self) -> int: ...
    @property
    def KEY_SLOTS(self) -> int: ...
    @property
    def KEY_HASH(self) -> int: ...
    # the program the compiler builds
    @property
    def Path(self) -> type[rp.Path]: ...
    @property
    def Gate(self) -> type[rp.Gate]: ...
    @property
    def Scope(self) -> type[rp.Scope]: ...
    @property
    def Block(self) -> type[rp.Block]: ...
    @property
    def Op(self) -> type[rp.Op]: ...
    @property
    def MacroSpec(self) -> type[rp.MacroSpec]: ...
    @property
    def Access(self) -> type[rp.Access]: ...
    @property
    def Program(self) -> type[rp.Program]: ...
    # what generated code calls
    @property
    def Ctx(self) -> type[rp.Ctx]: ...
    def enter(self, scope: rp.Scope, parent: rp.Frame | None, C: rp.Ctx) -> rp.Frame: ...
    def define_macro(self, rt: rp.Run, spec: rp.MacroSpec, F: rp.Frame, C: rp.Ctx) -> rp.LiveMacro: ...
    def bind_macro(self, callee: Any, *args: Any, **kwargs: Any) -> Any: ...
    def render_text(self, rt: rp.Run, block: rp.Block, F: rp.Frame, C: rp.Ctx) -> str: ...
    def escape_text(self, v: Any) -> str: ...
    def guard_static(self, s: str) -> str: ...
    # rendering
    @property
    def View(self) -> type[rp.View]: ...
    def render_html(self, program: rp.Program, data: Any, extra: dict[str, Any] | None) -> str: ...
    def render_tree(
        self, program: rp.Program, data: Any, view: rp.View, extra: dict[str, Any] | None
    ) -> dict[str, Any]: ...
    def clone_view(self, view: rp.View) -> rp.View: ...
    def same_view(self, a: rp.View, b: rp.View) -> bool: ...
    # fmt: on


def _python() -> Engine:
    return rp


def _compiled() -> Engine:
    # built from _render_py's source; tests/unit/engine/test_engine.py compares the two
    return cast(Engine, compiled("_render"))


#: The engines by name (``auto`` picks one of them).
ENGINES: dict[str, Callable[[], Engine]] = {"compiled": _compiled, "python": _python}


def load(name: str = "auto") -> Engine:
    """The engine called ``name``: ``compiled`` (ImportError when it was not built),
    ``python``, or ``auto``."""
    if name == "auto":
        if extensions_disabled():
            return _python()
        try:
            return _compiled()
        except ImportError:
            return _python()
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}: choose compiled, python or auto") from None
    return factory()


_selected: Engine = load()


def current() -> Engine:
    """The engine new templates bind."""
    return _selected


def select(name: str) -> Engine:
    """Make the engine called ``name`` the one new templates bind; returns it."""
    global _selected
    _selected = load(name)
    return _selected


def implementation() -> str:
    """``"compiled"`` when the Cython engine is in use, else ``"python"``."""
    return "compiled" if _selected.COMPILED else "python"
