"""The frames waiting to be written to one connection.

Everything a connection sends goes through its outbox, in order: replies to its own messages
and pushes fanned out by the hub. Putting frames never waits for the socket, so a client that
reads slowly delays nobody else; the outbox writes them from a task of its own, which exists
only while frames wait (an idle connection costs no task). A write that fails marks the
outbox broken and drops what waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["Outbox"]

logger = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]


class Outbox:
    """Frames for one connection, written by ``write`` in the order they were put."""

    __slots__ = ("_busy", "_frames", "_idle", "_task", "broken", "pending_bytes", "write")

    def __init__(self, write: Write) -> None:
        self.write = write
        self.broken = False
        self.pending_bytes = 0
        self._frames: deque[bytes] = deque()
        self._busy = False  # a task is writing
        self._task: asyncio.Task[None] | None = None  # the background writer, while it runs
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frames: Iterable[bytes]) -> None:
        """Queue ``frames``; they are written in the background."""
        if self._queue(frames) and not self._busy:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def send(self, frames: Iterable[bytes]) -> None:
        """Queue ``frames`` and, when no write is under way, write them now in this task
        (a reply to the connection's own message: no task needed)."""
        if self._queue(frames) and not self._busy:
            self._busy = True
            await self._drain()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued frame is written (or the outbox broke); False on timeout."""
        if not self._busy:
            return True
        if self._idle is None:
            self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        return False

    def close(self) -> None:
        """Drop what waits and write nothing more."""
        self.broken = True
        self._frames.clear()
        self.pending_bytes = 0
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def _queue(self, frames: Iterable[bytes]) -> bool:
        if self.broken:
            return False
        for frame in frames:
            self._frames.append(frame)
            self.pending_bytes += len(frame)
        return bool(self._frames)

    async def _drain(self) -> None:
        frames = self._frames
        try:
            while frames and not self.broken:
                frame = frames.popleft()
                self.pending_bytes -= len(frame)
                try:
                    await self.write(frame)
                except Exception:  # the client went away mid-write
                    self.close()
        finally:
            self._busy = False
            self._task = None
            if self._idle is not None:
                self._idle.set()
                self._idle = None
