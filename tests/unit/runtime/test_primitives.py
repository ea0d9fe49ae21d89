"""The event-loop primitives. The lock: mutual exclusion, turns in the order asked (a late
arrival does not jump the queue), cancellation of a waiter (before and after the lock was
handed to it) never leaks the lock. The event wakes every waiter; the queue serves its
getters in order, and one cancelled after it was woken passes its item on."""

from __future__ import annotations

import asyncio

import pytest

from livetemplate.primitives import Event, Lock, Queue

pytestmark = pytest.mark.anyio

#: A lock that leaks would make a test wait forever: a bound against hanging.
HANG = 5.0


async def test_a_free_lock_is_taken_and_given_back() -> None:
    lock = Lock()
    assert not lock.locked()
    async with lock:
        assert lock.locked()
    assert not lock.locked()


async def test_take_gets_a_free_lock_only_and_a_release_hands_it_to_a_waiter() -> None:
    lock = Lock()
    assert lock.take() and lock.locked()
    assert not lock.take()  # held: no second holder
    waiter = asyncio.ensure_future(lock.__aenter__())
    await asyncio.sleep(0)
    lock.release()  # handed over: it stays held, for the waiter
    assert lock.locked() and not lock.take()
    await asyncio.wait_for(waiter, HANG)
    lock.release()
    assert not lock.locked() and lock.take()


def test_a_free_lock_is_taken_in_any_event_loop() -> None:
    """``async with`` of a free lock awaits one done future made at import, on a loop of its
    own: every loop, asyncio's and uvloop's, takes it without waiting on that loop."""
    import uvloop

    lock = Lock()

    async def take() -> bool:
        async with lock:
            held = lock.locked()
        return held and not lock.locked()

    assert asyncio.run(take())
    assert uvloop.run(take())


async def test_an_error_inside_gives_it_back_and_propagates() -> None:
    lock = Lock()
    with pytest.raises(ValueError, match="inside"):
        async with lock:
            raise ValueError("inside")
    assert not lock.locked()


async def test_releasing_a_free_lock_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not held"):
        Lock().release()


async def _holder(lock: Lock, name: str, order: list[str], inside: asyncio.Event | None = None) -> None:
    async with lock:
        order.append(name)
        if inside is not None:
            await inside.wait()
        await asyncio.sleep(0)
        order.append(f"/{name}")


async def test_tasks_take_turns_in_the_order_they_came() -> None:
    lock = Lock()
    order: list[str] = []
    go = asyncio.Event()
    first = asyncio.create_task(_holder(lock, "a", order, go))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(_holder(lock, name, order)) for name in "bcd"]
    await asyncio.sleep(0)
    go.set()
    await asyncio.sleep(0)  # "a" leaves; "b" is handed the lock but has not run yet
    late = asyncio.create_task(_holder(lock, "late", order))
    await asyncio.wait_for(asyncio.gather(first, *waiting, late), HANG)
    assert order == ["a", "/a", "b", "/b", "c", "/c", "d", "/d", "late", "/late"]
    assert not lock.locked()


async def test_a_waiter_cancelled_before_its_turn_leaves_the_queue() -> None:
    lock = Lock()
    order: list[str] = []
    go = asyncio.Event()
    first = asyncio.create_task(_holder(lock, "a", order, go))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(_holder(lock, "b", order))
    after = asyncio.create_task(_holder(lock, "c", order))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    go.set()
    await asyncio.wait_for(asyncio.gather(first, after), HANG)
    assert cancelled.cancelled()
    assert order == ["a", "/a", "c", "/c"]
    assert not lock.locked()


async def test_a_waiter_cancelled_after_the_lock_was_handed_to_it_passes_it_on() -> None:
    lock = Lock()
    order: list[str] = []
    await lock.__aenter__()  # held by this test
    handed = asyncio.create_task(_holder(lock, "b", order))
    after = asyncio.create_task(_holder(lock, "c", order))
    await asyncio.sleep(0)  # both wait
    lock.release()  # handed to "b", which has not run yet
    handed.cancel()
    await asyncio.wait_for(after, HANG)
    assert handed.cancelled()
    assert order == ["c", "/c"]
    assert not lock.locked()


async def test_the_last_waiter_cancelled_after_the_hand_over_frees_it() -> None:
    lock = Lock()
    await lock.__aenter__()
    handed = asyncio.create_task(_holder(lock, "b", []))
    await asyncio.sleep(0)
    lock.release()
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert not lock.locked()
    async with asyncio.timeout(HANG), lock:  # free for the next
        assert lock.locked()


async def test_an_event_wakes_every_waiter_when_set_and_not_before() -> None:
    event = Event()
    assert not event.is_set()
    woken: list[int] = []

    async def waiter(index: int) -> None:
        await event.wait()
        woken.append(index)

    tasks = [asyncio.create_task(waiter(index)) for index in range(3)]
    await asyncio.sleep(0)
    assert woken == []
    event.set()
    await asyncio.wait_for(asyncio.gather(*tasks), HANG)
    assert sorted(woken) == [0, 1, 2] and event.is_set()
    await asyncio.wait_for(event.wait(), HANG)  # set: at once
    event.clear()
    assert not event.is_set()


async def test_a_cancelled_event_waiter_leaves_and_the_others_still_wake() -> None:
    event = Event()
    cancelled = asyncio.create_task(event.wait())
    kept = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert "clear" in repr(event)
    event.set()
    await asyncio.wait_for(kept, HANG)


async def test_a_queue_gives_items_first_in_first_out_and_waits_when_empty() -> None:
    queue: Queue[str] = Queue()
    assert queue.empty()
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert queue.qsize() == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait("c")
    assert await asyncio.wait_for(getter, HANG) == "c"
    assert queue.empty()


async def test_queue_getters_are_served_in_order_and_a_cancelled_one_passes_its_item_on() -> None:
    queue: Queue[int] = Queue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)  # wakes the first, which is cancelled before it runs
    first.cancel()
    assert await asyncio.wait_for(second, HANG) == 1
    assert first.cancelled()
    third = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    third.cancel()  # cancelled while waiting: gone from the queue's getters
    await asyncio.sleep(0)
    queue.put_nowait(2)
    assert await asyncio.wait_for(queue.get(), HANG) == 2


async def test_idle_primitives_keep_no_lists_once_their_waiters_are_gone() -> None:
    """An idle connection's lock, event and queue hold no empty list (each is an object for
    the collector) after tasks waited on them."""
    lock, event, queue = Lock(), Event(), Queue[str]()
    async with lock:
        waiter = asyncio.create_task(lock.__aenter__())
        await asyncio.sleep(0)
    await asyncio.wait_for(waiter, HANG)  # handed over on release
    lock.release()
    cancelled = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("a")
    assert await asyncio.wait_for(getter, HANG) == "a"
    assert (lock._waiters, event._waiters, queue._getters, queue._items) == (None, None, None, None)
    assert not lock.locked() and queue.empty() and queue.qsize() == 0
