"""The embedded backends: a session store in a dict and a broadcaster within the process.

They are the defaults of a single instance (tier 1) and the test doubles of the interfaces.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import msgspec

from ..broadcast import Handler
from ..ops.logs import get_logger
from ..periodic import Periodic
from ..sessions import Snapshot, StaleVersion
from . import Backend

__all__ = ["InProcessBroadcaster", "MemorySessionStore", "from_url"]

logger = get_logger(__name__)


class _Entry(msgspec.Struct, gc=False):
    """A stored snapshot and when it was last used; never tracked by the garbage collector
    (every commit makes one)."""

    snapshot: Snapshot
    seen: float


class MemorySessionStore:
    """Session groups in a dict of this process. Entries not read or written for ``ttl``
    seconds expire; a background sweep removes them every ``sweep_interval`` seconds
    (started on first use, stopped by :meth:`close`). At most ``max_sessions`` are kept: past
    that the least recently used go first, except those a ``keepers`` predicate holds on to
    (apps add one for the groups with open connections); ``on_evict`` counts them."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600,
        sweep_interval: float = 3600,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or sweep_interval <= 0 or max_sessions <= 0:
            raise ValueError("ttl, sweep_interval and max_sessions must be positive")
        self.ttl = ttl
        self.sweep_interval = sweep_interval
        self.max_sessions = max_sessions
        self.keepers: list[Callable[[str], bool]] = []
        self.on_evict: Callable[[], None] | None = None
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._claims: dict[str, float] = {}  # token -> until when it is taken
        self._sweeper = Periodic(self.sweep, sweep_interval)

    async def get(self, key: str) -> Snapshot | None:
        self._sweeper.start()
        now = self._clock()
        entry = self._take(key, now)
        if entry is None:
            return None
        entry.seen = now
        self._entries[key] = entry  # most recently used last
        return entry.snapshot

    async def save(self, key: str, data: bytes, *, version: int) -> int:
        return self.save_at_once(key, data, version=version)

    @property
    def saves_at_once(self) -> bool:
        """Whether :meth:`save_at_once` is what :meth:`save` does (a subclass may change ``save``)."""
        return type(self).save is MemorySessionStore.save

    def save_at_once(self, key: str, data: bytes, *, version: int) -> int:
        """:meth:`save` as a plain call: it never waits."""
        self._sweeper.start()
        now = self._clock()
        current = self._take(key, now)
        if (current.snapshot.version if current is not None else 0) != version:
            if current is not None:
                current.seen = now
                self._entries[key] = current  # most recently used last
            raise StaleVersion(key, version)
        self._entries[key] = _Entry(Snapshot(bytes(data), version + 1), now)
        if len(self._entries) > self.max_sessions:
            self._evict()
        return version + 1

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def claim(self, token: str, *, ttl: float) -> bool:
        self._sweeper.start()
        now = self._clock()
        claims = self._claims
        for oldest, until in list(itertools.islice(claims.items(), 2)):  # the oldest expire first
            if until <= now:
                del claims[oldest]
        if claims.get(token, now) > now:
            return False
        claims.pop(token, None)
        claims[token] = now + ttl  # kept in the order they expire (one time to live for all)
        return True

    async def list(self) -> list[str]:
        now = self._clock()
        return [key for key, entry in self._entries.items() if now - entry.seen <= self.ttl]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        await self._sweeper.stop()

    def _take(self, key: str, now: float) -> _Entry | None:
        """Remove ``key``'s entry and return it, or None if there is none or it expired."""
        entry = self._entries.pop(key, None)
        return entry if entry is not None and now - entry.seen <= self.ttl else None

    def sweep(self) -> int:
        """Remove expired entries now; returns how many."""
        now = self._clock()
        expired = [key for key, entry in self._entries.items() if now - entry.seen > self.ttl]
        for key in expired:
            del self._entries[key]
        for token in [token for token, until in self._claims.items() if until <= now]:
            del self._claims[token]
        return len(expired)

    def _evict(self) -> None:
        """Drop the least recently used entry that no keeper holds on to."""
        for key in self._entries:
            if not any(keep(key) for keep in self.keepers):
                del self._entries[key]
                logger.info("memory session store full (%d): evicted the least recently used", self.max_sessions)
                if self.on_evict is not None:
                    self.on_evict()
                return

    def __len__(self) -> int:
        return len(self._entries)


class InProcessBroadcaster:
    """Delivers within this process, to each handler in turn; a failing handler is logged
    and does not stop delivery to the others. Several apps in one process may share one
    (they then see each other's messages, as instances sharing Redis do)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        #: How many channels each handler is subscribed to.
        self._uses: collections.Counter[Handler] = collections.Counter()

    async def publish(self, channel: str, message: bytes) -> None:
        for handler in list(self._handlers.get(channel, ())):
            try:
                await handler(message)
            except Exception:
                logger.exception("handler for channel %r failed", channel)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)
        self._uses[handler] += 1

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[channel]
            self._uses[handler] -= 1
            if not self._uses[handler]:
                del self._uses[handler]

    async def close(self) -> None:
        self._handlers.clear()
        self._uses.clear()

    def channels(self) -> list[str]:
        """Channels with at least one handler."""
        return list(self._handlers)

    def alone(self, handler: Handler) -> bool:
        """Whether no handler but ``handler`` is subscribed to any channel (one app in the
        process, the usual case)."""
        uses = self._uses
        return not uses or (len(uses) == 1 and handler in uses)

    def heard_besides(self, channel: str, handler: Handler) -> bool:
        """Whether a handler other than ``handler`` is subscribed to ``channel``."""
        if self.alone(handler):
            return False
        handlers = self._handlers.get(channel)
        return handlers is not None and (len(handlers) > 1 or handlers[0] != handler)


def from_url(url: str) -> Backend:
    """``memory://``: a new memory store and in-process broadcaster. ``?ttl=SECONDS`` sets the
    store's time to live."""
    query = dict(parse_qsl(urlsplit(url).query))
    unknown = sorted(set(query) - {"ttl"})
    if unknown:
        raise ValueError(f"unknown option(s) in {url!r}: {', '.join(unknown)}")
    store = MemorySessionStore(ttl=float(query["ttl"])) if "ttl" in query else MemorySessionStore()
    return Backend(store, InProcessBroadcaster())
