"""The frames waiting to be written to one connection.

Everything a connection sends goes through its outbox, in order: replies to its own messages
and pushes fanned out by the hub. Putting frames never waits for the socket, so a client that
reads slowly delays nobody else. Frames put on an idle outbox are written at once, in the
caller's stack, as long as the socket takes them without waiting (a broadcast to many
connections then costs no task per connection): with a server's ``direct`` write, a plain
call that writes frames if the socket takes them at once, else through the connection's
``write``; once the socket makes the writer wait, a task of the outbox's own carries on,
and exists only while frames wait (an idle connection costs no task). A write that fails
marks the outbox broken and drops what waits.

While a *write batch* is held (:func:`hold_writes`, by the fan-out, for a stretch of
runs that never yields to the event loop), frames put on outboxes that write directly are
queued, and written when it is released (:func:`release_writes`): the socket writes of a
broadcast go out one after the other, in a tight loop, instead of between runs of
Python (the kernel's send path then stays in the CPU's caches), and the frames one
connection got in the stretch go out in one write. Anything else put or sent on
such an outbox meanwhile queues behind them.

Where the compiled send thread was built and the process may use more than one CPU, the
frames held so far can be *handed over* (:func:`hand_over_writes`, by the fan-out every few
runs): a thread that never holds the GIL writes them on the other CPU while the stretch's
runs go on. Order is kept by three rules. A connection's frames are handed over once a
stretch at most (what it gets later waits for the release); only while its transport holds
nothing back, and never for TLS; and the release waits for the thread before anything else
is written, then writes what a socket did not take whole (the rest, and that connection's
later frames) through the transport, before the event loop runs again (so uvicorn's own
pongs and close frames cannot come in between). ``LIVETEMPLATE_SEND_THREAD=0`` turns the
thread off.

Past its byte ``budget`` an outbox is *backed up*: the hub then stops rendering pushes for
that connection and sends one update once it has drained (``on_drained``). A connection that
stays backed up for ``stuck_after`` seconds is given up (its ``stuck``).

An outbox holds its connection and the server's direct write as objects, not as callbacks:
a bound method is an object of its own on every idle connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol

from . import _twins
from .broadcast import BroadcastUnavailable
from .ops.logs import get_logger

__all__ = ["DirectWrite", "Outbox", "Socket", "hand_over_writes", "hold_writes", "release_writes"]

logger = get_logger(__name__)


class Socket(Protocol):
    """The connection an outbox writes to."""

    def write(self, frame: bytes) -> Awaitable[None]:
        """Write ``frame``, waiting until the socket takes it."""

    def stuck(self) -> None:
        """The outbox stayed backed up for its ``stuck_after``: give the client up."""

    def unsubscribed(self, exc: BroadcastUnavailable) -> None:
        """A topic that a pushed run subscribed cannot be: the page would go stale unseen,
        so the client is told and given up."""


class DirectWrite(Protocol):
    """A server's write of text frames that does not wait (see
    :data:`livetemplate.transports.websocket.WRITE_TEXT`)."""

    def write_text(self, *frames: bytes) -> bool:
        """Write ``frames`` (in one write) if the socket takes them without waiting; False
        (and nothing written) if not."""

    def framed(self, frames: Sequence[bytes]) -> tuple[int, bytes] | None:
        """The socket's descriptor and the bytes ``write_text(*frames)`` would write now, for
        the send thread to write instead; None when it may not (see the module)."""

    def write_rest(self, data: bytes) -> None:
        """Write ``data``, what the send thread left of frames it was given, before anything
        else (the transport holds back what the socket does not take)."""


#: Bytes of frames written together in one direct write at most (a frame larger goes alone).
COALESCE_BYTES = 64 * 1024


class Sender(Protocol):
    """The compiled send thread's jobs (``livetemplate._sender_c.Sender``)."""

    def hand(self, key: int, frame: bytes) -> bool: ...

    def start(self) -> None: ...

    def wait(self) -> list[tuple[int, int]]: ...

    def run(self) -> None: ...

    def busy(self) -> bool: ...


class _WriteBatch(threading.local):
    """The write batch of this thread's event loop: the outboxes with frames held back
    (None: no batch is open), those a hand-over declined (they stay held until the release),
    those whose frames went to the send thread, in order, and that thread (made at the
    first hand-over, in each process)."""

    held: list[Outbox] | None = None
    kept: list[Outbox] | None = None
    handed: list[tuple[Outbox, bytes]] | None = None
    sender: Sender | None = None
    sender_pid = 0  # the process the sender was made in (a fork has no thread)


_batch = _WriteBatch()


def _sender() -> Sender | None:
    """This thread's send thread, started at the first call in this process: None where it
    was not built, is turned off, or the process may use one CPU only (it would only take
    turns with the loop)."""
    batch = _batch
    pid = os.getpid()
    if batch.sender_pid != pid:
        batch.sender_pid, batch.sender = pid, _start_sender()
    return batch.sender


def _start_sender() -> Sender | None:
    if os.environ.get("LIVETEMPLATE_SEND_THREAD", "").lower() in {"0", "false", "no", "off", "n"}:
        return None
    if _twins.extensions_disabled() or len(_usable_cpus()) < 2:
        return None
    try:
        module = _twins.compiled("_sender")
    except ImportError:
        return None
    sender: Sender = module.Sender()
    try:
        threading.Thread(target=sender.run, name="livetemplate-send", daemon=True).start()
    except RuntimeError as exc:  # no thread to be had: the writes stay on the loop's thread
        logger.warning("the send thread could not start: %s", exc)
        return None
    return sender


def _usable_cpus() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on macOS
        return set(range(os.cpu_count() or 1))


def hold_writes() -> None:
    """Open a write batch (in this thread): until :func:`release_writes`, direct writes
    wait. Only for code that does not yield to the event loop meanwhile."""
    if _batch.held is None:
        _batch.held = []


def hand_over_writes() -> None:
    """Give the frames held so far to the send thread, which writes them while the
    stretch's runs go on (see the module); without one, they stay held."""
    batch = _batch
    held = batch.held
    if not held:
        return
    sender = _sender()
    if sender is None:
        return
    if batch.handed is None:
        batch.handed = []
    handed = batch.handed
    # What a hand-over declines, later ones would too (see Outbox._hand_over): kept aside
    # for the release, not asked again at every hand-over of the batch.
    declined = [outbox for outbox in held if not outbox._hand_over(sender, handed)]
    sender.start()  # PERF: the thread is given them all at once (a lock taken per frame made the threads contend)
    held.clear()
    if declined:
        if batch.kept is None:
            batch.kept = declined
        else:
            batch.kept += declined


def sending() -> bool:
    """Whether the send thread is still writing frames of this write batch."""
    batch = _batch
    return bool(batch.handed) and batch.sender is not None and batch.sender.busy()


def release_writes() -> None:
    """Close the write batch and write what it held back (after what the send thread was
    given, once it is done)."""
    batch = _batch
    held, batch.held = batch.held, None
    kept, batch.kept = batch.kept, None
    handed, batch.handed = batch.handed, None
    if handed:
        sender = batch.sender
        assert sender is not None
        for index, written in sender.wait():
            outbox, frame = handed[index]
            _guarded(outbox, outbox._write_rest, frame[written:])
        for outbox, _ in handed:
            outbox._handed = False
    for outboxes in (kept, held):
        for outbox in outboxes or ():
            _guarded(outbox, outbox._release)


def _guarded(outbox: Outbox, write: Callable[..., None], *args: Any) -> None:
    try:
        write(*args)
    except Exception:  # a bug in a connection's writer: that connection only is given up
        logger.exception("writing held frames failed; the connection's outbox is closed")
        outbox.close()


class Outbox:
    """Frames for one connection, written to ``socket`` in the order they were put (with
    ``direct`` while the socket takes them without waiting)."""

    __slots__ = (
        "_backed_up_since",
        "_busy",
        "_frames",
        "_handed",
        "_held",
        "_idle",
        "_task",
        "broken",
        "budget",
        "direct",
        "on_drained",
        "pending_bytes",
        "socket",
        "stuck_after",
    )

    def __init__(
        self,
        socket: Socket,
        *,
        direct: DirectWrite | None = None,
        budget: int = 1 << 62,
        stuck_after: float = float("inf"),
    ) -> None:
        self.socket = socket
        self.direct = direct
        self.budget = budget
        #: Seconds backed up before the socket is told it is stuck (once: then infinite).
        self.stuck_after = stuck_after
        self.broken = False
        self.pending_bytes = 0
        #: Called once when a backed-up outbox has drained (set, then cleared, by the hub).
        self.on_drained: Callable[[], None] | None = None
        # PERF: a list (an empty one is 56 bytes; a deque, 760), made while frames wait: an
        # outbox holds a few frames at a time, and an idle one none
        self._frames: list[bytes] | None = None
        self._busy = False  # a task is writing
        self._held = False  # its frames wait for the write batch to be released
        self._handed = False  # the send thread was given frames of it in this write batch
        self._task: asyncio.Task[None] | None = None  # the background writer, while it runs
        self._idle: asyncio.Event | None = None
        self._backed_up_since: float | None = None

    def __len__(self) -> int:
        return len(self._frames) if self._frames else 0

    @property
    def idle(self) -> bool:
        """Whether no frame waits and no write is under way."""
        return not self._busy and self._frames is None

    @property
    def backed_up(self) -> bool:
        """Whether more than ``budget`` bytes wait: the client is not keeping up."""
        return self.pending_bytes > self.budget

    def put(self, frames: Iterable[bytes]) -> None:
        """Queue ``frames``: written now while the socket takes them without waiting (or
        when the write batch is released), then in the background."""
        held = _batch.held
        if held is not None and self.direct is not None and not self._busy:
            if self._queue(frames) and not self._held:
                self._held = True
                held.append(self)
            return
        if self._queue(self._written_now(frames)) and not self._busy:
            self._write_in_background()

    def _write_in_background(self) -> None:
        """Write what waits: in this call as far as it goes without waiting, then in a task."""
        self._busy = True
        drain = self._drain()
        try:
            waiting = drain.send(None)
        except StopIteration:
            return
        self._task = asyncio.get_running_loop().create_task(_carry_on(drain, waiting))

    def _release(self) -> None:
        """Write the frames the write batch held back (unless a writer took them meanwhile)."""
        self._held = False
        frames = self._frames
        if self._busy or self.broken or self.direct is None or frames is None:
            return
        written = self._write_direct(frames)
        if written == len(frames):  # PERF: the usual case, without a slice
            self._frames = None
            self.pending_bytes = 0
            self._backed_up_since = None
            self._drained()
        else:  # the socket pushes back: the rest in the background
            self.pending_bytes -= sum(map(len, frames[:written]))
            del frames[:written]
            self._write_in_background()

    def _hand_over(self, sender: Sender, handed: list[tuple[Outbox, bytes]]) -> bool:
        """Give the held frames to ``sender`` (noted in ``handed``); False when they stay
        held: this outbox was handed over already in this batch, does not write directly,
        its frames are larger than one coalesced write, its writer declines or the sender's
        round is full. None of that changes before the batch is released (the event loop
        does not run, and frames only add up): once False, False for the batch."""
        frames, direct = self._frames, self.direct
        if self._handed or self._busy or self.broken or direct is None or frames is None:
            return False
        if len(frames) > 1 and sum(map(len, frames)) > COALESCE_BYTES:
            return False
        job = direct.framed(frames)
        if job is None or not sender.hand(*job):
            return False
        handed.append((self, job[1]))
        self._handed, self._held = True, False
        self._frames = None
        self.pending_bytes = 0
        self._backed_up_since = None
        self._drained()
        return True

    def _write_rest(self, data: bytes) -> None:
        """What the send thread did not write of frames it was given: before anything else."""
        if not self.broken and self.direct is not None:
            self.direct.write_rest(data)

    async def send(self, frames: Iterable[bytes]) -> None:
        """Queue ``frames`` and, when no write is under way, write them now in this task
        (a reply to the connection's own message: no task needed)."""
        if self._queue(self._written_now(frames)) and not self._busy:
            self._busy = True
            await self._drain()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued frame is written (or the outbox broke); False on timeout."""
        if not self._busy:
            return True
        if self._idle is None:
            self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        return False

    def close(self) -> None:
        """Drop what waits and write nothing more."""
        self.broken = True
        self._frames = None
        self.pending_bytes = 0
        self.on_drained = None
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def _written_now(self, frames: Iterable[bytes]) -> Iterable[bytes]:
        """Write ``frames`` directly while nothing waits before them and the socket takes
        them; the frames left to queue."""
        if self.direct is None or self._busy or self._frames or self.broken:
            return frames
        left = list(frames)
        return left[self._write_direct(left) :]

    def _write_direct(self, frames: Sequence[bytes]) -> int:
        """Write ``frames`` directly while the socket takes them, several in one write up
        to ``COALESCE_BYTES`` (so that its flow control sees the bytes as they grow); how
        many were written."""
        direct = self.direct
        assert direct is not None
        count = len(frames)
        if count == 1:  # PERF: the usual case, without slicing
            return 1 if direct.write_text(frames[0]) else 0
        done = 0
        while done < count:
            end, size = done + 1, len(frames[done])
            while end < count and size + len(frames[end]) <= COALESCE_BYTES:
                size += len(frames[end])
                end += 1
            if not direct.write_text(*frames[done:end]):
                break
            done = end
        return done

    def _queue(self, frames: Iterable[bytes]) -> bool:
        """Queue ``frames`` after those waiting; whether any frame waits."""
        if self.broken:
            return False
        queued = self._frames
        for frame in frames:
            if queued is None:
                queued = self._frames = [frame]
            else:
                queued.append(frame)
            self.pending_bytes += len(frame)
        if self._backed_up_since is None and self.pending_bytes > self.budget:  # backed up now
            self._backed_up_since = time.monotonic()
            if self.stuck_after != float("inf"):
                asyncio.get_running_loop().call_later(self.stuck_after, self._check_stuck)
        return queued is not None

    def _check_stuck(self) -> None:
        since = self._backed_up_since
        if since is None or self.broken or self.stuck_after == float("inf"):
            return
        waited = time.monotonic() - since
        if waited < self.stuck_after:  # it drained and backed up again meanwhile: check later
            asyncio.get_running_loop().call_later(self.stuck_after - waited, self._check_stuck)
        else:
            self.stuck_after = float("inf")  # told once
            self.socket.stuck()

    async def _drain(self) -> None:
        try:
            while (frames := self._frames) and not self.broken:
                frame = frames.pop(0)
                if not frames:
                    self._frames = None
                self.pending_bytes -= len(frame)
                if self._backed_up_since is not None and not self.backed_up:
                    self._backed_up_since = None
                try:
                    await self.socket.write(frame)
                except Exception:  # the client went away mid-write
                    self.close()
        finally:
            self._busy = False
            self._task = None
            if self._idle is not None:
                self._idle.set()
                self._idle = None
            self._drained()

    def _drained(self) -> None:
        """Nothing waits any more: tell ``on_drained`` (once), which a push skipped while the
        outbox was backed up set. Frames held in a write batch can back it up too, and go out
        all at once when it is released: without this, a client would stay on the update
        before the last skipped one until the next push."""
        if self.on_drained is not None and not self.broken:
            on_drained, self.on_drained = self.on_drained, None
            on_drained()


async def _carry_on(steps: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive ``steps``, a coroutine that was started outside a task and has just yielded
    ``waiting`` (the future it waits on, or None to let the loop run once), to its end in
    the task running this. What the future holds, the coroutine reads itself when resumed;
    a cancellation of this task is passed on to it."""
    while True:
        thrown: BaseException | None = None
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False  # taken over from the coroutine, as a task does
                await waiting
        except asyncio.CancelledError as exc:
            if waiting is None or not waiting.cancelled():  # else it reads the cancellation itself
                thrown = exc
        except Exception:  # the future's error: the coroutine reads it when resumed
            pass
        try:
            waiting = steps.throw(thrown) if thrown is not None else steps.send(None)
        except StopIteration:
            return
