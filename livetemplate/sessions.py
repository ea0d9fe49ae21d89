"""Session stores: where the persisted state of each session group lives.

The store holds opaque bytes per group id (the persisted fields, as MessagePack).
:class:`MemorySessionStore` is the embedded default; a shared store (Redis) lets several
instances serve the same sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MemorySessionStore", "SessionStore"]


@runtime_checkable
class SessionStore(Protocol):
    """Persisted state of session groups, as bytes per group id."""

    async def get(self, group_id: str) -> bytes | None:
        """The stored bytes, or None."""

    async def set(self, group_id: str, data: bytes) -> None:
        """Store ``data`` (and refresh the entry's time to live)."""

    async def delete(self, group_id: str) -> None:
        """Forget the group."""

    async def list(self) -> list[str]:
        """The ids of the stored groups."""

    async def ping(self) -> None:
        """Raise if the store cannot be reached (for readiness checks)."""

    async def close(self) -> None:
        """Release connections and background tasks."""


class MemorySessionStore:
    """The embedded store: a dict in this process. Entries not read or written for
    ``ttl`` seconds expire; a background sweep removes them every ``sweep_interval``
    seconds (started on first use, stopped by :meth:`close`)."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600,
        sweep_interval: float = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or sweep_interval <= 0:
            raise ValueError("ttl and sweep_interval must be positive")
        self.ttl = ttl
        self.sweep_interval = sweep_interval
        self._clock = clock
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def get(self, group_id: str) -> bytes | None:
        self._start()
        entry = self._entries.get(group_id)
        if entry is None:
            return None
        now = self._clock()
        if now - entry[1] > self.ttl:
            del self._entries[group_id]
            return None
        self._entries[group_id] = (entry[0], now)
        return entry[0]

    async def set(self, group_id: str, data: bytes) -> None:
        self._start()
        self._entries[group_id] = (bytes(data), self._clock())

    async def delete(self, group_id: str) -> None:
        self._entries.pop(group_id, None)

    async def list(self) -> list[str]:
        now = self._clock()
        return [gid for gid, (_, seen) in self._entries.items() if now - seen <= self.ttl]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def sweep(self) -> int:
        """Remove expired entries now; returns how many."""
        now = self._clock()
        expired = [gid for gid, (_, seen) in self._entries.items() if now - seen > self.ttl]
        for gid in expired:
            del self._entries[gid]
        return len(expired)

    def __len__(self) -> int:
        return len(self._entries)

    def _start(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()
