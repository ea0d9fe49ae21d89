"""The lock of a session group and of a tab: tasks take turns in the order they asked, as
with ``asyncio.Lock``, and taking a free lock costs no coroutine.

Every run of an action takes two (its tab's and its group's), and they are nearly always
free; a broadcast takes them once per recipient. ``asyncio.Lock`` makes three coroutines a
``async with`` (``__aenter__``, ``acquire``, ``__aexit__``); here a free lock is taken and
given back by two plain calls, and only a task that finds it held waits on a future.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Generator
from types import TracebackType

__all__ = ["Lock"]


class _Ready:
    """An awaitable that is done at once (what ``__aenter__`` gives for a free lock)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that is done at its first step


_READY = _Ready()


class Lock:
    """Mutual exclusion between the tasks of one event loop, for ``async with``; the tasks
    that find it held get it in the order they came. A release hands it straight to the
    first of them, so a task arriving meanwhile cannot take it out of turn."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: collections.deque[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        waiting = len(self._waiters) if self._waiters else 0
        return f"<Lock {'held' if self._held else 'free'}, {waiting} waiting>"

    def locked(self) -> bool:
        """Whether a task holds it."""
        return self._held

    def __aenter__(self) -> Awaitable[None]:
        if not self._held:  # PERF: nobody waits on a free lock (a release hands it over)
            self._held = True
            return _READY
        return self._wait()

    def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> Awaitable[None]:
        self.release()
        return _READY

    def release(self) -> None:
        """Give it to the first task waiting (it stays held), or free it."""
        if not self._held:
            raise RuntimeError("release of a lock that is not held")
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():  # not cancelled meanwhile
                future.set_result(None)
                return
        self._held = False

    async def _wait(self) -> None:
        if self._waiters is None:
            self._waiters = collections.deque()
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:  # cancelled while waiting
            if future.done() and not future.cancelled():
                self.release()  # it was handed over already: on to the next
            elif future in self._waiters:
                self._waiters.remove(future)
            raise
