"""Broadcasters carry messages between the connections of an app, and (with a shared
broadcaster such as Redis pub/sub) between instances of it.

A broadcaster delivers opaque bytes published on a channel to every handler subscribed
to that channel. :class:`InProcessBroadcaster` is the embedded default.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["Broadcaster", "Handler", "InProcessBroadcaster"]

logger = logging.getLogger("livetemplate.broadcast")

Handler = Callable[[bytes], Awaitable[None]]


@runtime_checkable
class Broadcaster(Protocol):
    """Publish bytes on channels; deliver them to subscribed handlers."""

    async def publish(self, channel: str, message: bytes) -> None:
        """Deliver ``message`` to every handler subscribed to ``channel``."""

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Call ``handler`` with every message published on ``channel``."""

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``channel``."""

    async def close(self) -> None:
        """Release connections and background tasks."""


class InProcessBroadcaster:
    """Delivers within this process, to each handler in turn; a failing handler is
    logged and does not stop delivery to the others."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    async def publish(self, channel: str, message: bytes) -> None:
        for handler in list(self._handlers.get(channel, ())):
            try:
                await handler(message)
            except Exception:
                logger.exception("handler for channel %r failed", channel)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[channel]

    async def close(self) -> None:
        self._handlers.clear()

    def channels(self) -> list[str]:
        """Channels with at least one handler."""
        return list(self._handlers)
