"""The keepalive pings of an event loop's WebSocket connections, on one timer.

uvicorn's WebSocket protocol schedules each connection's next ping with a ``call_later`` of
its own: a timer handle, uvloop's timer, a context and a bound method that every idle
connection holds (0.35 KiB and 4 GC-tracked objects). A :class:`PingSchedule` keeps the
connections due in the same slice of time (``RESOLUTION`` seconds) together and runs one
timer per event loop, for the earliest slice: a ping goes out at most ``RESOLUTION`` late,
against an interval of a minute by default. What a ping does, and the deadline of its pong,
stay the protocol's own.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["RESOLUTION", "PingSchedule", "Pinged"]

#: Seconds of time slice: the connections due within one are pinged together.
RESOLUTION = 0.25


class Pinged(Protocol):
    """A connection that sends keepalive pings."""

    def send_keepalive_ping(self) -> None: ...


class PingSchedule:
    """When each connection of one event loop sends its next ping (see the module's doc)."""

    __slots__ = ("_fires_at", "_firing", "_timer", "loop", "slices")

    #: The schedules of the event loops with a ping due (one is dropped when none is).
    _of_loop: dict[asyncio.AbstractEventLoop, PingSchedule] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: slice number (time // RESOLUTION) -> the connections due in it, in the order they came
        self.slices: dict[int, dict[Pinged, None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._fires_at = 0  # the slice the timer is set for
        self._firing = False  # pings going out: what they change is settled once they are done

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> PingSchedule:
        """The schedule of ``loop`` (made when none is)."""
        schedule = cls._of_loop.get(loop)
        if schedule is None:
            schedule = cls._of_loop[loop] = cls(loop)
        return schedule

    @classmethod
    def find(cls, loop: asyncio.AbstractEventLoop) -> PingSchedule | None:
        """The schedule of ``loop``, if a ping is due in it."""
        return cls._of_loop.get(loop)

    def add(self, pinged: Pinged, delay: float) -> int:
        """Ping ``pinged`` in ``delay`` seconds (up to ``RESOLUTION`` later); returns its slice,
        for :meth:`remove`."""
        due = math.ceil((self.loop.time() + delay) / RESOLUTION)
        self.slices.setdefault(due, {})[pinged] = None
        if self._timer is None or due < self._fires_at:
            self._set_timer(due)
        return due

    def remove(self, pinged: Pinged, due: int) -> None:
        """Do not ping ``pinged`` (added for slice ``due``)."""
        members = self.slices.get(due)
        if members is not None:
            members.pop(pinged, None)
            if not members:
                del self.slices[due]
                if not self.slices and not self._firing:
                    self._drop()

    def _set_timer(self, due: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._fires_at = due
        self._timer = self.loop.call_at(due * RESOLUTION, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.loop.time() / RESOLUTION
        self._firing = True
        try:
            for due in sorted(due for due in self.slices if due <= now):
                for pinged in self.slices.pop(due):
                    try:
                        pinged.send_keepalive_ping()
                    except Exception as exc:  # as the loop reports a failed callback; the others go on
                        self.loop.call_exception_handler(
                            {"message": "a keepalive ping failed", "exception": exc, "protocol": pinged}
                        )
        finally:
            self._firing = False
        if self.slices:
            self._set_timer(min(self.slices))
        else:
            self._drop()

    def _drop(self) -> None:
        """Nothing is due: no timer, and the loop is forgotten."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if PingSchedule._of_loop.get(self.loop) is self:
            del PingSchedule._of_loop[self.loop]
