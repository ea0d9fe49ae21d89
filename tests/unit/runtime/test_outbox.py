"""The outbox: frames written in order, putting never waits for the socket, a failed write
breaks it, idle outboxes hold no task."""

from __future__ import annotations

import asyncio
import threading

import pytest

from livetemplate.outbox import COALESCE_BYTES, Outbox, hold_writes, release_writes
from tests.support.sockets import Direct, Socket

pytestmark = pytest.mark.anyio


async def test_frames_go_out_in_order_from_put_and_send() -> None:
    socket = Socket()
    outbox = Outbox(socket)
    await outbox.send([b"1", b"2"])
    assert socket.written == [b"1", b"2"]  # written in this task: no task was needed
    assert outbox._task is None
    outbox.put([b"3"])
    outbox.put([b"4"])
    await outbox.send([b"5"])  # a background writer is busy: queued behind it
    assert await outbox.flush(timeout=1)
    assert socket.written == [b"1", b"2", b"3", b"4", b"5"]
    assert outbox._task is None and len(outbox) == 0 and outbox.pending_bytes == 0
    assert outbox._frames is None  # an idle outbox holds no list


async def test_putting_never_waits_for_a_slow_socket() -> None:
    socket = Socket()
    socket.gate.clear()  # the client stopped reading
    outbox = Outbox(socket)
    for _ in range(100):
        outbox.put([b"x" * 10])
    assert len(outbox) >= 99 and outbox.pending_bytes >= 990
    assert not await outbox.flush(timeout=0.01)
    socket.gate.set()
    assert await outbox.flush(timeout=1)
    assert len(socket.written) == 100


async def test_a_failed_write_breaks_the_outbox_and_drops_what_waits() -> None:
    socket = Socket()
    socket.fail = True
    outbox = Outbox(socket)
    outbox.put([b"a", b"b", b"c"])
    assert await outbox.flush(timeout=1)
    assert outbox.broken and len(outbox) == 0 and outbox.pending_bytes == 0
    outbox.put([b"d"])
    await outbox.send([b"e"])
    assert socket.written == [] and len(outbox) == 0


async def test_close_stops_a_stuck_writer() -> None:
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket)
    outbox.put([b"a", b"b"])
    await asyncio.sleep(0)
    task = outbox._task
    assert task is not None
    outbox.close()
    await asyncio.sleep(0)
    assert task.cancelled() or task.done()
    assert outbox.broken and len(outbox) == 0
    assert await outbox.flush(timeout=1)


async def test_put_on_an_idle_outbox_writes_at_once_without_a_task() -> None:
    socket = Socket()
    outbox = Outbox(socket)
    outbox.put([b"a", b"b"])
    assert socket.written == [b"a", b"b"]  # before put returned
    assert outbox._task is None and not outbox._busy


async def test_a_writer_that_has_to_wait_is_carried_on_by_a_task() -> None:
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket)
    outbox.put([b"a"])
    assert socket.written == [] and outbox._task is not None
    outbox.put([b"b"])  # queued behind the writer
    socket.gate.set()
    assert await outbox.flush(timeout=1)
    assert socket.written == [b"a", b"b"] and outbox._task is None


class Steps:
    """A write that yields to the loop, waits on a future, and records what reached it."""

    def __init__(self) -> None:
        self.future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.seen: list[object] = []

    async def write(self, frame: bytes) -> None:
        await asyncio.sleep(0)
        try:
            self.seen.append(await self.future)
        except BaseException as exc:
            self.seen.append(type(exc))
            raise


async def test_the_carried_on_writer_reads_its_futures_outcome() -> None:
    steps = Steps()
    outbox = Outbox(steps)
    outbox.put([b"a"])
    await asyncio.sleep(0.01)
    steps.future.set_exception(OSError("reset"))
    assert await outbox.flush(timeout=1)
    assert steps.seen == [OSError] and outbox.broken


async def test_a_cancellation_reaches_the_carried_on_writer() -> None:
    steps = Steps()
    outbox = Outbox(steps)
    outbox.put([b"a"])
    await asyncio.sleep(0.01)
    steps.future.set_result("done")  # its outcome is in, but the task has not run yet
    task = outbox._task
    assert task is not None
    outbox.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps.seen == [asyncio.CancelledError]


async def test_a_direct_write_is_used_while_the_socket_takes_frames_and_order_holds_when_it_does_not() -> None:
    socket = Socket()
    taking = [True]
    direct: list[bytes] = []

    def write_now(*frames: bytes) -> bool:
        if taking[0]:
            direct.extend(frames)
            socket.written.extend(frames)
        return taking[0]

    outbox = Outbox(socket, direct=Direct(write_now))
    outbox.put([b"1", b"2"])
    assert direct == [b"1", b"2"] and outbox._task is None  # written in the call, no task
    taking[0] = False  # the socket pushes back: the rest waits for the awaited write
    socket.gate.clear()
    outbox.put([b"3", b"4"])
    taking[0] = True
    outbox.put([b"5"])  # frames wait before it: not written past them
    await outbox.send([b"6"])  # nor is a reply
    assert direct == [b"1", b"2"] and len(outbox) >= 3
    socket.gate.set()
    assert await outbox.flush(timeout=1)
    assert socket.written == [b"1", b"2", b"3", b"4", b"5", b"6"]
    outbox.put([b"7"])  # drained: direct again
    assert direct == [b"1", b"2", b"7"]


async def test_a_write_batch_holds_direct_writes_until_released_in_order() -> None:
    socket = Socket()
    direct: list[bytes] = []
    calls: list[int] = []

    def write_now(*frames: bytes) -> bool:
        calls.append(len(frames))
        direct.extend(frames)
        socket.written.extend(frames)
        return True

    first, second = Outbox(socket, direct=Direct(write_now)), Outbox(socket, direct=Direct(write_now))
    queued_only = Outbox(socket)  # no direct write: the batch leaves it alone
    hold_writes()
    try:
        first.put([b"a1"])
        second.put([b"b1"])
        first.put([b"a2"])
        queued_only.put([b"q"])
        assert direct == [] and len(first) == 2 and first.pending_bytes == 4 and first._task is None
    finally:
        release_writes()
    assert direct == [b"a1", b"a2", b"b1"]  # outbox by outbox, each in order
    assert calls == [2, 1]  # a connection's frames of the stretch in one write
    assert len(first) == 0 and first.pending_bytes == 0 and first._task is None
    assert await queued_only.flush(timeout=1) and b"q" in socket.written
    first.put([b"a3"])  # released: direct again
    assert direct[-1] == b"a3"


async def test_frames_held_past_the_budget_tell_the_outbox_drained_once_released() -> None:
    """A push skipped while held frames backed the outbox up is caught up once they are out."""
    socket = Socket()
    outbox = Outbox(socket, direct=Direct(lambda *frames: socket.written.extend(frames) is None), budget=4)
    told: list[int] = []
    hold_writes()
    try:
        outbox.put([b"abc"])
        outbox.put([b"def"])
        assert outbox.backed_up  # a push now would be skipped, and wait for on_drained
        outbox.on_drained = lambda: told.append(outbox.pending_bytes)
    finally:
        release_writes()
    assert told == [0] and outbox.on_drained is None
    assert socket.written == [b"abc", b"def"] and not outbox.backed_up


async def test_a_reply_sent_while_frames_are_held_goes_after_them() -> None:
    socket = Socket()

    def write_now(*frames: bytes) -> bool:
        socket.written.extend(frames)
        return True

    outbox = Outbox(socket, direct=Direct(write_now))
    hold_writes()
    try:
        outbox.put([b"push"])
        await outbox.send([b"reply"])  # through the queue, behind the held frame
    finally:
        release_writes()
    assert await outbox.flush(timeout=1)
    assert socket.written == [b"push", b"reply"] and len(outbox) == 0


async def test_a_writer_that_fails_on_release_loses_its_connection_only() -> None:
    socket = Socket()

    def broken(*frames: bytes) -> bool:
        raise RuntimeError("a bug in the writer")

    failing = Outbox(socket, direct=Direct(broken))
    healthy = Outbox(socket, direct=Direct(lambda *frames: socket.written.extend(frames) is None))
    hold_writes()
    failing.put([b"lost"])
    healthy.put([b"kept"])
    release_writes()
    assert failing.broken and len(failing) == 0
    assert socket.written == [b"kept"]


async def test_held_frames_the_socket_will_not_take_at_once_go_out_in_the_background() -> None:
    socket = Socket()
    outbox = Outbox(socket, direct=Direct(lambda *frames: False))  # the socket pushes back
    hold_writes()
    outbox.put([b"1", b"2", b"3"])
    socket.gate.clear()  # the awaited write waits too
    release_writes()
    assert socket.written == [] and outbox._task is not None
    socket.gate.set()
    assert await outbox.flush(timeout=1)
    assert socket.written == [b"1", b"2", b"3"] and outbox.pending_bytes == 0


async def test_frames_written_together_stay_within_the_coalescing_bound() -> None:
    socket = Socket()
    writes: list[list[int]] = []

    def write_now(*frames: bytes) -> bool:
        writes.append([len(frame) for frame in frames])
        socket.written.extend(frames)
        return True

    outbox = Outbox(socket, direct=Direct(write_now))
    quarter = COALESCE_BYTES // 4
    outbox.put([b"a" * quarter] * 5 + [b"b" * (COALESCE_BYTES * 2), b"c"])
    assert writes == [[quarter] * 4, [quarter], [COALESCE_BYTES * 2], [1]]  # a big frame goes alone
    assert len(socket.written) == 7 and len(outbox) == 0


async def test_a_write_batch_holds_the_writes_of_its_own_thread_only() -> None:
    """Another thread's event loop (a second server in the process) writes at once while
    this thread holds a batch: its outboxes are not released from here."""
    written: list[tuple[str, bytes]] = []

    def direct(where: str) -> Outbox:
        return Outbox(Socket(), direct=Direct(lambda *frames: written.extend((where, f) for f in frames) is None))

    here = direct("here")
    hold_writes()
    try:
        here.put([b"held"])
        other = threading.Thread(target=lambda: direct("there").put([b"at once"]))
        other.start()
        other.join()
        assert written == [("there", b"at once")]
    finally:
        release_writes()
    assert written == [("there", b"at once"), ("here", b"held")]


async def test_a_backed_up_outbox_tells_its_socket_once_that_it_is_stuck() -> None:
    socket = Socket()
    socket.gate.clear()  # the client stopped reading
    outbox = Outbox(socket, budget=3, stuck_after=0.05)
    outbox.put([b"ab", b"cd", b"ef"])  # one in the writer's hands, 4 bytes waiting: backed up
    assert outbox.backed_up
    await asyncio.sleep(0.2)
    assert socket.stuck_calls == 1
    outbox.put([b"gh"])  # still backed up: not told again
    await asyncio.sleep(0.2)
    assert socket.stuck_calls == 1


async def test_an_outbox_that_drains_in_time_is_not_stuck() -> None:
    socket = Socket()
    socket.gate.clear()
    outbox = Outbox(socket, budget=3, stuck_after=0.1)
    outbox.put([b"ab", b"cd", b"ef"])
    await asyncio.sleep(0.02)
    socket.gate.set()  # the client reads again
    assert await outbox.flush(timeout=1)
    await asyncio.sleep(0.2)
    assert socket.stuck_calls == 0 and socket.written == [b"ab", b"cd", b"ef"]
