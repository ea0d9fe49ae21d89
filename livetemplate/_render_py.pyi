# Typing of the render engine for its Python users (the compiler, the template API).
# The module is also compiled by Cython, whose static types are in ext/_render_c.pxd.
from collections.abc import Callable
from typing import Any, Final

import jinja2
from jinja2.runtime import Macro

COMPILED: bool
K_OUTPUT: Final[int]
K_COND: Final[int]
K_LOOP: Final[int]
K_CALL: Final[int]
K_SCOPE: Final[int]
K_TEXT: Final[int]
K_RECURSE: Final[int]
K_ASSIGN: Final[int]
LOAD_RESOLVE: Final[int]
LOAD_ALIAS: Final[int]
KEY_SLOTS: Final[int]
KEY_HASH: Final[int]

class Path:
    hops: int
    index: int
    name: str | None
    keys: tuple[Any, ...]
    items: tuple[bool, ...]
    def __init__(self, hops: int, index: int, name: str | None, attrs: tuple[tuple[bool, Any], ...]) -> None: ...

class Gate:
    paths: tuple[Path, ...]
    def __init__(self, paths: tuple[Path, ...]) -> None: ...

class Scope:
    size: int
    loads: tuple[tuple[int, int, Any, int], ...]

class Block:
    uid: int
    statics: list[str]
    wire_statics: list[str]
    ops: list[Op]
    nslots: int
    gate: Gate | None
    has_range: bool
    slot_gates: bool
    marker: str | None
    def __init__(self, uid: int, statics: list[str], ops: list[Op]) -> None: ...

class Op:
    kind: int
    index: int
    template: str | None
    lineno: int | None
    gate: Gate | None
    fn: Callable[..., Any] | None
    tests: tuple[Callable[..., Any], ...]
    blocks: tuple[Block, ...]
    block: Block | None
    scope: Scope | None
    else_block: Block | None
    else_scope: Scope | None
    test: Callable[..., Any] | None
    test_scope: Scope | None
    bind: Callable[..., Any] | None
    target_index: int
    loop_index: int
    extended: bool
    key_mode: int
    key_parts: tuple[str | int, ...]
    id_slot: int
    loop: Op | None
    ctx_fn: Callable[..., Any] | None
    macro: MacroSpec | None
    alt: Any
    nested: bool
    hops: int
    test_bind: Callable[..., Any] | None
    seam: tuple[str, str, bool] | None
    def __init__(self, kind: int, index: int, template: str | None, lineno: int | None) -> None: ...

class MacroSpec:
    arg_indexes: tuple[int, ...]
    arguments: tuple[str, ...]
    block: Block
    caller: bool
    catch_kwargs: bool
    catch_varargs: bool
    defaults: Callable[..., Any] | None
    lineno: int | None
    name: str | None
    scope: Scope
    template: str | None

class Access:
    undefined: type[jinja2.Undefined]
    def __init__(self, environment: jinja2.Environment) -> None: ...
    def getattr(self, obj: Any, attribute: str) -> Any: ...
    def getitem(self, obj: Any, argument: Any) -> Any: ...

class Program:
    name: str | None
    environment: jinja2.Environment
    access: Access
    root: Block
    root_scope: Scope
    max_depth: int
    def __init__(
        self,
        name: str | None,
        environment: jinja2.Environment,
        access: Access,
        root: Block,
        root_scope: Scope,
        max_depth: int,
    ) -> None: ...

class Frame:
    p: Frame | None
    v: list[Any]

class Run: ...

class Ctx:
    vars: dict[str, Any]
    def __init__(
        self, rt: Run, name: str | None, data: Any, outer: Ctx | None, local_vars: dict[str, Any] | None
    ) -> None: ...
    def resolve(self, name: str) -> Any: ...
    def jinja_context(self) -> jinja2.runtime.Context: ...

class NodeState: ...
class RangeState: ...

class View:
    state: NodeState | None
    def __init__(self) -> None: ...

class LiveMacro(Macro): ...

def enter(scope: Scope, parent: Frame | None, C: Ctx) -> Frame: ...
def define_macro(rt: Run, spec: MacroSpec, F: Frame, C: Ctx) -> LiveMacro: ...
def bind_macro(callee: Any, *args: Any, **kwargs: Any) -> Any: ...
def render_text(rt: Run, block: Block, F: Frame, C: Ctx) -> str: ...
def escape_text(v: Any) -> str: ...
def guard_value(s: str) -> str: ...
def guard_static(s: str) -> str: ...
def scalar(v: Any) -> Any: ...
def same_snapshot(a: Any, b: Any) -> bool: ...
def same_value(x: Any, y: Any) -> bool: ...
def longest_increasing(seq: list[int]) -> set[int]: ...
def render_html(program: Program, data: Any, extra: dict[str, Any] | None) -> str: ...
def render_tree(program: Program, data: Any, view: View, extra: dict[str, Any] | None) -> dict[str, Any]: ...
def clone_view(view: View) -> View: ...
def same_view(a: View, b: View) -> bool: ...
def clone_state(st: Any) -> Any: ...
def same_state(a: Any, b: Any) -> bool: ...
