"""The floor: a bare asyncio server (on the event loop uvicorn would pick) that answers the
same HTTP requests and WebSocket upgrade as the app, then writes the app's own frames: the
complete tree once, a reply per action, and a pre-framed push to every socket on publish
(``transport.write`` of the same bytes, nothing else). Per connection it keeps one protocol
object and its transport: no task, no state."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, cast

from .client import loop_factory
from .frames import CLOSE, PING, PONG, TEXT, FrameParser, accept_key, server_frame
from .probe import PREFIX, Stats

# The counter app's frames, byte for byte (first render, reply to increment, push).
TREE = (
    b'{"tree":{"s":["\\n<main>\\n  <h1>Count: <output>","</output></h1>\\n  <button name=\\"decrement\\">-'
    b'</button>\\n  <button name=\\"increment\\">+</button>\\n</main>"],"0":"0"},'
    b'"meta":{"success":true,"errors":{}}}'
)
REPLY = b'{"tree":{"0":"1"},"meta":{"success":true,"errors":{},"action":"increment"}}'
PUSH = b'{"tree":{"0":"2"},"meta":{"success":true,"errors":{}}}'
REPLY_FRAME = server_frame(REPLY)
PAGE = b"<!doctype html><main><h1>Count: <output>0</output></h1></main>" + b" " * 200


class Floor:
    """The open WebSockets."""

    def __init__(self) -> None:
        self.sockets: set[FloorProtocol] = set()
        self.push = server_frame(PUSH)
        self.stats = Stats(lambda: len(self.sockets), self.publish)

    async def publish(self) -> None:
        frame = self.push
        for protocol in self.sockets:
            protocol.transport.write(frame)


class FloorProtocol(asyncio.Protocol):
    __slots__ = ("buffer", "floor", "parser", "transport")

    transport: asyncio.Transport

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.buffer = b""
        self.parser: FrameParser | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.floor.sockets.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.parser is not None:
            for opcode, payload in self.parser.feed(data):
                if opcode == TEXT:
                    self.transport.write(REPLY_FRAME)
                elif opcode == PING:
                    self.transport.write(server_frame(payload, PONG))
                elif opcode == CLOSE:
                    self.transport.close()
            return
        self.buffer += data
        while self.parser is None and b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self._request(head.decode("latin-1"))

    def _request(self, head: str) -> None:
        line, *rest = head.split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = {}
        for field in rest:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() == "websocket":
            key = headers["sec-websocket-key"].encode()
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n" + server_frame(TREE)
            )
            self.parser = FrameParser()
            self.buffer = b""
            self.floor.sockets.add(self)
        elif target.startswith(PREFIX):
            path, _, query = target.partition("?")
            asyncio.get_running_loop().create_task(self._bench(path, query))
        else:
            body = b"" if method == "HEAD" else PAGE
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: %d\r\n"
                b"x-livetemplate-websocket: enabled\r\nset-cookie: livetemplate-id=floor%d; Path=/\r\n\r\n%s"
                % (len(PAGE), id(self), body)
            )

    async def _bench(self, path: str, query: str) -> None:
        answer: dict[str, Any] = await self.floor.stats.answer(path, query)
        body = json.dumps(answer).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


def serve_floor(sock: socket.socket) -> None:
    async def main() -> None:
        floor = Floor()
        server = await asyncio.get_running_loop().create_server(lambda: FloorProtocol(floor), sock=sock)
        async with server:
            await server.serve_forever()

    factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
