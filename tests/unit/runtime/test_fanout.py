"""The fan-out: a broadcast's runs go inline in one task until one waits; then the rest get
a task each, at once, and the action is remembered; a failing run stops nobody."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

import pytest

from livetemplate.fanout import INLINE_BATCH, Delivery, FanOut
from livetemplate.outbox import Outbox
from tests.support.sockets import Direct, Socket

pytestmark = pytest.mark.anyio


class Run(NamedTuple):
    """A delivery made of two functions."""

    run: Callable[[], Coroutine[Any, Any, None]]
    busy: Callable[[], bool]

    def run_at_once(self) -> Coroutine[Any, Any, None]:
        return self.run()  # nothing here runs without a coroutine


def free(*runs: Any) -> list[Delivery]:
    return [Run(run, lambda: False) for run in runs]


class Spawner:
    """``spawn`` for the fan-out: counts the tasks it starts and keeps them."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coroutine))

    async def settle(self) -> None:
        while not all(task.done() for task in self.tasks):
            await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_runs_that_never_wait_go_inline_in_one_task() -> None:
    spawn = Spawner()
    done: list[int] = []
    tasks: set[asyncio.Task[Any] | None] = set()

    def run(i: int) -> Any:
        async def body() -> None:
            tasks.add(asyncio.current_task())
            done.append(i)

        return body

    FanOut(spawn).start("show", free(*(run(i) for i in range(10))))
    await spawn.settle()
    assert done == list(range(10))
    assert len(spawn.tasks) == 1 and tasks == {spawn.tasks[0]}


async def test_the_direct_writes_of_inline_runs_go_out_together_before_the_loop_runs() -> None:
    spawn = Spawner()
    written: list[int] = []
    seen_by_runs: list[list[int]] = []
    seen_by_others: list[list[int]] = []
    count = INLINE_BATCH + 6  # two stretches of inline runs

    def run(i: int) -> Any:
        outbox = Outbox(Socket(awaited=False), direct=Direct(lambda *frames: written.extend(map(int, frames)) is None))

        async def body() -> None:
            seen_by_runs.append(list(written))
            outbox.put([str(i).encode()])

        return body

    async def watch() -> None:  # a task of the loop: runs between the stretches only
        while len(written) < count:
            seen_by_others.append(list(written))
            await asyncio.sleep(0)

    watcher = asyncio.get_running_loop().create_task(watch())
    FanOut(spawn).start("show", free(*(run(i) for i in range(count))))
    await spawn.settle()
    await watcher
    assert written == list(range(count))
    assert seen_by_runs[INLINE_BATCH - 1] == []  # held while the first stretch runs
    assert seen_by_runs[INLINE_BATCH] == list(range(INLINE_BATCH))  # written before the loop ran
    assert all(len(seen) in (0, INLINE_BATCH) for seen in seen_by_others)  # never half a stretch


async def test_a_run_that_waits_first_lets_the_held_writes_go() -> None:
    spawn = Spawner()
    gate = asyncio.Event()
    written: list[bytes] = []

    outbox = Outbox(Socket(awaited=False), direct=Direct(lambda *frames: written.extend(frames) is None))

    async def puts() -> None:
        outbox.put([b"first"])

    async def waits() -> None:
        await gate.wait()  # an action waiting on I/O
        outbox.put([b"second"])

    FanOut(spawn).start("show", free(puts, waits))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert written == [b"first"]  # out while the second run waits
    gate.set()
    await spawn.settle()
    assert written == [b"first", b"second"]


async def test_the_first_run_that_waits_hands_the_rest_to_a_task_each() -> None:
    spawn = Spawner()
    fan_out = FanOut(spawn)
    gate = asyncio.Event()
    done: list[int] = []

    def run(i: int) -> Any:
        async def body() -> None:
            if i == 1:
                await gate.wait()  # an action waiting on I/O
            done.append(i)

        return body

    fan_out.start("fetch", free(*(run(i) for i in range(5))))
    for _ in range(10):
        await asyncio.sleep(0)
    assert done == [0, 2, 3, 4]  # nobody waited behind run 1
    assert fan_out.waiting == {"fetch"} and len(spawn.tasks) == 4  # the worker and a task for each run after 1
    gate.set()
    await spawn.settle()
    assert sorted(done) == [0, 1, 2, 3, 4]

    fan_out.start("fetch", free(*(run(i) for i in range(3))))  # remembered: a task per run
    await spawn.settle()
    assert len(spawn.tasks) == 4 + 1 + 3  # a worker, and a task for each run


async def test_blocked_runs_get_a_task_each_and_teach_nothing() -> None:
    spawn = Spawner()
    fan_out = FanOut(spawn)
    lock = asyncio.Lock()
    done: list[str] = []

    async def blocked() -> None:
        async with lock:
            done.append("blocked")

    async def free_run() -> None:
        done.append("free")

    free_runs = free(free_run, free_run)

    async with lock:
        fan_out.start("show", [*free_runs, Run(blocked, lock.locked)])
        await asyncio.sleep(0)
        assert done == ["free", "free"]
    await spawn.settle()
    assert done == ["free", "free", "blocked"]
    assert fan_out.waiting == set() and len(spawn.tasks) == 2


async def test_a_failing_run_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    spawn = Spawner()
    done: list[int] = []

    def run(i: int) -> Any:
        async def body() -> None:
            if i == 1:
                raise ValueError("broken action")
            done.append(i)

        return body

    with caplog.at_level(logging.ERROR, logger="livetemplate.fanout"):
        FanOut(spawn).start("show", free(*(run(i) for i in range(3))))
        await spawn.settle()
    assert done == [0, 2]
    assert "broadcast's run of 'show' failed" in caplog.text and "broken action" in caplog.text


async def test_a_run_failing_after_it_waited_is_logged_and_the_next_broadcast_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spawn = Spawner()
    done: list[str] = []

    async def waits_then_fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("broken after waiting")

    async def quick() -> None:
        done.append("quick")

    fan_out = FanOut(spawn)
    with caplog.at_level(logging.ERROR, logger="livetemplate.fanout"):
        fan_out.start("fails", free(waits_then_fails, quick))
        await spawn.settle()
        fan_out.start("later", free(quick))
        await spawn.settle()
    assert done == ["quick", "quick"]
    assert "broadcast's run of 'fails' failed" in caplog.text and "broken after waiting" in caplog.text
    assert fan_out.waiting == {"fails"}


async def test_a_timeout_inside_an_inline_run_cancels_only_that_run() -> None:
    spawn = Spawner()
    outcomes: list[str] = []

    async def slow() -> None:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError:
            outcomes.append("timed out")

    async def quick() -> None:
        outcomes.append("quick")

    FanOut(spawn).start("show", free(slow, quick, quick))
    await spawn.settle()
    assert sorted(outcomes) == ["quick", "quick", "timed out"]
    assert not any(task.cancelled() for task in spawn.tasks)


async def test_long_broadcasts_let_the_loop_run_between_batches() -> None:
    spawn = Spawner()
    done: list[int] = []
    seen_by_other_work: list[int] = []

    async def run() -> None:
        done.append(len(done))

    async def other_work() -> None:
        while len(done) < 3 * INLINE_BATCH:
            seen_by_other_work.append(len(done))
            await asyncio.sleep(0)

    other = asyncio.get_running_loop().create_task(other_work())
    FanOut(spawn).start("show", free(*[run] * (3 * INLINE_BATCH)))
    await spawn.settle()
    await other
    assert len(done) == 3 * INLINE_BATCH
    assert {INLINE_BATCH, 2 * INLINE_BATCH} <= set(seen_by_other_work)


class Groups:
    """Session groups as the hub's runs see them: a lock each, and the broadcasts each one
    received, in order."""

    def __init__(self, count: int) -> None:
        self.locks = [asyncio.Lock() for _ in range(count)]
        self.received: list[list[str]] = [[] for _ in range(count)]

    def delivery(self, broadcast: str, group: int, gate: asyncio.Event | None = None) -> Delivery:
        lock = self.locks[group]

        async def run() -> None:
            async with lock:
                if gate is not None:
                    await gate.wait()
                self.received[group].append(broadcast)

        return Run(run, lock.locked)


async def test_a_later_broadcast_never_overtakes_runs_handed_to_tasks() -> None:
    spawn = Spawner()
    fan_out = FanOut(spawn)
    groups = Groups(6)
    gate = asyncio.Event()
    fan_out.start("fetch", [groups.delivery("first", 0, gate), *(groups.delivery("first", g) for g in range(1, 6))])
    fan_out.start("show", [groups.delivery("second", g) for g in reversed(range(6))])
    for _ in range(10):
        await asyncio.sleep(0)
    assert groups.received[1:] == [["first", "second"]] * 5  # nobody waited behind group 0
    gate.set()
    await spawn.settle()
    assert groups.received == [["first", "second"]] * 6


async def test_runs_started_as_tasks_go_before_the_next_inline_ones() -> None:
    spawn = Spawner()
    fan_out = FanOut(spawn)
    fan_out.waiting.add("fetch")  # seen waiting before: a task per run
    groups = Groups(4)
    fan_out.start("fetch", [groups.delivery("first", g) for g in range(4)])
    fan_out.start("show", [groups.delivery("second", g) for g in reversed(range(4))])
    await spawn.settle()
    assert groups.received == [["first", "second"]] * 4


async def test_a_busy_group_keeps_its_order() -> None:
    spawn = Spawner()
    fan_out = FanOut(spawn)
    groups = Groups(2)
    async with groups.locks[0]:  # group 0 is running an action of its own
        fan_out.start("show", [groups.delivery("first", 0), groups.delivery("first", 1)])
        fan_out.start("show", [groups.delivery("second", 1), groups.delivery("second", 0)])
        for _ in range(5):
            await asyncio.sleep(0)
        assert groups.received == [[], ["first", "second"]]
    await spawn.settle()
    assert groups.received == [["first", "second"]] * 2
    assert fan_out.waiting == set()
