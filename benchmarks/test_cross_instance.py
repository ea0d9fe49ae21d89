"""Cross-instance broadcast latency: two app instances (uvicorn processes) over one Redis
server on loopback, each with 1,000 subscribed WebSocket connections, beside the raw Redis
PUBLISH -> receive latency measured in the same run.

Each round, a tab on instance A runs ``tick``, which publishes to the topic every listening
connection subscribed; the latency of a connection is from the moment the tick was sent
(its stamp, the machine's monotonic clock) to the moment the update's bytes reached that
connection's socket in a reader process (benchmarks/broadcast.py; one per instance). The
connections of B measure the cross-instance path (A -> Redis -> B -> its 1,000 sockets); those
of A the local fan-out of the same publish. Between rounds, a plain PUBLISH on a raw channel
to a plain redis-py PubSub in B's reader process gives the floor: Redis and one Python
receiver, nothing of the app. Rounds run one after the other (the next starts once every
connection got the last); the first ones warm up and are left out.

The first connection of a round shows the hop from instance to instance; the spread up to the
last one is the receiving instance's fan-out to its 1,000 connections. Everything shares the
machine's cores (two instances, two readers, Redis, this process): figures are this
machine's, and the load average is reported with them; the ratio to the raw latency travels
better.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from benchmarks.broadcast import RAW_CHANNEL
from tests.integration.instances import Instances
from tests.integration.redis_servers import Standalone, running
from tests.support.engine_independent import engine  # noqa: F401  (the app runs in subprocesses)

CONNECTIONS = 1000  # per instance
ROUNDS = 30
WARMUP = 3
PAUSE = 0.05  # seconds between rounds
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Standalone]:
    with running(Standalone()) as topology:
        yield topology


class Reader:
    """A reader process (``python -m benchmarks.broadcast``) and the lines it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.pump = asyncio.get_running_loop().create_task(self._pump())

    @classmethod
    async def start(cls, *arguments: int) -> Reader:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.broadcast",
            *map(str, arguments),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,  # the results come as one line of JSON
        )
        return cls(process)

    async def _pump(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            await self.lines.put(line.decode().strip())

    async def expect(self, line: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            got = await self.lines.get()
        assert got == line, f"expected {line!r}, the reader said {got!r}"

    async def results(self) -> dict[str, list[int]]:
        assert self.process.stdin is not None
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(TIMEOUT):
            latencies: dict[str, list[int]] = json.loads(await self.lines.get())
            await self.process.wait()
        return latencies

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self.pump.cancel()


def summary(microseconds: list[int]) -> dict[str, float]:
    ordered = sorted(microseconds)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1000, 3)

    return {
        "p50_ms": round(statistics.median(ordered) / 1000, 3),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] / 1000, 3),
        "samples": len(ordered),
    }


def per_round(microseconds: list[int]) -> list[list[int]]:
    """The deliveries of each round (rounds do not overlap: they come in order)."""
    return [microseconds[i : i + CONNECTIONS] for i in range(0, len(microseconds), CONNECTIONS)]


async def measure(redis_port: int, log_dir: Path) -> dict[str, Any]:
    site = Instances("benchmarks.broadcast:create_app", {"backend": f"redis://127.0.0.1:{redis_port}"}, log_dir)
    readers: list[Reader] = []
    raw = Redis(port=redis_port)
    try:
        a, b = await site.start(message_rate_limit=None), await site.start(message_rate_limit=None)
        local, remote = await Reader.start(a.port, CONNECTIONS), await Reader.start(b.port, CONNECTIONS, redis_port)
        readers += [local, remote]
        started = time.monotonic()
        await asyncio.gather(local.expect("ready"), remote.expect("ready"))
        print(f"connected {2 * CONNECTIONS} in {time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        async with connect(f"ws://127.0.0.1:{a.port}/", open_timeout=TIMEOUT) as publisher:
            await publisher.recv()  # the first tree
            drain = asyncio.get_running_loop().create_task(_discard(publisher))
            for _ in range(WARMUP + ROUNDS):
                stamp = time.monotonic_ns()
                await raw.publish(RAW_CHANNEL, str(stamp))
                await remote.expect(f"raw {stamp}")
                stamp = time.monotonic_ns()
                await publisher.send(json.dumps({"action": "tick", "data": {"stamp": stamp}}))
                await asyncio.gather(local.expect(f"done {stamp}"), remote.expect(f"done {stamp}"))
                await asyncio.sleep(PAUSE)
            drain.cancel()
        print(f"{WARMUP + ROUNDS} rounds in {time.monotonic() - started:.1f} s", flush=True)
        local_latencies, remote_latencies = await local.results(), await remote.results()
    finally:
        for reader in readers:
            await reader.kill()
        await raw.aclose()
        site.stop()
    skip = WARMUP * CONNECTIONS
    cross = remote_latencies["broadcast"][skip:]
    same = local_latencies["broadcast"][skip:]
    floor = remote_latencies["raw"][WARMUP:]
    result: dict[str, Any] = {
        "load average (1 min) after the run": round(os.getloadavg()[0], 2),
        "connections per instance": CONNECTIONS,
        "rounds": ROUNDS,
        "cross-instance (B's connections)": summary(cross),
        "cross-instance, first connection of each round": summary([min(r) for r in per_round(cross)]),
        "cross-instance, last connection of each round": summary([max(r) for r in per_round(cross)]),
        "same instance (A's connections)": summary(same),
        "same instance, first connection of each round": summary([min(r) for r in per_round(same)]),
        "raw Redis PUBLISH -> redis-py receive": summary(floor),
    }
    for stat in ("p50_ms", "p95_ms"):
        ratio = result["cross-instance (B's connections)"][stat] / result["raw Redis PUBLISH -> redis-py receive"][stat]
        result[f"cross-instance / raw {stat[:3]}"] = round(ratio, 1)
    return result


async def _discard(publisher: Any) -> None:
    async for _ in publisher:  # the replies to the ticks
        pass


def test_cross_instance_broadcast_latency(benchmark: Any, redis_server: Standalone, tmp_path: Path) -> None:
    result = benchmark.pedantic(
        lambda: asyncio.run(measure(redis_server.server.port, tmp_path)), rounds=1, iterations=1
    )
    benchmark.extra_info.update(result)
    print(json.dumps(result, indent=1))
