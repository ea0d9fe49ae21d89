"""What the cross-instance broadcast benchmark runs in other processes.

* :func:`create_app`: the app each instance serves: a tab opened with ``?listen=1`` subscribes
  to the topic ``bench``; the action ``tick`` publishes ``show`` with the sender's clock
  (``time.monotonic_ns()``, shared by every process of the machine), and ``show`` renders it.
* ``python -m benchmarks.broadcast <port> <connections> [<redis port>]``: a reader process that
  opens that many listening WebSockets to one instance and, for each stamp, records when each
  socket's bytes arrived (taken as the bytes come in, before any parsing, so that the reader's
  own work does not add to the sockets read after it), on uvloop when it is installed and with
  the load harness's frame parser, so that it takes little of the cores the instances share
  with it; it prints ``ready``, then
  ``done <stamp>`` once every socket got a stamp, and, given a Redis port, ``raw <stamp>`` for
  each message on the raw channel ``bench:raw``, received with a plain redis-py PubSub. On
  ``stop`` (stdin) it prints the latencies in microseconds as JSON and exits.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

import livetemplate
from benchmarks.load.client import loop_factory
from benchmarks.load.frames import PING, PONG, TEXT, FrameParser, client_frame, upgrade_request
from livetemplate import Context

TEMPLATE = "<p>{{ stamp }}</p>"
TOPIC = "bench"
RAW_CHANNEL = "bench:raw"
_STAMP = re.compile(rb'"0":"(\d+)"')


class Tick(msgspec.Struct):
    stamp: int = 0


class Ticker:
    async def mount(self, state: Tick, ctx: Context) -> None:
        if ctx.get_str("listen"):
            ctx.subscribe(TOPIC)

    async def tick(self, state: Tick, ctx: Context) -> None:
        ctx.publish(TOPIC, "show", {"stamp": ctx.get_int("stamp")})

    async def show(self, state: Tick, ctx: Context) -> None:
        state.stamp = ctx.get_int("stamp")


def create_app(**options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(Ticker(), Tick(), template=TEMPLATE, name="bench", open_topics=True, **options)


# -- the reader process ------------------------------------------------------------------------


class Listener(asyncio.Protocol):
    """One WebSocket, read with the load harness's frame parser (websockets' sans-I/O client
    took some 13 µs of the reader's CPU a message, which the instances' fan-outs then lacked
    on the shared cores): bytes are stamped with their arrival time as they come in and
    parsed a moment later."""

    def __init__(self, request: bytes, received: Callable[[int, int], None]) -> None:
        self.request = request
        self.received = received
        self.transport: asyncio.Transport | None = None
        self.head = b""  # the handshake's response, until it is complete
        self.parser: FrameParser | None = None
        self.chunks: list[tuple[int, bytes]] = []
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.monotonic_ns(), data))
        if len(self.chunks) == 1:
            asyncio.get_running_loop().call_soon(self._parse)

    def connection_lost(self, exc: Exception | None) -> None:
        self._failed(f"closed: {exc!r}")

    def _failed(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"{why}, before the first tree"))

    def _parse(self) -> None:
        chunks, self.chunks = self.chunks, []
        for arrived, data in chunks:
            if self.parser is None:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    continue
                if not self.head.startswith(b"HTTP/1.1 101"):
                    self._failed(f"refused: {self.head[:end].splitlines()[0]!r}")
                    return
                self.parser, data = FrameParser(), self.head[end + 4 :]
            for opcode, payload in self.parser.feed(data):
                if opcode == PING:
                    cast(asyncio.Transport, self.transport).write(client_frame(payload, PONG))
                elif opcode == TEXT:
                    match = _STAMP.search(payload)
                    stamp = int(match.group(1)) if match else 0
                    if stamp == 0:  # the first tree
                        if not self.opened.done():
                            self.opened.set_result(None)
                    else:
                        self.received(stamp, arrived)


async def read(port: int, connections: int, redis_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    latencies: dict[str, list[int]] = {"broadcast": [], "raw": []}
    arrivals: defaultdict[int, int] = defaultdict(int)

    def received(stamp: int, arrived: int) -> None:
        latencies["broadcast"].append((arrived - stamp) // 1000)
        arrivals[stamp] += 1
        if arrivals[stamp] == connections:
            print(f"done {stamp}", flush=True)
            del arrivals[stamp]

    request = upgrade_request("127.0.0.1", port, "/?listen=1")
    listeners: list[Listener] = []
    for start in range(0, connections, 50):  # connect in batches: the server's backlog is finite
        batch = [Listener(request, received) for _ in range(start, min(start + 50, connections))]
        for listener in batch:
            await loop.create_connection(lambda listener=listener: listener, "127.0.0.1", port)
        await asyncio.gather(*(listener.opened for listener in batch))
        listeners += batch

    raw: Redis | None = None
    reader: asyncio.Task[None] | None = None
    if redis_port is not None:
        raw = Redis(port=redis_port)
        pubsub = raw.pubsub()
        await pubsub.subscribe(RAW_CHANNEL)

        async def read_raw() -> None:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None:
                    arrived = time.monotonic_ns()
                    latencies["raw"].append((arrived - int(message["data"])) // 1000)
                    print(f"raw {int(message['data'])}", flush=True)

        reader = loop.create_task(read_raw())
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    print(json.dumps(latencies), flush=True)
    if reader is not None and raw is not None:
        reader.cancel()
        await raw.aclose()
    for listener in listeners:
        if listener.transport is not None:
            listener.transport.close()


if __name__ == "__main__":
    arguments = [int(argument) for argument in sys.argv[1:]]
    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop, as the instances' uvicorn
        runner.run(read(arguments[0], arguments[1], arguments[2] if len(arguments) > 2 else None))
