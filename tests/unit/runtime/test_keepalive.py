"""The shared keepalive schedule: pings go out when due (at most one time slice late), in
the order they came, one timer per event loop; removed connections are not pinged; a failing
ping is reported and the others go on; an empty schedule lets go of its loop."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from livetemplate.transports.keepalive import RESOLUTION, PingSchedule

pytestmark = pytest.mark.anyio


class Connection:
    """Records when it was pinged; with ``again``, schedules its next ping as uvicorn's
    protocol does without a pong deadline."""

    def __init__(self, name: str, pinged: list[tuple[str, float]], *, again: float | None = None) -> None:
        self.name = name
        self.pinged = pinged
        self.again = again
        self.due = 0

    def send_keepalive_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self.pinged.append((self.name, loop.time()))
        if self.again is not None:
            self.due = PingSchedule.of(loop).add(self, self.again)


def timers(loop: asyncio.AbstractEventLoop) -> int:
    """The loop's scheduled timers that are not cancelled (asyncio's loop: the tests' backend)."""
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]


async def test_pings_go_out_when_due_in_order_on_one_timer() -> None:
    loop = asyncio.get_running_loop()
    pinged: list[tuple[str, float]] = []
    schedule = PingSchedule.of(loop)
    started = loop.time()
    for name, delay in (("a", 0.3), ("b", 0.05), ("c", 0.3), ("d", 0.05)):
        schedule.add(Connection(name, pinged), delay)
    assert timers(loop) == 1
    await asyncio.sleep(0.3 + 2 * RESOLUTION)
    assert [name for name, _ in pinged] == ["b", "d", "a", "c"]
    delays = {name: at - started for name, at in pinged}
    for name, delay in (("a", 0.3), ("b", 0.05), ("c", 0.3), ("d", 0.05)):
        assert delay <= delays[name] <= delay + RESOLUTION + 0.1
    assert PingSchedule.find(loop) is None and timers(loop) == 0


async def test_a_removed_connection_is_not_pinged() -> None:
    loop = asyncio.get_running_loop()
    pinged: list[tuple[str, float]] = []
    schedule = PingSchedule.of(loop)
    gone, kept = Connection("gone", pinged), Connection("kept", pinged)
    gone_due = schedule.add(gone, 0.05)
    schedule.add(kept, 0.05)
    schedule.remove(gone, gone_due)
    schedule.remove(gone, gone_due)  # twice: nothing happens
    await asyncio.sleep(0.05 + 2 * RESOLUTION)
    assert [name for name, _ in pinged] == ["kept"]


async def test_removing_the_last_connection_stops_the_timer_and_forgets_the_loop() -> None:
    loop = asyncio.get_running_loop()
    schedule = PingSchedule.of(loop)
    only = Connection("only", [])
    schedule.remove(only, schedule.add(only, 30.0))
    assert PingSchedule.find(loop) is None and timers(loop) == 0


async def test_an_earlier_ping_moves_the_timer_forward() -> None:
    loop = asyncio.get_running_loop()
    pinged: list[tuple[str, float]] = []
    schedule = PingSchedule.of(loop)
    late = Connection("late", pinged)
    late.due = schedule.add(late, 30.0)
    schedule.add(Connection("soon", pinged), 0.05)
    assert timers(loop) == 1
    await asyncio.sleep(0.05 + 2 * RESOLUTION)
    assert [name for name, _ in pinged] == ["soon"]
    assert timers(loop) == 1  # set for the late one now
    schedule.remove(late, late.due)
    assert PingSchedule.find(loop) is None and timers(loop) == 0


async def test_a_failing_ping_is_reported_and_the_others_go_out() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    pinged: list[tuple[str, float]] = []

    class Broken(Connection):
        def send_keepalive_ping(self) -> None:
            raise OSError("the transport is gone")

    schedule = PingSchedule.of(loop)
    broken = Broken("broken", pinged)
    schedule.add(broken, 0.05)
    schedule.add(Connection("fine", pinged), 0.05)
    await asyncio.sleep(0.05 + 2 * RESOLUTION)
    assert [name for name, _ in pinged] == ["fine"]
    assert [(c["message"], type(c["exception"]), c["protocol"]) for c in reported] == [
        ("a keepalive ping failed", OSError, broken)
    ]


async def test_a_connection_that_schedules_its_next_ping_keeps_being_pinged() -> None:
    loop = asyncio.get_running_loop()
    pinged: list[tuple[str, float]] = []
    repeating = Connection("repeating", pinged, again=0.05)
    repeating.due = PingSchedule.of(loop).add(repeating, 0.05)
    await asyncio.sleep(4 * RESOLUTION + 0.1)
    assert len(pinged) >= 3
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(pinged)]
    assert all(gap >= 0.05 for gap in gaps)
    PingSchedule.of(loop).remove(repeating, repeating.due)
    assert PingSchedule.find(loop) is None and timers(loop) == 0
