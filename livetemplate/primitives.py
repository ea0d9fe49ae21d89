"""Event-loop primitives for what every open connection holds: a lock, an event and a queue
with the behaviour of asyncio's, costing less while nothing waits on them.

A tab and its session group each hold a :class:`Lock`, taken by every run of an action
(a broadcast takes them once per recipient) and nearly always free. ``asyncio.Lock`` makes
three coroutines per ``async with``; here a free lock is taken and given back by two plain
calls, and only a task that finds it held waits on a future.

Each connection also holds events and a queue of incoming messages. ``asyncio.Event`` and
``asyncio.Queue`` allocate a ``collections.deque`` each for their waiters (three for the
queue), 760 bytes apiece on CPython 3.11, though a connection is nearly always idle and nothing
waits. :class:`Event` and :class:`Queue` make their waiters' list when a task first waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["Event", "Lock", "Queue"]

T = TypeVar("T")


def _done_future() -> asyncio.Future[None]:
    """A future that is done, for ``async with`` of a free lock: awaiting it ends at once,
    in C (a generator-based awaitable took twice as long: benchmarks/idioms.py). Awaiting a done future never
    looks at its loop, so one made on a loop of its own serves every loop."""
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        future.set_result(None)
    finally:
        loop.close()
    return future


_READY = _done_future()


def _new_waiter(
    waiters: list[asyncio.Future[None]] | None,
) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
    """A future for a task that waits, appended to ``waiters`` (made when None, as nothing
    waited before); the list and the future."""
    future = asyncio.get_running_loop().create_future()
    if waiters is None:
        return [future], future
    waiters.append(future)
    return waiters, future


def _wake_first(waiters: list[asyncio.Future[None]] | None) -> tuple[bool, list[asyncio.Future[None]] | None]:
    """Wake the first of ``waiters`` not cancelled meanwhile, taking it (and those cancelled
    before it) off the list; whether one was woken, and the list (None once empty: an idle
    connection keeps no empty list)."""
    while waiters:
        future = waiters.pop(0)
        if not future.done():
            future.set_result(None)
            return True, waiters or None
    return False, None


def _forget(
    waiters: list[asyncio.Future[None]] | None, future: asyncio.Future[None]
) -> list[asyncio.Future[None]] | None:
    """Take ``future`` off ``waiters`` if it is still there (its task left without being
    woken); the list (None once empty)."""
    if waiters is not None and future in waiters:
        waiters.remove(future)
    return waiters or None


class Lock:
    """Mutual exclusion between the tasks of one event loop, for ``async with``; the tasks
    that find it held get it in the order they came. A release hands it straight to the
    first of them, so a task arriving meanwhile cannot take it out of turn."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        waiting = len(self._waiters) if self._waiters else 0
        return f"<Lock {'held' if self._held else 'free'}, {waiting} waiting>"

    def locked(self) -> bool:
        """Whether a task holds it."""
        return self._held

    def take(self) -> bool:
        """Take it if it is free, without waiting: whether it was taken (give it back with
        :meth:`release`)."""
        if self._held:
            return False
        self._held = True  # nobody waits on a free lock (a release hands it over)
        return True

    def __aenter__(self) -> Awaitable[None]:
        if not self._held:  # PERF: nobody waits on a free lock (a release hands it over)
            self._held = True
            return _READY
        return self._wait()

    def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> Awaitable[None]:
        if self._waiters is None and self._held:  # PERF: nobody waits, as nearly always
            self._held = False
        else:
            self.release()
        return _READY

    def release(self) -> None:
        """Give it to the first task waiting (it stays held), or free it."""
        if not self._held:
            raise RuntimeError("release of a lock that is not held")
        if self._waiters is None:  # PERF: nobody waits, as nearly always (twice a broadcast's recipient)
            self._held = False
            return
        woken, self._waiters = _wake_first(self._waiters)
        if not woken:
            self._held = False

    async def _wait(self) -> None:
        self._waiters, future = _new_waiter(self._waiters)
        try:
            await future
        except BaseException:  # cancelled while waiting
            if future.done() and not future.cancelled():
                self.release()  # it was handed over already: on to the next
            else:
                self._waiters = _forget(self._waiters, future)
            raise


class Event:
    """``asyncio.Event``: a flag that tasks can wait to see set."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        return f"<Event {'set' if self._set else 'clear'}>"

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Set it, waking every task that waits."""
        self._set = True
        waiters, self._waiters = self._waiters, None
        for future in waiters or ():
            if not future.done():
                future.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        """Return once it is set (at once if it is)."""
        if self._set:
            return
        self._waiters, future = _new_waiter(self._waiters)
        try:
            await future
        finally:
            self._waiters = _forget(self._waiters, future)  # cancelled while waiting


class Queue(Generic[T]):
    """An unbounded ``asyncio.Queue``: ``put_nowait``, ``get`` and ``empty``, first in first
    out. Meant for short queues (a connection's incoming messages: uvicorn stops reading
    the socket while one waits), so the first item is taken from a list, which exists only
    while items wait."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        return f"<Queue {self.qsize()} item(s)>"

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        _, self._getters = _wake_first(self._getters)

    async def get(self) -> T:
        """The first item, once there is one."""
        while not self._items:
            self._getters, getter = _new_waiter(self._getters)
            try:
                await getter
            except BaseException:
                getter.cancel()
                self._getters = _forget(self._getters, getter)
                if self._items and not getter.cancelled():  # woken, but leaves: wake the next
                    _, self._getters = _wake_first(self._getters)
                raise
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item
