"""Short garbage collections while many connections are open.

CPython's full collection walks every object the cyclic collector tracks, and each open
connection holds about a hundred of them (uvicorn's protocol, asyncio's transport and task,
the view): at 10,000 connections a full collection stopped the process for about 0.9 s,
and one lands in the middle of a burst of actions or a broadcast sooner or later. An open
connection's objects live as long as the connection, so walking them again and again finds
nothing. The process's long-lived objects are therefore moved out of the collector's reach
(:func:`gc.freeze`): the program's own once the app has started, then those of open
connections each time another ``freeze_every`` have opened.

A closed connection's objects are freed by reference counting; those caught in reference
cycles wait in the frozen generation until enough frozen connections have closed (a
quarter of them, at least ``freeze_every``); then everything is given back to the collector
for one full collection and frozen again. That pause is the one a collection cost before,
but once per so many closed connections rather than whenever the collector's thresholds
say so.
"""

from __future__ import annotations

import gc
import time

from .logs import get_logger

__all__ = ["Heap", "heap"]

logger = get_logger(__name__)


class Heap:
    """Counts connections opened and closed in this process and freezes the long-lived heap
    as they accumulate (see the module's text)."""

    def __init__(self, *, freeze_every: int = 1000, collect_share: float = 0.25) -> None:
        self.freeze_every = freeze_every
        self.collect_share = collect_share
        self.frozen = 0  # connections open when the heap was last frozen, and since
        self.opened = 0  # connections opened since the heap was last frozen
        self.closed = 0  # connections closed since the last full collection

    def started(self) -> None:
        """The program is loaded: collect once and freeze what is left."""
        gc.collect()
        gc.freeze()

    def connection_opened(self) -> None:
        self.opened += 1
        if self.opened >= self.freeze_every:
            gc.collect(1)  # the young garbage is not frozen with the connections
            gc.freeze()
            self.frozen += self.opened
            self.opened = 0

    def connection_closed(self) -> None:
        self.closed += 1
        if self.frozen and self.closed >= max(self.freeze_every, self.collect_share * self.frozen):
            self._collect_all()

    def _collect_all(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        logger.info(
            "full garbage collection after %d connections closed: %d objects freed in %.0f ms",
            self.closed,
            found,
            (time.perf_counter() - started) * 1000,
        )
        self.frozen = max(0, self.frozen + self.opened - self.closed)
        self.opened = self.closed = 0


#: The process's heap: the garbage collector is one per process, whatever the apps in it.
heap = Heap()
