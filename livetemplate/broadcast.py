"""The broadcaster interface: how messages travel between the instances of an app.

A broadcaster delivers opaque bytes published on a channel to every handler subscribed to
that channel, in every process that shares it (its own process included). The app's hub
puts an envelope in those bytes and ignores its own messages when they come back.
Implementations live in :mod:`livetemplate.backends`: in-process and Redis pub/sub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["BroadcastUnavailable", "Broadcaster", "Handler", "ResubscribeHook"]

Handler = Callable[[bytes], Awaitable[None]]
#: Called by a shared broadcaster after it subscribed again (a restart, a failover) with the
#: channels it holds: messages published meanwhile were lost, so the app reads its state again.
#: A broadcaster that can lose messages has an ``on_resubscribe`` attribute of this type.
ResubscribeHook = Callable[[list[str]], Awaitable[None]]


class BroadcastUnavailable(Exception):
    """A message could not be published: the shared broadcaster is unreachable."""


@runtime_checkable
class Broadcaster(Protocol):
    """Publish bytes on channels; deliver them to subscribed handlers."""

    async def publish(self, channel: str, message: bytes) -> None:
        """Deliver ``message`` to every handler subscribed to ``channel``, in every process."""

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Call ``handler`` with every message published on ``channel``."""

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``channel``."""

    async def close(self) -> None:
        """Release connections and background tasks."""
