"""The project's WebSocket protocol for uvicorn (a real uvicorn in this process, on a
loopback socket): the direct write of text frames, its refusal when the socket is paused or
closed (the outbox then waits through ASGI, in order), and the protocol behaviours it keeps
from uvicorn's own: size limits, UTF-8 checks, masking, fragments, ping/pong."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
import json
import os
import socket
import struct
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from websockets import http11
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import livetemplate
from examples.counter.app import TEMPLATE as COUNTER
from examples.counter.app import Counter, CounterController
from livetemplate.broadcast import BroadcastUnavailable
from livetemplate.frames import websocket_text_frame
from livetemplate.outbox import Outbox
from livetemplate.server import recommended_settings
from livetemplate.session import LiveView
from livetemplate.transports.keepalive import PingSchedule
from livetemplate.transports.open_websocket import OpenWebSocket
from livetemplate.transports.uvicorn_protocol import LiveWebSocketProtocol, _instance_attributes, text_frame
from livetemplate.transports.websocket import WRITE_TEXT, WebSocketConnection
from livetemplate.wire import GENERAL_ERROR, NAVIGATE, PING, RATE_LIMIT_ERROR
from tests.support.sockets import Direct

pytestmark = pytest.mark.anyio

PROTOCOL = recommended_settings(None)["ws"]


class AsgiSocket:
    """An outbox's awaited write through ASGI's ``send``."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self.write = write

    def stuck(self) -> None:
        raise AssertionError("no test here backs up")

    def unsubscribed(self, exc: BroadcastUnavailable) -> None:
        """No app here subscribes."""


class FrameApp:
    """An ASGI app that answers ``{"send": [sizes]}`` with text frames of those sizes and
    ``{"flood": n, "size": s}`` with ``n`` numbered frames through an outbox."""

    def __init__(self) -> None:
        self.offered: list[bool] = []
        self.refused = 0  # direct writes the socket did not take
        self.written: list[bool] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        direct = scope["extensions"].get(WRITE_TEXT)
        self.offered.append(direct is not None)
        await send({"type": "websocket.accept"})

        async def write(frame: bytes) -> None:
            await send({"type": "websocket.send", "text": frame.decode()})

        def write_now(*frames: bytes) -> bool:
            taken: bool = direct["writer"].write_text(*frames)
            self.refused += not taken
            return taken

        outbox = Outbox(AsgiSocket(write), direct=Direct(write_now) if direct else None)
        while (message := await receive())["type"] == "websocket.receive":
            order = json.loads(message["text"])
            if "send" in order:
                for size in order["send"]:
                    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
                    self.written.append(direct["writer"].write_text(payload) if direct else False)
                    if not direct:
                        await write(payload)
            elif "together" in order:
                payloads = [f"frame {n}".encode() for n in range(order["together"])]
                self.written.append(direct["writer"].write_text(*payloads))
            elif "flood" in order:
                outbox.put(json.dumps([n, "x" * order["size"]]).encode() for n in range(order["flood"]))
            elif "close" in order:
                await send({"type": "websocket.close", "code": 1000})
                self.written.append(direct["writer"].write_text(b"late"))
                return


def open_protocols() -> list[Any]:
    """The project's protocol objects of the connections still open (earlier tests' closed
    ones may linger until collected)."""
    return [p for p in gc.get_objects() if type(p).__name__ == "LiveWebSocketProtocol" and not p.disconnected]


@contextlib.asynccontextmanager
async def serving(app: Any, **settings: Any) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {"ws": PROTOCOL, "ws_per_message_deflate": False, "log_level": "warning", "lifespan": "off"}
    server = uvicorn.Server(uvicorn.Config(app, **(options | settings)))
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving


async def test_text_frames_of_every_length_arrive_whole() -> None:
    app = FrameApp()
    sizes = [0, 1, 124, 125, 126, 127, 65_535, 65_536, 65_537, 1_000_001]
    async with serving(app, ws_max_size=4_000_000) as port, connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        await ws.send(json.dumps({"send": sizes}))
        received = [await ws.recv() for _ in sizes]
    assert [len(text.encode()) for text in received] == sizes
    assert received[2] == "é" * 62
    assert app.offered == [True] and app.written == [True] * len(sizes)


async def test_frames_written_together_arrive_as_separate_messages_in_order() -> None:
    app = FrameApp()
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(json.dumps({"together": 5}))
        received = [await ws.recv() for _ in range(5)]
    assert received == [f"frame {n}" for n in range(5)]
    assert app.written == [True]


async def test_a_client_that_does_not_read_gets_every_frame_in_order_once_it_does() -> None:
    """Its transport pauses the writer: that connection waits on an event of its own, while
    the others share one that stays set and write on directly."""
    app = FrameApp()
    count = 400
    async with (
        serving(app) as port,
        connect(f"ws://127.0.0.1:{port}/", max_size=None, max_queue=1) as ws,
        connect(f"ws://127.0.0.1:{port}/") as other,
    ):
        await ws.send(json.dumps({"flood": count, "size": 65_536}))  # 26 MB: more than the socket buffers hold
        await until(lambda: any(not protocol.writable.is_set() for protocol in open_protocols()))
        (flooded,) = [protocol for protocol in open_protocols() if not protocol.writable.is_set()]
        (idle,) = [protocol for protocol in open_protocols() if protocol is not flooded]
        await other.send(json.dumps({"send": [3]}))
        assert await other.recv() == "éx" and app.written == [True]  # written directly meanwhile
        async with asyncio.timeout(30):  # a frame lost would leave the client waiting
            numbers = [json.loads(await ws.recv())[0] for _ in range(count)]
        assert flooded.writable is idle.writable and idle.writable.is_set()  # resumed: shared again
    assert numbers == list(range(count))
    assert app.refused >= 1  # the socket paused the writer at least once: the outbox waited through ASGI


async def test_the_direct_write_refuses_once_the_app_closed() -> None:
    app = FrameApp()
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(json.dumps({"close": True}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert app.written == [False]


async def test_with_per_message_deflate_frames_go_through_asgi() -> None:
    app = FrameApp()
    async with serving(app, ws_per_message_deflate=True) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(json.dumps({"send": [10, 70_000]}))
        received = [await ws.recv() for _ in range(2)]
        assert ws.protocol.extensions  # deflate was negotiated
        # with bounded windows (4 KiB each way), which docs/performance.md's memory figure assumes
        negotiated = ws.response.headers["Sec-WebSocket-Extensions"]
        assert "server_max_window_bits=12" in negotiated and "client_max_window_bits=12" in negotiated
        (protocol,) = open_protocols()
        assert not isinstance(protocol.conn, OpenWebSocket)  # websockets' protocol inflates
        await ws.send(json.dumps({"send": [5]}))  # and reads the client's compressed frames
        assert len((await ws.recv()).encode()) == 5
    assert [len(text.encode()) for text in received] == [10, 70_000]
    assert app.offered == [False]


async def test_a_fragmented_message_is_reassembled_and_a_ping_answered() -> None:
    app = FrameApp()
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(iter(['{"send": ', "[3, 5]", "}"]))  # one message in three frames
        assert [await ws.recv() for _ in range(2)] == ["éx", "ééx"]
        latency = await ws.ping()
        await asyncio.wait_for(latency, 5)


# -- frames a broken or hostile client sends (a raw socket) ------------------------------------


async def test_an_oversized_frame_is_closed_with_1009() -> None:
    async with serving(FrameApp(), ws_max_size=1024) as port:
        assert await close_code_after(port, frame(0x1, b"x" * 2048)) == 1009


async def test_text_that_is_not_utf8_is_closed_with_1007() -> None:
    async with serving(FrameApp()) as port:
        assert await close_code_after(port, frame(0x1, b"\xff\xfe")) == 1007


async def test_an_unmasked_client_frame_is_closed_with_1002() -> None:
    async with serving(FrameApp()) as port:
        assert await close_code_after(port, frame(0x1, b'{"send": [1]}', masked=False)) == 1002


def frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
    """A final client frame (payloads under 64 KiB)."""
    size = len(payload)
    length = bytes([size | (0x80 if masked else 0)]) if size < 126 else bytes([126 | (0x80 if masked else 0)])
    extended = b"" if size < 126 else struct.pack("!H", size)
    if not masked:
        return bytes([0x80 | opcode]) + length + extended + payload
    mask = os.urandom(4)
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x80 | opcode]) + length + extended + mask + body


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )


async def close_code_after(port: int, data: bytes) -> int:
    """Open a WebSocket with a raw socket, write ``data``, return the server's close code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(port))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(data)
    try:
        return await asyncio.wait_for(_read_close(reader.readexactly), 5)
    finally:
        writer.close()


async def _read_close(read: Callable[[int], Any]) -> int:
    while True:
        opcode, payload = await _read_frame(read)
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0])


async def _read_frame(read: Callable[[int], Any]) -> tuple[int, bytes]:
    """A server's frame: its opcode and payload."""
    first, second = await read(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", await read(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await read(8))[0]
    return first & 0x0F, await read(size)


async def test_a_frame_begun_before_the_handshakes_answer_is_read_by_websockets_protocol() -> None:
    """The connection is handed to the project's frame reader only between two frames: a
    client that sent a frame's first bytes before the upgrade was answered keeps websockets' own."""

    class SlowToAccept(FrameApp):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            await asyncio.sleep(0.3)  # the client's first bytes of a frame arrive meanwhile
            await super().__call__(scope, receive, send)

    async with serving(SlowToAccept()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        message = frame(0x1, json.dumps({"send": [3]}).encode())
        writer.write(upgrade_request(port))
        await asyncio.sleep(0.1)
        writer.write(message[:3])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        (protocol,) = open_protocols()
        assert not isinstance(protocol.conn, OpenWebSocket)
        writer.write(message[3:])
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"\x81\x03" + "éx".encode()
        writer.close()


def test_a_payload_shared_by_a_broadcasts_recipients_is_framed_once() -> None:
    shared = json.dumps({"tree": {"0": "1"}}).encode()
    first = text_frame(shared)
    assert first == websocket_text_frame(shared)
    assert text_frame(shared) is first  # the same object: framed once
    equal = bytes(bytearray(shared))  # equal bytes, another object: framed again, the same frame
    assert text_frame(equal) == first and text_frame(equal) is not first
    other = b'{"tree":{"0":"2"}}'
    assert text_frame(other) == websocket_text_frame(other)
    assert text_frame(shared) == first


async def test_an_open_connection_keeps_no_handshake_response() -> None:
    app = FrameApp()
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(json.dumps({"send": [3]}))
        assert await ws.recv() == "éx"
        (protocol,) = open_protocols()
        assert protocol.response is None and protocol.request is None
        gc.collect()  # closed connections of earlier tests
        # websockets' parser no longer holds the upgrade request either (a frame parser took its
        # place): the one request left is the one the test's client sent
        assert [o for o in gc.get_objects() if isinstance(o, http11.Request)] == [ws.request]
        await ws.ping()  # the connection goes on as before
        await ws.send(json.dumps({"send": [3]}))
        assert await ws.recv() == "éx"


async def test_an_idle_connection_holds_no_deque_for_waiters() -> None:
    """Its queue of incoming messages and its writable event are the lean primitives: no
    ``collections.deque`` (760 bytes each) is reachable from the protocol while nothing waits."""
    app = FrameApp()
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(json.dumps({"send": [3]}))
        assert await ws.recv() == "éx"
        (protocol,) = open_protocols()
        held = [protocol.queue, protocol.writable, *gc.get_referents(protocol.queue, protocol.writable)]
        assert not [value for value in held if isinstance(value, collections.deque)]
        assert protocol.writable.is_set()
        await ws.send(json.dumps({"send": [5]}))  # messages still go through the queue
        assert await ws.recv() == "ééx"


async def test_an_open_connection_of_an_app_keeps_no_upgrade_headers() -> None:
    """The app reads the upgrade's headers while the connection opens and lets go of its scope;
    the protocol keeps what its logs read (the path and the client), not the headers."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    proxy_headers = recommended_settings(app)["proxy_headers"]  # off: no middleware in front keeps the scope
    async with (
        serving(app, proxy_headers=proxy_headers) as port,
        connect(f"ws://127.0.0.1:{port}/", user_agent_header="probe") as ws,
    ):
        first = json.loads(await ws.recv())
        assert first["meta"]["success"]
        gc.collect()
        client = tuple(ws.local_address[:2])
        scopes = [  # the scope the app was given (the copy holds atoms only: not tracked)
            o
            for o in gc.get_objects()
            if isinstance(o, dict) and o.get("type") == "websocket" and tuple(o.get("client") or ()) == client
        ]
        assert scopes == []
        (protocol,) = [p for p in open_protocols() if p.client == client]
        assert "headers" not in protocol.scope and protocol.scope["path"] == "/"
        await ws.send(json.dumps({"action": "increment"}))  # the connection goes on
        assert json.loads(await ws.recv())["tree"]["0"] == "1"


async def test_an_open_connections_protocol_keeps_its_attributes_in_slots() -> None:
    """uvicorn's protocol sets more attributes than an instance dict shares its keys for (a
    1.6 KiB dict a connection); the project's class keeps every one it sets in a slot, through
    the handshake, messages, and keepalive pings and their pongs."""
    app = FrameApp()
    async with serving(app, ws_ping_interval=0.05) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(json.dumps({"send": [3]}))
        assert await ws.recv() == "éx"
        (protocol,) = open_protocols()
        pongs = protocol.last_ping_rtt
        for _ in range(100):  # until a ping went out and its pong came back
            await asyncio.sleep(0.02)
            if protocol.last_ping_rtt != pongs:
                break
        assert protocol.last_ping_rtt != pongs
        assert vars(protocol) == {}
        await ws.send(json.dumps({"send": [5]}))  # the connection goes on
        assert await ws.recv() == "ééx"


def test_slots_never_hide_what_a_class_defines() -> None:
    """The protocol's slots are the attributes its classes' methods set, but none that a class
    defines (a method, a property, a default), which a slot of that name would hide."""

    class Base:
        default = 1

        def __init__(self) -> None:
            self.plain = 0
            self.default = 2
            self.method = None  # type: ignore[method-assign]

        def method(self) -> None:
            self.later = 3

        @property
        def computed(self) -> int:
            return 4

        @computed.setter
        def computed(self, value: int) -> None:
            self.plain = value

    assert _instance_attributes(Base) == ("later", "plain")


async def test_keepalive_pings_go_out_on_the_shared_schedule_and_a_silent_peer_is_closed() -> None:
    """An idle connection holds no timer of its own: its next ping is in the loop's shared
    schedule. A peer that answers pings stays open; one that does not is closed with 1011
    once the pong's deadline passes, as with uvicorn's own keepalive."""
    app = FrameApp()
    async with serving(app, ws_ping_interval=0.05, ws_ping_timeout=0.5) as port:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"send": [3]}))
            assert await ws.recv() == "éx"
            (protocol,) = open_protocols()
            assert protocol.ping_timer is None and protocol.ping_due
            assert protocol in PingSchedule.of(asyncio.get_running_loop()).slices[protocol.ping_due]
            await asyncio.sleep(0.6)  # several pings, each answered by the client within the deadline
            await ws.send(json.dumps({"send": [5]}))
            assert await ws.recv() == "ééx"
        assert PingSchedule.find(asyncio.get_running_loop()) is None  # closed: nothing left due
    async with serving(app, ws_ping_interval=0.05, ws_ping_timeout=0.1) as port:
        assert await close_code_after(port, b"") == 1011  # a raw client never answers a ping


# -- parking: an idle connection of the app holds no task ------------------------------------------


def connection_tasks() -> list[asyncio.Task[Any]]:
    """The tasks that run an app's call or its resumption for a WebSocket connection."""
    codes = {LiveWebSocketProtocol.run_asgi.__code__, LiveWebSocketProtocol._run_app.__code__}
    return [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "cr_code", None) in codes]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not hold within 2 s")


async def test_an_idle_connection_of_the_app_holds_no_task_and_goes_on_at_each_message() -> None:
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app) as port:
        async with connect(f"ws://127.0.0.1:{port}/") as one, connect(f"ws://127.0.0.1:{port}/") as two:
            for ws in (one, two):
                assert json.loads(await ws.recv())["meta"]["success"]
            await until(lambda: not connection_tasks())  # both parked once opened
            assert len(app.runtime.connections) == 2
            for count in (1, 2, 3):
                await one.send(json.dumps({"action": "increment"}))
                assert json.loads(await one.recv())["tree"]["0"] == str(count)
            await two.send(json.dumps({"action": "decrement"}))
            assert json.loads(await two.recv())["tree"]["0"] == "-1"
            await until(lambda: not connection_tasks())  # parked again after each message
        await until(lambda: not app.runtime.connections)  # the clients' closes ended both
        assert app.hub.views == set() and not connection_tasks()


async def test_an_idle_connection_of_the_app_holds_no_method_objects_nor_empty_lists() -> None:
    """Each object an idle connection holds is one more for the collector: its outbox and the
    app hold the server itself rather than bound methods of it, no empty list is kept of the
    last message, and the frames are read by the project's own object (websockets' protocol
    held a stream reader, two generators and lists)."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert json.loads(await ws.recv())["meta"]["success"]
        await ws.send(json.dumps({"action": "increment"}))
        assert json.loads(await ws.recv())["tree"]["0"] == "1"
        await until(lambda: not connection_tasks())  # parked
        (connection,) = app.runtime.connections
        (protocol,) = open_protocols()
        assert isinstance(protocol.conn, OpenWebSocket)
        held = [
            *vars(connection).values(),
            *gc.get_referents(protocol, protocol.queue, connection.outbox, protocol.conn),
        ]
        assert [type(o).__name__ for o in held if isinstance(o, types.MethodType)] == []
        assert [o for o in held if isinstance(o, list) and not o] == []
        await ws.send(json.dumps({"action": "increment"}))  # and it goes on
        assert json.loads(await ws.recv())["tree"]["0"] == "2"


async def test_a_parked_connection_is_closed_with_1012_at_shutdown_and_cleaned_up() -> None:
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app) as port:
        ws = await connect(f"ws://127.0.0.1:{port}/")
        assert json.loads(await ws.recv())["meta"]["success"]
        await until(lambda: not connection_tasks())
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert not app.runtime.connections and app.hub.views == set()


async def test_a_message_arriving_while_the_app_closes_the_connection_does_not_cut_it_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The drain closes a parked connection with 1012: while its frames are flushed, a message
    of the client resumes it. The connection's task ends (it is closed) only once the close
    frame went out; ending first, uvicorn would close the socket under it (the client: 1006)."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app) as port:
        ws = await connect(f"ws://127.0.0.1:{port}/")
        assert json.loads(await ws.recv())["meta"]["success"]
        await until(lambda: not connection_tasks())  # parked
        (connection,) = app.runtime.connections
        flushing, flushed = asyncio.Event(), asyncio.Event()

        async def slow_flush(outbox: Outbox, timeout: float) -> None:  # a slow client's frames going out
            flushing.set()
            await flushed.wait()

        monkeypatch.setattr(Outbox, "flush", slow_flush)
        closing = asyncio.ensure_future(connection.close(1012, "Server restarting", flush=5.0))
        await flushing.wait()
        await ws.send(json.dumps({"action": "increment"}))  # it resumes the parked connection
        await asyncio.sleep(0.2)  # the message was read and the connection's task ran
        flushed.set()
        await closing
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert not app.runtime.connections and app.hub.views == set()


async def test_an_app_behind_a_middleware_of_its_own_is_not_parked() -> None:
    """A middleware could act once the app's call returns: the app keeps its task then."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    after: list[str] = []

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        after.append(scope["type"])

    async with serving(middleware) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert json.loads(await ws.recv())["meta"]["success"]
        await ws.send(json.dumps({"action": "increment"}))
        assert json.loads(await ws.recv())["tree"]["0"] == "1"
        assert len(connection_tasks()) == 1 and after == []
    await until(lambda: after == ["websocket"])


async def test_a_flood_of_messages_runs_one_task_at_a_time_in_order() -> None:
    """A client that sends without waiting for replies gets them all, in order, from one task
    at a time: the first message starts it, the rest queue behind it (uvicorn stops reading
    while one waits) and it parks once they are done."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER, message_rate_limit=None)
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, len(connection_tasks()))
            await asyncio.sleep(0)

    async with serving(app, proxy_headers=False) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert json.loads(await ws.recv())["meta"]["success"]
        await until(lambda: not connection_tasks())
        watcher = asyncio.get_running_loop().create_task(watch())
        for _ in range(100):
            await ws.send(json.dumps({"action": "increment"}))
        counts = [json.loads(await ws.recv())["tree"]["0"] for _ in range(100)]
        watcher.cancel()
        assert counts == [str(n) for n in range(1, 101)]
        assert most == 1
        await until(lambda: not connection_tasks())


# -- a parked connection's message taken at once, in the protocol's callback ----------------------


async def reply(ws: Any) -> Any:
    """The next frame the client gets, within a few seconds."""
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """What each parked connection was offered, and whether it took it at once; a task
    resuming a connection is noted as ("resumed", True)."""
    offers: list[tuple[str, bool]] = []
    take, resume_app = WebSocketConnection.take, LiveWebSocketProtocol.resume_app

    def noted_take(self: WebSocketConnection, message: dict[str, Any]) -> bool:
        took = take(self, message)
        offers.append((json.loads(message.get("text") or "{}").get("action", message["type"]), took))
        return took

    def noted_resume(self: LiveWebSocketProtocol, app: Any) -> None:
        offers.append(("resumed", True))
        resume_app(self, app)

    monkeypatch.setattr(WebSocketConnection, "take", noted_take)
    monkeypatch.setattr(LiveWebSocketProtocol, "resume_app", noted_resume)
    return offers


async def test_a_parked_connections_actions_are_answered_without_a_task(taken: list[tuple[str, bool]]) -> None:
    """An action whose run waits for nothing is run, rendered and written in the callback
    that read it; the first run of a sync action (not yet seen returning no awaitable), a
    ping, a navigation and the disconnect go on in a task, as before."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await reply(ws))["meta"]["success"]
        await until(lambda: not connection_tasks())  # parked
        for count in (1, 2, 3):
            await ws.send(json.dumps({"action": "increment"}))
            assert (await reply(ws))["tree"]["0"] == str(count)
        await ws.send(json.dumps({"action": PING}))
        assert await reply(ws) == {"pong": True}
        await ws.send(json.dumps({"action": NAVIGATE, "data": {}}))
        assert (await reply(ws))["meta"]["success"]
        await until(lambda: not connection_tasks())
    assert taken == [
        ("increment", False),
        ("resumed", True),
        ("increment", True),
        ("increment", True),
        (PING, False),
        ("resumed", True),
        (NAVIGATE, False),
        ("resumed", True),
        ("websocket.disconnect", False),  # the client's close
        ("resumed", True),
    ]


async def test_an_action_handed_back_to_its_task_gives_its_rate_token_back(taken: list[tuple[str, bool]]) -> None:
    """The first run of an action is handed back to the connection's task (its function is
    not yet known to return no awaitable), after the rate limiter let it through: the token
    is given back, so the task's check does not count the message twice."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER, message_rate_limit=(0.001, 2))
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await reply(ws))["meta"]["success"]
        await until(lambda: not connection_tasks())
        replies = []
        for _ in range(3):
            await ws.send(json.dumps({"action": "increment"}))
            replies.append(await reply(ws))
            await until(lambda: not connection_tasks())
    assert [reply["tree"].get("0") for reply in replies] == ["1", "2", None]
    assert RATE_LIMIT_ERROR in replies[2]["meta"]["errors"]
    assert [took for action, took in taken if action == "increment"] == [False, True, False]


class HeldNews(livetemplate.InProcessBroadcaster):
    """Holds the subscription of the topic ``news`` until ``confirm`` is set (a Redis round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.confirm = asyncio.Event()

    async def subscribe(self, channel: str, handler: Any) -> None:
        if channel.endswith("news"):
            await self.confirm.wait()
        await super().subscribe(channel, handler)


class Joining(CounterController):
    def join(self, state: Counter, ctx: livetemplate.Context) -> Counter:
        ctx.subscribe(ctx.get_str("topic"))
        state.count += 10
        return state


async def test_an_action_taken_at_once_that_subscribes_is_answered_once_the_subscription_holds(
    taken: list[tuple[str, bool]],
) -> None:
    """The run and its render happen in the callback; the reply waits, in the connection's
    task, until the topic it joined is subscribed: a message published once the client has
    it reaches it."""
    broadcaster = HeldNews()
    app = livetemplate.mount(Joining(), Counter(), template=COUNTER, broadcaster=broadcaster, open_topics=True)
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await reply(ws))["meta"]["success"]
        await until(lambda: not connection_tasks())
        await ws.send(json.dumps({"action": "join", "data": {"topic": "sports"}}))  # seen returning no awaitable
        assert (await reply(ws))["tree"]["0"] == "10"
        await until(lambda: not connection_tasks())
        await ws.send(json.dumps({"action": "join", "data": {"topic": "news"}}))
        try:
            early = await asyncio.wait_for(ws.recv(), 0.3)
        except TimeoutError:
            early = None
        broadcaster.confirm.set()  # first: a server stopping would wait for the subscription
        assert early is None  # not before the subscription holds
        assert (await reply(ws))["tree"]["0"] == "20"
        await app.publish("news", "increment")
        assert (await reply(ws))["tree"]["0"] == "21"
    assert [took for action, took in taken if action == "join"] == [False, True]


async def test_a_failure_handling_a_taken_message_is_answered_and_the_connection_goes_on(
    taken: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    render = LiveView._render
    failures = [RuntimeError("a bug in rendering")]

    def failing_once(view: LiveView, *args: Any) -> list[bytes]:
        if failures:
            raise failures.pop()
        return render(view, *args)

    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await reply(ws))["meta"]["success"]
        await ws.send(json.dumps({"action": "increment"}))
        assert (await reply(ws))["tree"]["0"] == "1"
        await until(lambda: not connection_tasks())
        monkeypatch.setattr(LiveView, "_render", failing_once)
        await ws.send(json.dumps({"action": "increment"}))
        failed = (await reply(ws))["meta"]
        assert failed["errors"] == {GENERAL_ERROR: "the server failed to handle the message"}
        await ws.send(json.dumps({"action": "increment"}))
        assert (await reply(ws))["tree"]["0"] == "3"  # the failed message's run stood
    assert [took for action, took in taken if action == "increment"] == [False, True, True]


async def test_a_client_that_does_not_take_its_reply_is_not_read_from_until_it_does(
    taken: list[tuple[str, bool]],
) -> None:
    """The transport's buffer is full (its flow control paused writing): the reply to a
    message taken at once waits in the outbox, and the connection's task waits for it to
    go out before it reads on, as it does for a reply of its own. A client that sends and
    never reads piles up no runs and no replies on the server."""
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER, message_rate_limit=None)
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await reply(ws))["meta"]["success"]
        await ws.send(json.dumps({"action": "increment"}))
        assert (await reply(ws))["tree"]["0"] == "1"
        await until(lambda: not connection_tasks())
        (protocol,) = open_protocols()
        (view,) = app.hub.views
        protocol.pause_writing()
        for _ in range(3):
            await ws.send(json.dumps({"action": "increment"}))
        await until(lambda: len(connection_tasks()) == 1)  # waiting for the reply to go out
        await asyncio.sleep(0.2)
        assert view.state.count == 2  # the first was run; the others were not read
        protocol.resume_writing()
        assert [(await reply(ws))["tree"]["0"] for _ in range(3)] == ["2", "3", "4"]
    assert [took for action, took in taken if action == "increment"] == [False, True]  # the rest queued


async def test_a_commit_of_an_action_taken_at_once_reaches_the_groups_tab_on_another_instance(
    taken: list[tuple[str, bool]],
) -> None:
    """Two instances of the app share the session store and the broadcaster: the reply goes
    out in the callback, and telling the other instance of the commit (which waits) goes on
    in the connection's task. The session's tab there shows the change."""
    store, broadcaster = livetemplate.MemorySessionStore(), livetemplate.InProcessBroadcaster()
    shared = {"name": "shared", "secret_key": "same on both", "session_store": store, "broadcaster": broadcaster}
    one, two = (livetemplate.mount(CounterController(), Counter(), template=COUNTER, **shared) for _ in range(2))
    async with serving(one) as first, serving(two) as second, connect(f"ws://127.0.0.1:{first}/") as here:
        assert (await reply(here))["meta"]["success"]
        assert here.response is not None
        cookie = here.response.headers["set-cookie"].split(";")[0]
        async with connect(f"ws://127.0.0.1:{second}/", additional_headers={"Cookie": cookie}) as there:
            assert (await reply(there))["meta"]["success"]
            for count in ("1", "2"):
                await here.send(json.dumps({"action": "increment"}))
                assert (await reply(here))["tree"]["0"] == count
                assert (await reply(there))["tree"]["0"] == count
    assert [took for action, took in taken if action == "increment"] == [False, True]


# -- a parked connection's frames, as a raw socket sends them ----------------------------------


async def _parked_socket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw WebSocket to the counter app, once its first render came and it is parked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(port))
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
    opcode, first = await asyncio.wait_for(_read_frame(reader.readexactly), 5)
    assert opcode == 0x1 and json.loads(first)["meta"]["success"]
    await until(lambda: not connection_tasks())
    return reader, writer


async def test_a_parked_connections_messages_are_answered_in_order_however_their_frames_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message that comes whole in one text frame goes to the app without the frame
    reader's events; the others (several frames in one read, a frame cut over two reads, a
    message in fragments, a ping between them) are read as before, and every one is answered
    in order."""
    reads: list[bytes] = []  # what the frame reader read
    receive_data = OpenWebSocket.receive_data

    def noted(self: OpenWebSocket, data: bytes) -> None:
        reads.append(data)
        receive_data(self, data)

    monkeypatch.setattr(OpenWebSocket, "receive_data", noted)
    increment = json.dumps({"action": "increment"}).encode()
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app) as port:
        reader, writer = await _parked_socket(port)

        async def counts(n: int) -> list[str]:
            frames = [await asyncio.wait_for(_read_frame(reader.readexactly), 5) for _ in range(n)]
            return [json.loads(payload)["tree"]["0"] for opcode, payload in frames if opcode == 0x1]

        try:
            writer.write(frame(0x1, increment))  # whole: the shortcut
            assert await counts(1) == ["1"] and reads == []
            writer.write(frame(0x1, increment) + frame(0x1, increment))  # two in one read
            assert await counts(2) == ["2", "3"]
            cut = frame(0x1, increment)
            writer.write(cut[:5])
            await until(lambda: len(reads) == 2)  # the frame's first bytes were read
            writer.write(cut[5:])
            assert await counts(1) == ["4"]
            fragments = bytearray(frame(0x1, increment[:4]))
            fragments[0] &= 0x7F  # not final
            writer.write(bytes(fragments) + frame(0x9, b"?") + frame(0x0, increment[4:]))
            assert await counts(2) == ["5"]  # and the ping's pong
            writer.write(frame(0x1, increment))
            assert await counts(1) == ["6"]
            assert len(reads) == 4  # two in one read, the cut frame's two reads, the fragments
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x1, b"\xff\xfe"), 1007),  # not UTF-8
        (frame(0x1, b"x" * 2048), 1009),  # over the size limit
        (frame(0x1, b'{"action":"increment"}', masked=False), 1002),
    ],
)
async def test_a_bad_frame_on_a_parked_connection_closes_it_as_on_any_other(data: bytes, code: int) -> None:
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER)
    async with serving(app, ws_max_size=1024) as port:
        reader, writer = await _parked_socket(port)
        writer.write(data)
        try:
            assert await asyncio.wait_for(_read_close(reader.readexactly), 5) == code
        finally:
            writer.close()


async def test_a_message_the_parked_app_does_not_take_stops_reading_until_the_app_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole message the parked app hands back (a ping) is queued, and reading stops as
    uvicorn stops it at every message: what the client sends next waits in the socket, not
    in the server's queue, until the app's task has read it."""
    held: list[Any] = []  # the app's resumption, started by the test
    resume_app = LiveWebSocketProtocol.resume_app
    monkeypatch.setattr(LiveWebSocketProtocol, "resume_app", lambda self, app: held.append((self, app)))
    app = livetemplate.mount(CounterController(), Counter(), template=COUNTER, message_rate_limit=None)
    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await reply(ws))["meta"]["success"]
        await until(lambda: not connection_tasks())
        (protocol,) = open_protocols()
        await ws.send(json.dumps({"action": PING}))
        await until(lambda: bool(held))
        await ws.send(json.dumps({"action": "increment"}))
        await asyncio.sleep(0.1)
        assert protocol.read_paused and protocol.queue.qsize() == 1  # the increment was not read
        monkeypatch.setattr(LiveWebSocketProtocol, "resume_app", resume_app)
        resume_app(*held.pop())
        assert await reply(ws) == {"pong": True}
        assert (await reply(ws))["tree"]["0"] == "1"
