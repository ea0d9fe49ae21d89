"""A client process: opens WebSocket connections the way a browser with the official client
does and acts on them as the orchestrator asks (JSON lines on stdin, answers on stdout).

``lt`` and ``floor``: ``GET /`` (the session cookie is kept), ``HEAD /`` (the client's probe),
then the WebSocket upgrade with the cookie; the first frame is the complete tree. ``pyview``:
``GET /`` (session and CSRF token read from the page), then the upgrade and ``phx_join``, as
Phoenix's client does. Each socket binds its own source address (127.0.0.x) so that one
loopback port range is not exhausted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from .frames import CLOSE, PING, PONG, FrameParser, client_frame, upgrade_request

IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the port at connect(), per 4-tuple
ACTION_LT = b'{"action":"increment","data":{}}'
REPLY_LT = b'"action":"increment"'
now = time.monotonic


class Connection(asyncio.Protocol):
    """One WebSocket; counts replies (own actions) and pushes (broadcasts)."""

    __slots__ = (
        "_handshake",
        "_parser",
        "client",
        "join",
        "mounted",
        "pending",
        "ref",
        "topic",
        "transport",
    )

    def __init__(self, client: Client, request: bytes, topic: str = "") -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self._handshake: bytes | None = request
        self._parser: FrameParser | None = None
        self.mounted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: deque[float] = deque()
        self.topic = topic
        self.ref = 4
        self.join = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        assert self._handshake is not None
        self.transport.write(self._handshake)
        self._handshake = b""

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            assert self._handshake is not None
            self._handshake += data
            end = self._handshake.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = self._handshake[:end].decode("latin-1"), self._handshake[end + 4 :]
            self._handshake = None
            if not head.startswith("HTTP/1.1 101"):
                self._fail(head.split("\r\n", 1)[0])
                return
            self._parser = FrameParser(inflate="permessage-deflate" in head.lower())
            if self.join:
                self.send(self.join)
            if not rest:
                return
            data = rest
        for opcode, payload in self._parser.feed(data):
            if opcode == PING:
                self.transport.write(client_frame(payload, PONG))  # type: ignore[union-attr]
            elif opcode == CLOSE:
                self.transport.close()  # type: ignore[union-attr]
            else:
                self.client.on_message(self, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost += 1
        self._fail("connection lost")

    def _fail(self, why: str) -> None:
        if not self.mounted.done():
            self.mounted.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def send(self, payload: bytes) -> None:
        self.transport.write(client_frame(payload))  # type: ignore[union-attr]

    def act(self) -> None:
        """Send one increment action; its round trip ends with its reply."""
        self.pending.append(now())
        if self.topic:
            self.ref += 1
            self.send(
                b'["4","%d","%s","event",{"type":"click","event":"increment","value":{}}]'
                % (self.ref, self.topic.encode())
            )
        else:
            self.send(ACTION_LT)


class Client:
    """The connections of this process and what they measured."""

    def __init__(self, kind: str, host: str, port: int, sources: list[str], deflate: bool) -> None:
        self.kind = kind
        self.host, self.port = host, port
        self.sources = sources
        self.deflate = deflate
        self.connections: list[Connection] = []
        self.latencies: list[float] = []
        self.record = False
        self.pushes = 0
        self.first_push = 0.0
        self.last_push = 0.0
        self.lost = 0
        self._next_source = 0
        self._on_reply: Callable[[], None] | None = None

    # -- messages ---------------------------------------------------------------------------

    def on_message(self, conn: Connection, payload: bytes) -> None:
        at = now()
        if not conn.mounted.done():
            conn.mounted.set_result(None)
            return
        reply = b'"phx_reply"' in payload[:80] if self.kind == "pyview" else REPLY_LT in payload
        if reply and conn.pending:
            sent = conn.pending.popleft()
            if self.record:
                self.latencies.append(at - sent)
            if self._on_reply is not None:
                self._on_reply()
        elif not reply and payload != b'{"pong":true}':
            if not self.pushes:
                self.first_push = at
            self.pushes += 1
            self.last_push = at

    # -- opening ----------------------------------------------------------------------------

    async def _socket(self) -> socket.socket:
        source = self.sources[self._next_source % len(self.sources)]
        self._next_source += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def _http(self, requests: list[Callable[[dict[str, str]], bytes]]) -> list[tuple[str, dict[str, str], bytes]]:
        """Requests on one keep-alive connection, each built from the cookies so far."""
        reader, writer = await asyncio.open_connection(sock=await self._socket())
        cookies: dict[str, str] = {}
        answers = []
        try:
            for build in requests:
                request = build(cookies)
                writer.write(request)
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                headers: dict[str, str] = {}
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    name, value = name.strip().lower(), value.strip()
                    if name == "set-cookie":
                        key, _, rest = value.partition("=")
                        cookies[key] = rest.split(";", 1)[0]
                    elif name:
                        headers[name] = value
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length and not request.startswith(b"HEAD") else b""
                answers.append((head.split("\r\n", 1)[0], headers, body))
            answers.append(("", cookies, b""))
        finally:
            writer.close()
        return answers

    def _upgrade(self, path: str, cookie: str) -> bytes:
        return upgrade_request(self.host, self.port, path, cookie=cookie, deflate=self.deflate)

    def _get(self, method: str) -> Callable[[dict[str, str]], bytes]:
        def build(cookies: dict[str, str]) -> bytes:
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            extra = f"Cookie: {cookie}\r\n" if cookie else ""
            return f"{method} / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: text/html\r\n{extra}\r\n".encode()

        return build

    async def open_one(self) -> Connection:
        loop = asyncio.get_running_loop()
        if self.kind == "pyview":
            (status, _, body), (_, cookies, _) = await self._http([self._get("GET")])
            page = body.decode()
            view = re.search(r'id="(phx-[^"]+)"', page)
            session = re.search(r'data-phx-session="([^"]*)"', page)
            token = re.search(r'name="csrf-token" content="([^"]+)"', page)
            if not (view and session and token):
                raise ConnectionError(f"unexpected page: {status}")
            topic = "lv:" + view.group(1)
            join = {
                "url": f"http://{self.host}:{self.port}/",
                "params": {"_csrf_token": token.group(1), "_mounts": 0},
                "session": session.group(1),
                "static": "",
            }
            request = self._upgrade(f"/live/websocket?_csrf_token={token.group(1)}&vsn=2.0.0", "")
            conn = Connection(self, request, topic)
            conn.join = json.dumps(["4", "4", topic, "phx_join", join], separators=(",", ":")).encode()
        else:
            *_, (_, cookies, _) = await self._http([self._get("GET"), self._get("HEAD")])
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            conn = Connection(self, self._upgrade("/", cookie))
        sock = await self._socket()
        await loop.create_connection(lambda: conn, sock=sock)
        await asyncio.wait_for(conn.mounted, 60)
        return conn

    async def open(self, count: int, concurrency: int) -> dict[str, Any]:
        started = now()
        gate = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}

        async def one() -> None:
            async with gate:
                try:
                    self.connections.append(await self.open_one())
                except Exception as exc:  # counted and reported, never fatal for the run
                    name = f"{type(exc).__name__}: {exc}"[:120]
                    errors[name] = errors.get(name, 0) + 1

        await asyncio.gather(*(one() for _ in range(count)))
        return {"opened": len(self.connections), "errors": errors, "seconds": now() - started}

    # -- acting -----------------------------------------------------------------------------

    async def _replies(self, count: int, timeout: float) -> int:
        """Wait until ``count`` replies have arrived (or ``timeout``); how many did."""
        done = asyncio.get_running_loop().create_future()
        seen = 0

        def on_reply() -> None:
            nonlocal seen
            seen += 1
            if seen >= count and not done.done():
                done.set_result(None)

        self._on_reply = on_reply
        try:
            if count:
                await asyncio.wait_for(done, timeout)
        except TimeoutError:
            pass
        finally:
            self._on_reply = None
        return seen

    async def sequential(self, count: int) -> dict[str, Any]:
        conn = self.connections[0]
        self.latencies, self.record = [], True
        for _ in range(count):
            conn.act()
            await self._replies(1, 10)
        self.record = False
        return {"latencies": self.latencies}

    async def burst(self, count: int, at: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, at - now()))
        self.latencies, self.record = [], True
        targets = self.connections[:count]
        for conn in targets:
            conn.act()
        replied = await self._replies(len(targets), 30)
        self.record = False
        return {"latencies": self.latencies, "missing": len(targets) - replied}

    async def rate(self, count: int, per_second: float, seconds: float, at: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, at - now()))
        self.latencies, self.record = [], True
        end = at + seconds
        period = 1.0 / per_second
        sent = 0

        async def drive(conn: Connection) -> None:
            nonlocal sent
            tick = now() + random.random() * period
            while tick < end:
                await asyncio.sleep(max(0.0, tick - now()))
                conn.act()
                sent += 1
                tick += period

        await asyncio.gather(*(drive(c) for c in self.connections[:count]))
        await asyncio.sleep(0.5)
        waited = now() + 10
        while len(self.latencies) < sent and now() < waited:
            await asyncio.sleep(0.05)
        self.record = False
        return {"latencies": self.latencies, "sent": sent}

    def arm(self) -> dict[str, Any]:
        self.pushes, self.first_push, self.last_push = 0, 0.0, 0.0
        return {"armed": len(self.connections)}

    async def pushed(self, timeout: float) -> dict[str, Any]:
        deadline = now() + timeout
        while self.pushes < len(self.connections) and now() < deadline:
            await asyncio.sleep(0.005)
        return {"received": self.pushes, "first": self.first_push, "last": self.last_push}

    def close(self) -> dict[str, Any]:
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()
        closed, self.connections = len(self.connections), []
        return {"closed": closed}


async def serve(client: Client) -> None:
    """Answer the orchestrator's commands until ``exit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    commands: dict[str, Callable[..., Any]] = {
        "open": client.open,
        "sequential": client.sequential,
        "burst": client.burst,
        "rate": client.rate,
        "arm": client.arm,
        "pushed": client.pushed,
        "close": client.close,
    }
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        result = commands[name](**command)
        if asyncio.iscoroutine(result):
            result = await result
        result["lost"] = client.lost
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description="load harness client process")
    parser.add_argument("--kind", choices=("lt", "floor", "pyview"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sources", default="127.0.0.2")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate, as browsers do")
    parser.add_argument("--max-seconds", type=float, default=3600, help="exit after this long in any case")
    args = parser.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    client = Client(args.kind, args.host, args.port, args.sources.split(","), args.deflate)
    watch_parent(args.max_seconds)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(client))


def watch_parent(limit: float) -> None:
    """Exit when the orchestrator is gone, or after ``limit`` seconds in any case."""
    parent, deadline = os.getppid(), now() + limit

    def watch() -> None:
        while os.getppid() == parent and now() < deadline:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (as uvicorn picks it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
