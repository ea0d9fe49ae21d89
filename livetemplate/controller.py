"""Controllers: the object whose methods are the app's actions and lifecycle hooks."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

__all__ = ["HOOKS", "Actions", "action_name", "call"]

#: Lifecycle methods, never reachable as actions.
HOOKS = frozenset({"mount", "on_connect", "on_disconnect"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_VALID = re.compile(r"[a-z][a-z0-9_]*\Z")


def action_name(name: str) -> str | None:
    """The method name an action maps to (``save-draft``, ``saveDraft``, ``SaveDraft``
    and ``save_draft`` all map to ``save_draft``), or None if it cannot name a method."""
    snake = _CAMEL.sub("_", name.strip()).replace("-", "_").lower()
    return snake if _VALID.match(snake) else None


class Actions:
    """Finds a controller's action methods by name."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self._cache: dict[str, Callable[..., Any] | None] = {}

    def find(self, name: str) -> Callable[..., Any] | None:
        """The bound method for action ``name``, or None."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        method = None
        attr = action_name(name)
        if attr is not None and attr not in HOOKS:
            candidate = getattr(self.controller, attr, None)
            if callable(candidate) and inspect.ismethod(candidate) and not isinstance(candidate, type):
                method = candidate
        if len(self._cache) < 4096:
            self._cache[name] = method
        return method

    def hook(self, name: str) -> Callable[..., Any] | None:
        method = getattr(self.controller, name, None)
        return method if callable(method) else None


async def call(function: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async function."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
