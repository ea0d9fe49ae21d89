"""The WebSocket protocol this project serves with under uvicorn.

It is uvicorn's own ``websockets-sansio`` protocol (websockets' sans-I/O parser does the
handshake) with three additions. The first is a direct write for the app's text frames,
offered in the connection's scope as the ASGI extension ``livetemplate.write_text``:
``{"writer": protocol}``, where
``protocol.write_text(*payloads)`` frames each payload and hands them to the socket at once,
in one write, when the socket takes them without waiting (returns True), and otherwise does
nothing (returns False: the app then sends through ASGI, which waits for the socket). A
broadcast to many connections writes each update in a call, without a coroutine, an ASGI
message and a frame object per recipient.

The extension is not offered when per-message deflate was negotiated (frames would need
compressing) or when the installed uvicorn lacks the write flow control this relies on
(``writable``, uvicorn 0.52.1); without it the app sends through ASGI as with any server.
:func:`livetemplate.server.recommended_settings` selects this class (``ws=``, an import path).

The second is **parking** (the extension ``livetemplate.park``: ``{"server": protocol}``): an
open connection with no message waiting lets its task end. The protocol offers the next
message (a disconnect included) to the app's ``take()``, a plain call that handles what waits
for nothing (a client's action, usually) in the protocol's own callback; any other it queues,
and starts a new task for the app, counted with uvicorn's own tasks (shutdown waits for
them). An idle connection then holds no task, no coroutines and no future: 2.5 KiB and 13
GC-tracked objects less. It is offered only when the app's call is the
:class:`~livetemplate.LiveApp`'s own (or uvicorn's proxy-headers middleware's around it): a
middleware of the user's could act once the call returns, so an app behind one keeps its task
as under any server. A message that comes whole in one text frame (the usual one) is offered
straight from the bytes read, without the frame reader's events.

Every open connection holds the protocol's queue of incoming messages and its ``writable``
event; they are this project's :mod:`~livetemplate.primitives` (same behaviour), which make
their waiters' lists only when a task waits: asyncio's allocate four deques, 3 KiB a connection.
A connection whose transport takes writes shares one set ``writable`` event with the others;
one paused by its transport gets its own until it is resumed.
The protocol's own attributes are slots: uvicorn's class sets more of them than an instance dict
shares its keys for, and each connection's dict took 1.6 KiB. Its keepalive pings go on one
timer for all connections (:mod:`.keepalive`), not a timer each. Between two messages it keeps
no list of the last one's frames (an empty list is 72 bytes and an object for the collector).

The third: once the handshake is answered, the open connection's frames (fragmentation,
ping/pong, close codes, masking, size limits) are read and written by the project's
:class:`~.open_websocket.OpenWebSocket`, one object in place of websockets' protocol, its
stream reader, generators and lists (1.2 KiB and 6 objects a connection). A connection that
negotiated per-message deflate keeps websockets' protocol.

At shutdown, a connection the app's drain closed (1012) gets up to a second for the client's
close reply before its socket closes (:meth:`LiveWebSocketProtocol.shutdown`).
"""

from __future__ import annotations

import asyncio
import dis
import inspect
from collections.abc import Awaitable, Callable, Sequence
from types import CodeType
from typing import Any, cast

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from ..app import LiveApp
from ..frames import websocket_text_frame
from ..primitives import Event, Queue
from .keepalive import PingSchedule
from .open_websocket import OpenWebSocket
from .websocket import PARK, WRITE_TEXT, Resumable

__all__ = ["LiveWebSocketProtocol", "text_frame"]

#: How long, once uvicorn stops, a connection that sent its close frame waits for the client's.
CLOSING_HANDSHAKE_WAIT = 1.0


def _instance_attributes(cls: type) -> tuple[str, ...]:
    """The attributes that the methods of ``cls`` and its bases set (every name their code
    stores with ``x.name = ...``), but those a class of them defines (methods, properties,
    class-level defaults), which a slot of that name would hide."""
    stored: set[str] = set()
    for klass in cls.__mro__:
        for member in vars(klass).values():
            function = inspect.unwrap(getattr(member, "__func__", member))
            if inspect.isfunction(function):
                stored.update(op.argval for op in dis.get_instructions(function) if op.opname == "STORE_ATTR")
    defined = {name for klass in cls.__mro__ for name in vars(klass)}
    return tuple(sorted(stored - defined))


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering the app a direct write of text frames
    and parking (see the module's doc)."""

    # PERF: uvicorn's protocol sets some 37 attributes, more than an instance dict shares its
    # keys for (30 on CPython 3.11): each connection's dict took 1.6 KiB. As slots, they take
    # 8 bytes each. An attribute a later uvicorn adds lands in the instance dict as before.
    __slots__ = tuple(sorted({*_instance_attributes(WebSocketsSansIOProtocol), "ping_due", "send_fd"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ping_due = 0  # the slice of the shared ping schedule this connection is in (0: none)
        self.send_fd = _UNKNOWN  # the socket's descriptor for the send thread (-1: not for it)
        self.frames = _NO_FRAMES
        self.queue = _Inbox(self)  # type: ignore[assignment]  # the same methods as asyncio.Queue's
        if isinstance(getattr(self, "writable", None), asyncio.Event):  # uvicorn's write flow control
            self.writable = _WRITABLE  # type: ignore[assignment]  # the same methods as asyncio.Event's

    def pause_writing(self) -> None:
        """The transport's buffer is full: sends wait, on an event of this connection's own."""
        writable: Any = self.writable  # typed as asyncio's Event by uvicorn
        if writable is _WRITABLE:
            self.writable = Event()  # type: ignore[assignment]
        else:
            super().pause_writing()

    def resume_writing(self) -> None:
        """The transport's buffer drained: the sends waiting go on."""
        paused: Any = self.writable
        if isinstance(paused, Event) and paused is not _WRITABLE:
            self.writable = _WRITABLE  # type: ignore[assignment]
            paused.set()
        else:
            super().resume_writing()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if (
            self.response.status_code == 101
            and not self.conn.extensions
            and isinstance(getattr(self, "writable", None), Event)
        ):
            self.scope["extensions"][WRITE_TEXT] = {"writer": self}

    def shutdown(self) -> None:
        """uvicorn is stopping. A connection whose close frame went out (the app's drain sent
        1012) finishes its closing handshake, for up to :data:`CLOSING_HANDSHAKE_WAIT`, where
        uvicorn would close its socket at once: a socket closed with the client's last frames
        unread is reset, and a client or a proxy that is still writing then loses the close
        frame it was sent (it reports 1006, not 1012). uvicorn waits for the connection."""
        close_timer = self.close_timer
        if not self.close_sent or close_timer is None:
            super().shutdown()
            return
        self.stop_keepalive()
        close_timer.cancel()
        self.close_timer = self.loop.call_later(CLOSING_HANDSHAKE_WAIT, self.transport.close)

    async def run_asgi(self) -> None:
        """The app's call, offered parking when nothing of the user's wraps it."""

        def call() -> Awaitable[Any]:
            awaitable: Awaitable[Any] = self.app(self.scope, self.receive, self.send)
            if _parks(self.app, awaitable):
                self.scope["extensions"][PARK] = {"server": self}
            return awaitable

        await self._run_app(call)

    def park(self, app: Resumable) -> bool:
        """Let the app's task end while no message waits: the next message put in the queue
        (a disconnect included) is offered to ``app.take()`` and, unless taken, starts
        ``app.resume()`` in a task of this connection, run as the app's call is. False when a
        message waits already (the app reads it instead)."""
        if not self.queue.empty():
            return False
        cast(_Inbox, self.queue).parked = app
        return True

    def wake(self, app: Resumable) -> None:
        """Run the parked app's ``resume()`` now: a message it took has work left."""
        cast(_Inbox, self.queue).parked = None
        self.resume_app(app)

    def resume_app(self, app: Resumable) -> None:
        """Run the parked app's ``resume()`` in a task, counted with the server's."""
        task = self.loop.create_task(self._run_app(app.resume))
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def _run_app(self, call: Callable[[], Awaitable[Any]]) -> None:
        """Await the app's call (or its resumption) as uvicorn does: an error is logged, and
        answered with a 500 while the handshake is not complete; once it returns the socket
        is closed, unless the app parked."""
        try:
            result = await call()
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if cast(_Inbox, self.queue).parked is None and self.close_timer is None:
            self.transport.close()

    def start_keepalive(self) -> None:
        """Called once the handshake's response went out: its request and response are not
        read again, and an open connection need not keep their headers."""
        super().start_keepalive()
        self.request = self.response = None  # type: ignore[assignment]
        if _at_rest(self.conn):  # the open connection's frames: an object of the project's
            self.conn = cast(ServerProtocol, OpenWebSocket(self.conn.max_message_size))
        # The app has the scope it was given; this protocol's logs read its path and client only.
        scope = cast(dict[str, Any], self.scope)
        self.scope = cast(Any, {key: scope[key] for key in _LOGGED if key in scope})

    def schedule_ping(self) -> None:
        """The next keepalive ping, on the loop's shared schedule (uvicorn's own makes a timer
        for each connection)."""
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        self.ping_due = PingSchedule.of(self.loop).add(self, delay)

    def send_keepalive_ping(self) -> None:
        self.ping_due = 0  # taken off the schedule, which calls this
        super().send_keepalive_ping()

    def stop_keepalive(self) -> None:
        schedule = PingSchedule.find(self.loop) if self.ping_due else None
        if schedule is not None:
            schedule.remove(self, self.ping_due)
        self.ping_due = 0
        super().stop_keepalive()

    def data_received(self, data: bytes) -> None:
        """Read ``data`` (uvicorn's own), but hand a parked connection's message that came
        whole in one text frame to the app straight away (:meth:`OpenWebSocket.whole_text`),
        as uvicorn's reading would hand it. PERF: no frame object, event list or frames
        list, and none of the event dispatch: about a tenth of an action's instructions
        (``python -m benchmarks.action``; the figures are in docs/performance.md)."""
        inbox: _Inbox = self.queue  # type: ignore[assignment]  # PERF: cast() is a call
        conn: Any = self.conn
        if inbox.parked is not None and type(conn) is OpenWebSocket and not self.close_sent:
            payload = conn.whole_text(data)
            if payload is not None:
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    pass  # uvicorn's reading fails the connection (1007)
                else:
                    waiting = inbox.qsize()
                    inbox.put_nowait({"type": "websocket.receive", "text": text})
                    self._stop_reading_if_queued(self.read_paused, waiting)
                    return
        super().data_received(data)

    def send_receive_event_to_app(self) -> None:
        """Queue the message (uvicorn's own), or hand it to the parked app, which may take it
        at once: reading then goes on. uvicorn stops reading at every message until the app
        receives it; here only at a message that was queued. PERF: stopping and going on
        again took two system calls a message."""
        paused, waiting = self.read_paused, self.queue.qsize()
        self.read_paused = True  # uvicorn does not stop what it thinks stopped
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        self.frames = _NO_FRAMES  # the message is queued: no list kept until the next
        self._stop_reading_if_queued(paused, waiting)

    def _stop_reading_if_queued(self, paused: bool, waiting: int) -> None:
        """Stop reading, as uvicorn does at every message, when the message just put in the
        queue (which held ``waiting`` before it) was queued: not taken by the parked app,
        nor dropped after a close."""
        if not paused and self.queue.qsize() > waiting:
            self.read_paused = True
            self.transport.pause_reading()

    def write_text(self, *payloads: bytes) -> bool:
        """Write each of ``payloads`` (UTF-8 text) as a text frame, all in one write to the
        socket, if it takes them now: the connection is open, no close was sent and the
        transport is not paused."""
        if self._takes_frames():
            self.transport.write(_framed(payloads))
            return True
        return False

    def framed(self, payloads: Sequence[bytes]) -> tuple[int, bytes] | None:
        """The socket's descriptor and what ``write_text(*payloads)`` would write now, for
        the send thread of :mod:`livetemplate.outbox` to write instead: only while the
        transport holds nothing back, and only on a plain socket (TLS encrypts on this
        thread); None otherwise."""
        fd = self.send_fd
        if fd == _UNKNOWN:
            fd = self.send_fd = _plain_descriptor(self.transport)
        if fd < 0 or self.transport.get_write_buffer_size() or not self._takes_frames():
            return None
        return fd, _framed(payloads)

    def write_rest(self, data: bytes) -> None:
        """Write ``data``, the part of frames the send thread could not write, before
        anything else (the transport holds back what the socket does not take)."""
        if not self.transport.is_closing():
            self.transport.write(data)

    def _takes_frames(self) -> bool:
        return (
            self.writable.is_set()
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and self.conn.state is _OPEN
            and not self.transport.is_closing()
        )


def _framed(payloads: Sequence[bytes]) -> bytes:
    """``payloads`` as text frames, in one ``bytes`` (one system call for the frames of a
    stretch of broadcasts)."""
    if len(payloads) == 1:
        return text_frame(payloads[0])
    return b"".join([text_frame(payload) for payload in payloads])


def _plain_descriptor(transport: asyncio.BaseTransport) -> int:
    """The descriptor of ``transport``'s socket when what is written to the transport is
    what goes on the wire (no TLS); -1 otherwise."""
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    try:
        return int(sock.fileno()) if sock is not None else -1
    except (OSError, ValueError):
        return -1


class _Inbox(Queue[Any]):
    """The protocol's queue of incoming messages. While the app is ``parked``, each message
    put is offered to its ``take()``; the first it does not take is queued and starts its
    ``resume()`` (see :meth:`LiveWebSocketProtocol.park`)."""

    __slots__ = ("parked", "protocol")

    def __init__(self, protocol: LiveWebSocketProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.parked: Resumable | None = None

    def put_nowait(self, item: Any) -> None:
        parked = self.parked
        if parked is not None and parked.take(item):
            return
        super().put_nowait(item)
        parked = self.parked  # unless the app woke up as it took a message
        if parked is not None:
            self.parked = None
            self.protocol.resume_app(parked)


def _parks(app: Any, call: Awaitable[Any]) -> bool:
    """Whether the connection may be parked: ``call`` (of ``app``) is the :class:`LiveApp`'s
    own, or uvicorn's proxy-headers middleware's around it, which does nothing once it
    returns. A middleware of its own could act then (log, release something), while the
    connection is still open: such an app keeps its task."""
    code = getattr(call, "cr_code", None)
    if code is LiveApp.__call__.__code__:
        return True
    return code is ProxyHeadersMiddleware.__call__.__code__ and isinstance(getattr(app, "app", None), LiveApp)


#: The ``writable`` event of every connection whose transport takes writes: set, and never
#: cleared (a connection paused by its transport gets an event of its own until resumed).
_WRITABLE = Event()
_WRITABLE.set()

#: The frames of the message being received, between two messages: uvicorn's protocol
#: assigns a new list at a message's first frame before appending any (websockets refuses a
#: continuation frame that comes first), so a shared empty tuple stands in for the empty list.
_NO_FRAMES: Any = ()
#: PERF: an enum member read through its class is about 70 ns slower than a module name on
#: Python 3.11 (benchmarks/idioms.py); this one is read by every write
_OPEN = State.OPEN
_UNKNOWN = -2  # the send thread's descriptor is looked up at the first hand-over
#: What uvicorn's protocol reads of its scope once the connection is open (its log lines).
_LOGGED = ("type", "client", "path", "raw_path", "query_string")

#: Where websockets' server-side parser waits between two frames: its handshake step, its
#: frame loop, and the stream's wait for the next byte.
_BETWEEN_FRAMES = [ServerProtocol.parse.__code__, Protocol.parse.__code__, StreamReader.at_eof.__code__]


def _at_rest(conn: ServerProtocol) -> bool:
    """Whether websockets' protocol can hand the connection over to :class:`OpenWebSocket`:
    it is open, negotiated no extension, and waits between two frames with no byte unread
    (a client that sent a frame's first bytes before the handshake's answer keeps it). Any
    other websockets than the one it knows (its parser's steps, its size limit's name) keeps
    its own protocol too."""
    if not hasattr(conn, "max_message_size"):
        return False
    codes: list[CodeType] = []
    step: Any = conn.parser  # a generator (typed as Generator, which does not name gi_*)
    while step is not None:
        codes.append(step.gi_code)
        step = step.gi_yieldfrom
    return (
        codes == _BETWEEN_FRAMES
        and conn.state is State.OPEN
        and not conn.extensions
        and not conn.reader.buffer
        and not conn.events
        and not conn.writes
    )


#: The payload framed last and its frame (a server's frames are not masked: the same for
#: every connection).
_last_framed: tuple[bytes, bytes] = (b"", websocket_text_frame(b""))


def text_frame(payload: bytes) -> bytes:
    """``payload`` as a text frame. A broadcast's update is one bytes object for all its
    recipients (see :mod:`livetemplate.rendering`): it is framed once, for the first."""
    global _last_framed
    last, frame = _last_framed
    if payload is not last:
        frame = websocket_text_frame(payload)
        _last_framed = (payload, frame)
    return frame
