"""The primitives against asyncio's, on random scripts: tasks that take the lock (and leave it
when told), wait on the event or get from the queue, cancellations at any point, releases,
sets, clears and puts, with the loop run at chosen steps (so that a cancellation can land
between a wake-up and the woken task's turn). Each script runs on asyncio's
``Lock``, ``Event`` and ``Queue`` and on ``livetemplate.primitives``'; what the tasks saw (who
held the lock when, who was woken, which item each getter got, who was cancelled) must be
the same."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from livetemplate import primitives

TASKS = 5
STEPS = st.lists(
    st.tuples(st.sampled_from(["start", "leave", "cancel", "signal", "clear", "run"]), st.integers(0, TASKS - 1)),
    max_size=30,
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: A waiter is woken (handed the lock, or an item put for it) and cancelled before its turn:
#: the next waiter must get what it did not take, in the same turn.
LOCK_HANDED_THEN_CANCELLED = [("start", 0), ("run", 0), ("start", 1), ("start", 2), ("run", 0)]
LOCK_HANDED_THEN_CANCELLED += [("leave", 0), ("run", 0), ("cancel", 1), ("run", 2), ("leave", 2), ("run", 2)]
ITEM_PUT_THEN_CANCELLED = [("start", 0), ("start", 1), ("run", 0), ("signal", 0), ("cancel", 0), ("run", 2)]


def _play(script: list[tuple[str, int]], make: Callable[[], Any], kind: str) -> list[str]:
    """Run ``script`` on a fresh primitive from ``make``; what the tasks saw, in order."""

    async def play() -> list[str]:
        seen: list[str] = []
        subject = make()
        tasks: dict[int, asyncio.Task[None]] = {}
        leave = {index: asyncio.Event() for index in range(TASKS)}
        items = iter(range(1000))

        async def lock_user(index: int) -> None:
            async with subject:
                seen.append(f"in {index}")
                await leave[index].wait()
                seen.append(f"out {index}")

        async def event_waiter(index: int) -> None:
            await subject.wait()
            seen.append(f"woken {index}")

        async def getter(index: int) -> None:
            seen.append(f"got {await subject.get()} {index}")

        body = {"lock": lock_user, "event": event_waiter, "queue": getter}[kind]
        for step, index in script:
            task = tasks.get(index)
            if step == "start" and (task is None or task.done()):
                tasks[index] = asyncio.get_running_loop().create_task(body(index))
            elif step == "leave":
                leave[index].set()
            elif step == "cancel" and task is not None and not task.done():
                task.cancel()
            elif step == "signal":
                if kind == "event":
                    subject.set()
                elif kind == "queue":
                    subject.put_nowait(next(items))
            elif step == "clear" and kind == "event":
                subject.clear()
            elif step == "run":  # the loop runs only here: steps before it land in the same turn
                for _ in range(index % 3 + 1):
                    await asyncio.sleep(0)
                seen.append("--")  # what happened by now, and not later
        for event in leave.values():  # the end: every lock user leaves, every waiter gets what it waits for
            event.set()
        if kind == "event":
            subject.set()
        elif kind == "queue":
            for _ in tasks:
                subject.put_nowait(next(items))
        await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 5)
        seen += [f"cancelled {index}" for index, task in sorted(tasks.items()) if task.cancelled()]
        if kind == "lock":
            seen.append(f"held {subject.locked()}")
        elif kind == "queue":
            seen.append(f"left {subject.qsize()}")
        return seen

    return asyncio.run(play())


@SETTINGS
@given(STEPS)
@example(LOCK_HANDED_THEN_CANCELLED)
def test_the_lock_behaves_as_asyncio_s(script: list[tuple[str, int]]) -> None:
    assert _play(script, primitives.Lock, "lock") == _play(script, asyncio.Lock, "lock")


@SETTINGS
@given(STEPS)
def test_the_event_behaves_as_asyncio_s(script: list[tuple[str, int]]) -> None:
    assert _play(script, primitives.Event, "event") == _play(script, asyncio.Event, "event")


@SETTINGS
@given(STEPS)
@example(ITEM_PUT_THEN_CANCELLED)
def test_the_queue_behaves_as_asyncio_s(script: list[tuple[str, int]]) -> None:
    assert _play(script, primitives.Queue, "queue") == _play(script, asyncio.Queue, "queue")
