"""How the runs of broadcasts are scheduled: one after the other in a single task while they
finish without waiting on anything, a task each once one of them waits, and in the order
the broadcasts were made for every session group.

A push to many views is mostly CPU work (run the action on each view's state, render, queue
the frames); a task per view added the loop's bookkeeping and kept thousands of them alive at
once, which set off full garbage collections in the middle of the broadcast. So the runs go
inline, in one worker task that lets the loop run between batches, each as plain calls
while it waits for nothing (see :meth:`.Runner.run_at_once`). The first run
that waits on something (I/O in the action, a store write) hands the runs of its broadcast
still to come to a task each at that moment, and the broadcasts queued after it to a new
worker, so nobody waits behind it; the action is remembered, and its later broadcasts start
with a task per run. A run whose session group is busy (its lock taken) gets a task too.
The socket writes of each stretch of inline runs are held back and go out together before
the loop runs (a write batch, see :mod:`.outbox`; every few runs, a send thread on another
CPU is given those held so far, where there is one), and its renders are shared by the views
brought from equal states to equal inputs (a render batch, see :mod:`.rendering`).

Order: a later broadcast's run for a group never starts before an earlier one's. The
broadcasts are taken in turn by one worker at a time; tasks start in the order they were
made, and each queues on its view's and group's locks (which serve in turn) at its first
step; the worker lets the loop run once after starting tasks, before its next inline run,
and a new worker is started after the tasks it takes over from.

Each run still runs in one task from start to end, so ``asyncio.current_task()``, timeouts
and cancellation inside an action behave as in any task.
"""

from __future__ import annotations

import asyncio
import collections
import types
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from . import outbox, rendering
from .ops.logs import get_logger

__all__ = ["Delivery", "FanOut"]

logger = get_logger(__name__)

#: Inline runs between two turns of the event loop (other work, and the sockets, get in).
INLINE_BATCH = 64
#: Inline runs between two hand-overs of the held writes to the send thread (see
#: :mod:`.outbox`), which writes them on another CPU while the next runs go on.
HAND_OVER = 16


class Delivery(Protocol):
    """One session group's part of a broadcast."""

    def run(self) -> Coroutine[Any, Any, None]:
        """The coroutine that runs it."""

    def run_at_once(self) -> Coroutine[Any, Any, None] | None:
        """Run it as plain calls while it waits for nothing: None once done, else the
        coroutine that runs the rest."""

    def busy(self) -> bool:
        """Whether it would wait at once (a lock of its group or views is taken)."""


class _Broadcast(NamedTuple):
    action: str
    pending: Iterator[Delivery]  # taken one by one (they may be made as they are taken)


class FanOut:
    """Schedules the runs of broadcasts; ``spawn`` starts a task (and logs its failure)."""

    def __init__(self, spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.spawn = spawn
        #: Actions whose runs were seen waiting: their broadcasts start a task per run.
        self.waiting: set[str] = set()
        self._queue: collections.deque[_Broadcast] = collections.deque()
        self._worker = False  # a worker task takes the queue in turn

    def start(self, action: str, deliveries: Iterable[Delivery]) -> None:
        """Schedule a broadcast of ``action``, after those scheduled before it. ``deliveries``
        are taken one by one as they run (a generator can make each when it is taken)."""
        self._queue.append(_Broadcast(action, iter(deliveries)))
        if not self._worker:
            self._worker = True
            self.spawn(self._work())

    async def _work(self) -> None:
        started_tasks = False  # since this worker last let the loop run
        done = 0
        retired = False

        _hold()  # the socket writes of inline runs go out together, before the loop runs
        try:
            while self._queue:
                broadcast = self._queue[0]
                for delivery in broadcast.pending:
                    if broadcast.action in self.waiting or delivery.busy():
                        self.spawn(delivery.run())
                        started_tasks = True
                        continue
                    if started_tasks or (done >= INLINE_BATCH and not _still_sending(done)):
                        _release()
                        await asyncio.sleep(0)  # started tasks take their places in the locks' queues
                        _hold()
                        started_tasks, done = False, 0
                    try:  # PERF: plain calls while it waits for nothing (the coroutines took 9% of a run)
                        run = delivery.run_at_once()
                        # PERF: what is left is driven here while it does not wait (a wrapper's await took 3% of a run)
                        waiting = run.send(None) if run is not None else None
                    except StopIteration:
                        run = None
                    except Exception:
                        logger.error("a broadcast's run of %r failed", broadcast.action, exc_info=True)
                        done += 1
                        continue
                    if run is None:
                        done += 1
                        if done % HAND_OVER == 0 and done <= INLINE_BATCH:  # no more once the stretch is due to end
                            outbox.hand_over_writes()
                        continue
                    self._hand_over()
                    retired = True
                    try:
                        await _rest(run, waiting)
                    except Exception:
                        logger.error("a broadcast's run of %r failed", broadcast.action, exc_info=True)
                    return
                self._queue.popleft()
        finally:
            _release()
            if not retired:
                self._worker = False

    def _hand_over(self) -> None:
        """The worker's inline run waits: its broadcast's other runs get a task each, the
        broadcasts after it a new worker (started after those tasks)."""
        _release()  # the loop runs next
        broadcast = self._queue.popleft()
        self.waiting.add(broadcast.action)
        for delivery in broadcast.pending:
            self.spawn(delivery.run())
        if self._queue:
            self.spawn(self._work())
        else:
            self._worker = False


def _still_sending(done: int) -> bool:
    """Whether a stretch of ``done`` runs goes on, up to twice its length, because the send
    thread still writes its frames: the loop could not run before that thread is done anyway,
    and the runs go on meanwhile where the wait would stand still."""
    return done < 2 * INLINE_BATCH and outbox.sending()


def _hold() -> None:
    """Open the write and render batches of a stretch of inline runs."""
    outbox.hold_writes()
    rendering.open_batch()


def _release() -> None:
    """Close them (the held writes go out) before the event loop runs."""
    rendering.close_batch()
    outbox.release_writes()


@types.coroutine
def _rest(run: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Await the rest of ``run``, whose last step gave ``waiting`` to the event loop, in the
    awaiting task, as ``await`` does."""
    while True:
        try:
            value, error = (yield waiting), None
        except BaseException as exc:  # thrown into the awaiting task (a cancellation): pass it on
            value, error = None, exc
        try:
            waiting = run.throw(error) if error is not None else run.send(value)
        except StopIteration:
            return
