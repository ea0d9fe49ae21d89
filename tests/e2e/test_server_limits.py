"""The server as operators run it (uvicorn with ``livetemplate.server``'s settings), seen by a
raw WebSocket client: frames over the limit refused by the protocol, a graceful shutdown
that finishes the action in flight before closing with 1012, and broadcasts that reach every
client whole and in order beside one that stops reading (the send thread's writes included)."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from benchmarks.load.frames import CLOSE, TEXT, FrameParser, client_frame, upgrade_request
from tests.e2e.harness import Server


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://")


def test_a_frame_over_the_limit_is_refused_by_the_protocol(serve: Callable[..., Server]) -> None:
    server = serve("tests.e2e.apps:counter", max_message_size=4096)
    with connect(ws_url(server), max_size=None) as ws:
        json.loads(ws.recv())  # the complete tree
        ws.send(json.dumps({"action": "increment", "data": {"pad": "x" * 4000}}))  # within the limit
        assert json.loads(ws.recv())["meta"]["success"] is True
        ws.send(json.dumps({"action": "increment", "data": {"pad": "x" * 100_000}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_shutdown_finishes_the_action_in_flight_then_closes_with_1012(serve: Callable[..., Server]) -> None:
    server = serve("tests.e2e.apps:slow", shutdown_timeout=5)
    with connect(ws_url(server)) as ws:
        json.loads(ws.recv())
        ws.send(json.dumps({"action": "work", "data": {"seconds": 1.0}}))
        threading.Timer(0.3, server.stop).start()  # SIGTERM while the action runs
        reply = json.loads(ws.recv())
        assert reply["meta"]["success"] is True and reply["tree"] == {"0": "1"}  # its reply was delivered
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


def past_handshake(sock: socket.socket) -> bytes:
    """Read the server's answer to the upgrade (a 101); what came after it."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1 << 16)
        assert data, "the server closed the connection"
        head += data
    answer, _, rest = head.partition(b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return rest


def opened_raw(server: Server) -> tuple[socket.socket, FrameParser, list[tuple[int, bytes]]]:
    """A raw WebSocket client of ``server`` past the handshake: its socket, its parser, and
    the frames read so far (the complete tree's, at least)."""
    address = urlsplit(server.url)
    host, port = str(address.hostname), int(address.port or 0)
    raw = socket.create_connection((host, port))
    raw.settimeout(10)
    raw.sendall(upgrade_request(host, port, "/"))
    parser = FrameParser()
    frames = parser.feed(past_handshake(raw))
    while not frames:
        frames += parser.feed(raw.recv(1 << 16))
    return raw, parser, frames


def test_at_shutdown_a_client_still_writing_after_the_close_frame_gets_a_clean_end(
    serve: Callable[..., Server],
) -> None:
    """The drain's close frame goes out, and the socket stays open for the client's close
    reply: a client (or a proxy) that writes after the close frame came, before answering
    it, is neither cut off nor reset (a reset can cost a client the close frame itself: it
    reports 1006, not 1012); the server ends the connection once the reply came."""
    server = serve("tests.e2e.apps:counter", shutdown_timeout=5)  # a server of its own: it is stopped
    raw, parser, frames = opened_raw(server)
    with raw:
        stopping = threading.Thread(target=server.stop)  # SIGTERM; it returns once the server exited
        stopping.start()
        while not any(opcode == CLOSE for opcode, _ in frames):
            data = raw.recv(1 << 16)
            assert data, "the server ended the connection without a close frame"
            frames += parser.feed(data)
        close = next(payload for opcode, payload in frames if opcode == CLOSE)
        assert struct.unpack("!H", close[:2])[0] == 1012
        raw.sendall(client_frame(json.dumps({"action": "increment", "data": {}}).encode()))
        time.sleep(0.2)
        raw.settimeout(0)
        with pytest.raises(BlockingIOError):  # nothing came: the server waits, neither ended nor reset
            raw.recv(1, socket.MSG_PEEK)
        raw.settimeout(10)
        raw.sendall(client_frame(close[:2], CLOSE))
        assert raw.recv(1 << 16) == b""  # then it ends the connection
        stopping.join()


def test_at_shutdown_a_client_that_never_answers_the_close_frame_holds_it_a_second_at_most(
    serve: Callable[..., Server],
) -> None:
    """The wait for the client's close reply is bounded: not uvicorn's ten-second close
    timeout, so a client that stopped answering cannot stretch the shutdown."""
    server = serve("tests.e2e.apps:counter", shutdown_timeout=4)  # a server of its own: it is stopped
    raw, parser, frames = opened_raw(server)
    with raw:
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        raw.settimeout(5)  # uvicorn alone would wait 10 s for the reply
        while data := raw.recv(1 << 16):  # to the end, answering nothing
            frames += parser.feed(data)
        stopping.join()
    assert [opcode for opcode, _ in frames] == [TEXT, CLOSE]  # the complete tree, then 1012
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 1012


class SlowFrames:
    """The text messages a raw client reads, one at a time, past the handshake's answer
    (read here, once the upgrade request was sent)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = FrameParser()
        self.messages: list[bytes] = []
        self._take(past_handshake(sock))

    def next(self) -> bytes:
        while not self.messages:
            data = self.sock.recv(1 << 16)
            assert data, "the server closed the connection"
            self._take(data)
        return self.messages.pop(0)

    def _take(self, data: bytes) -> None:
        self.messages += [payload for opcode, payload in self.parser.feed(data) if opcode == TEXT]


def shown(message: str | bytes) -> int | None:
    """The post a board's update shows (None: the frame changes no post)."""
    tree = json.loads(message)["tree"]
    return int(tree["0"]) if "0" in tree else None


def test_broadcasts_reach_every_client_whole_and_in_order_beside_one_that_stops_reading(
    serve: Callable[..., Server],
) -> None:
    server = serve("tests.e2e.apps:board", factory=True, slow_client_timeout=60, message_rate_limit=None)
    url, address = ws_url(server), urlsplit(server.url)
    posts, pad = 300, "p" * 20_000  # 6 MB a client (each post its own): more than a socket buffers
    seen: list[list[int]] = [[] for _ in range(34)]

    def read(ws: ClientConnection, into: list[int]) -> None:
        while not into or into[-1] < posts:
            value = shown(ws.recv(timeout=30))
            if value is not None:
                into.append(value)

    with contextlib.ExitStack() as stack:
        slow = stack.enter_context(socket.socket())  # a raw client: it stops reading when told
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((address.hostname, address.port))
        slow.sendall(upgrade_request(str(address.hostname), int(address.port or 0), "/"))
        slow.settimeout(30)
        slow_frames = SlowFrames(slow)
        slow_frames.next()  # the complete tree; then it reads nothing until the posts are done
        # more readers than the runs between two hand-overs to the send thread
        readers = [stack.enter_context(connect(url)) for _ in seen]
        for ws in readers:
            shown(ws.recv(timeout=10))
        threads = [threading.Thread(target=read, args=pair) for pair in zip(readers, seen, strict=True)]
        for thread in threads:
            thread.start()
        for seq in range(1, posts + 1):
            readers[0].send(json.dumps({"action": "post", "data": {"seq": seq, "pad": f"{seq}{pad}"}}))
        for thread in threads:
            thread.join(timeout=60)
        time.sleep(0.5)  # the slow client's socket is full, its updates coalesce
        slow_seen: list[int] = []
        while not slow_seen or slow_seen[-1] < posts:  # reading again: what was written, then the rest at once
            value = shown(slow_frames.next())
            if value is not None:
                slow_seen.append(value)
    for values in [*seen, slow_seen]:
        assert values[-1] == posts
        assert all(a < b for a, b in itertools.pairwise(values)), values  # in order, none twice
    assert len(slow_seen) < posts  # it fell behind and was caught up
