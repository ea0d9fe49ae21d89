"""How the runs of one broadcast are scheduled: one after the other in a single task while
they finish without waiting on anything, a task each once one of them waits.

A push to many views is mostly CPU work (run the action on each view's state, render, queue
the frames), and a task per view made the loop's bookkeeping a large share of it. So the
runs of a broadcast go inline, in one task that lets the loop run between batches. The
first run that waits on something (I/O in the action, a store write) hands the runs still
to come to a task each at that moment, so nobody waits behind it, and the action is
remembered: its later broadcasts start with a task per run. Each run still runs in one task
from start to end, so ``asyncio.current_task()``, timeouts and cancellation inside an action
behave as in any task.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any

from .ops.logs import get_logger

__all__ = ["FanOut", "Run"]

logger = get_logger(__name__)

Run = Callable[[], Coroutine[Any, Any, None]]

#: Inline runs between two turns of the event loop (other work, and the sockets, get in).
INLINE_BATCH = 64


class FanOut:
    """Schedules the runs of broadcasts; ``spawn`` starts a task (and logs its failure)."""

    def __init__(self, spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.spawn = spawn
        #: Actions whose runs were seen waiting: their broadcasts start a task per run.
        self.waiting: set[str] = set()

    def start(self, action: str, runs: Iterable[Run], *, blocked: Iterable[Run] = ()) -> None:
        """Schedule ``runs`` of ``action``; ``blocked`` ones would wait at once (their
        session group is busy) and get a task each."""
        for run in blocked:
            self.spawn(run())
        pending = collections.deque(runs)
        if action in self.waiting:
            self._hand_off(pending)
        elif pending:
            self.spawn(self._inline(action, pending))

    async def _inline(self, action: str, pending: collections.deque[Run]) -> None:
        def waits() -> None:
            self.waiting.add(action)
            self._hand_off(pending)

        done = 0
        while pending:
            run = pending.popleft()
            try:
                await _Watched(run(), waits)
            except Exception:
                logger.error("a broadcast's run of %r failed", action, exc_info=True)
            done += 1
            if done % INLINE_BATCH == 0 and pending:
                await asyncio.sleep(0)

    def _hand_off(self, pending: collections.deque[Run]) -> None:
        while pending:
            self.spawn(pending.popleft()())


class _Watched:
    """Awaits ``coroutine`` in the awaiting task, as ``await`` does, calling ``waits`` the
    first time it yields to the event loop."""

    __slots__ = ("coroutine", "waits")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waits: Callable[[], None]) -> None:
        self.coroutine = coroutine
        self.waits: Callable[[], None] | None = waits

    def __await__(self) -> Generator[Any, Any, None]:
        steps = self.coroutine.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration:
                return
            if self.waits is not None:
                waits, self.waits = self.waits, None
                waits()
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # thrown into the awaiting task (a cancellation): pass it on
                value, error = None, exc
