"""Controllers: the object whose methods are the app's actions and lifecycle hooks.

The actions are found once, when the app is mounted, on the controller's class: every plain
function defined there (or on a base class other than ``object``) whose name does not start
with ``_``, that is not a lifecycle hook, and that takes exactly ``(self, state, ctx)``.
Class methods, static methods, properties and other attributes are never actions, and
nothing is evaluated to find them. A client names an action in snake_case, kebab-case,
camelCase or PascalCase (``save-draft``, ``saveDraft``, ``SaveDraft`` all run ``save_draft``).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import types
from collections.abc import Callable, Generator
from typing import Any

from .wire import HOOKS, MAX_ACTION_NAME

__all__ = ["Actions", "Call", "action_name", "awaitable"]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_VALID = re.compile(r"[a-z][a-z0-9_]*\Z")


def action_name(name: str) -> str | None:
    """The method name an action maps to (``save-draft``, ``saveDraft``, ``SaveDraft``
    and ``save_draft`` all map to ``save_draft``), or None if it cannot name a method."""
    if len(name) > MAX_ACTION_NAME:
        return None
    snake = _CAMEL.sub("_", name.strip()).replace("-", "_").lower()
    return snake if _VALID.match(snake) else None


def _takes_state_and_ctx(function: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return len(parameters) == 3 and all(p.kind in positional for p in parameters)


class Actions:
    """A controller's actions and hooks, found once."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self._actions: dict[str, Callable[..., Any]] = {}
        self._hooks: dict[str, Callable[..., Any]] = {}
        for cls in reversed(type(controller).__mro__[:-1]):  # base classes first, object left out
            for name, member in vars(cls).items():
                if not inspect.isfunction(member) or name.startswith("_"):
                    continue
                bound = getattr(controller, name)
                if name in HOOKS:
                    self._hooks[name] = bound
                elif _takes_state_and_ctx(member):
                    self._actions[name] = bound
                else:
                    self._actions.pop(name, None)  # a subclass redefined it as something else

    @property
    def names(self) -> list[str]:
        """The method names of the actions."""
        return sorted(self._actions)

    def find(self, name: str) -> Callable[..., Any] | None:
        """The bound method for action ``name``, or None."""
        method = self._actions.get(name)
        if method is not None:
            return method
        attr = action_name(name)
        return self._actions.get(attr) if attr is not None else None

    def hook(self, name: str) -> Callable[..., Any] | None:
        return self._hooks.get(name)


class Call:
    """One call of an action or hook, sync or async: a sync one runs in a worker thread when
    ``in_thread`` (a slow one then holds up no other session), with this context's variables.
    ``held`` is the longest stretch it kept the event loop busy, in seconds."""

    __slots__ = ("args", "function", "held", "in_thread")

    def __init__(self, function: Callable[..., Any], *args: Any, in_thread: bool = False, held: float = 0.0) -> None:
        self.function = function
        self.args = args
        self.in_thread = in_thread
        self.held = held

    def __await__(self) -> Generator[Any, Any, Any]:
        if self.in_thread and not inspect.iscoroutinefunction(self.function):
            result = yield from asyncio.to_thread(self.function, *self.args).__await__()
        else:
            result, self.held = call_inline(self.function, *self.args)
        if not awaitable(result):
            return result
        return (yield from self.timed(result))

    @types.coroutine
    def timed(self, result: Any) -> Generator[Any, Any, Any]:
        """Await ``result`` as ``await`` does, timing each stretch it runs."""
        steps = result.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.perf_counter()
            try:
                yielded = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as done:
                return done.value
            finally:
                self.held = max(self.held, time.perf_counter() - started)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # thrown into the awaiting task (a cancellation): pass it on
                value, error = None, exc


def call_inline(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Call ``function`` in this thread: its result (which :meth:`Call.timed` awaits when it
    is awaitable, an async function's coroutine) and the seconds the call took."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


#: Types whose values are never awaitable (no ``__await__``, not generators): the results
#: actions usually return, the state types and None. Bounded: a program has few of them.
_never_awaitable: set[type] = {type(None)}


def awaitable(value: Any) -> bool:
    """``inspect.isawaitable``, answered at once for the usual result (a state, None)."""
    kind = type(value)
    if kind in _never_awaitable:
        return False  # PERF: isawaitable's ABC check costs more than the sync action it follows
    if hasattr(kind, "__await__") or kind is types.GeneratorType:
        return inspect.isawaitable(value)
    if len(_never_awaitable) < 256:
        _never_awaitable.add(kind)
    return False
