"""Redis backends on loopback, each beside raw redis-py doing the same in the same run:

* session get/save p50/p99 (RedisSessionStore: GETEX, and the compare-and-set script) against
  raw GET/SET of the same value;
* cross-process publish -> receive latency through a RedisBroadcaster in another process,
  against a raw redis-py PubSub reader in another process;
* a topic message that changes persisted fields, to 1,000 sessions of one instance, on Redis
  against the memory store (each session's run claims the message, compares-and-sets its
  snapshot and publishes its commit's envelope);
* a resynchronisation of those 1,000 sessions' groups (after a reconnection of the
  subscriber), reading ``RESYNC_BATCH`` groups at once against one at a time;
* a storm of reconnections: those 1,000 sessions' tabs opened at once on a new instance (each
  reads its group, subscribes its group's channel, reads the group again and mounts), on
  Redis against the memory store.

Latencies are measured per operation inside one event loop (sequential awaits) and stored in
``extra_info`` (microseconds); pytest-benchmark's own time is the whole batch.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

import livetemplate.hub
from benchmarks.load.apps import TOPIC, create_app
from livetemplate.backends.redis import RedisSessionStore
from livetemplate.ops.heap import heap
from tests.integration.redis_servers import Standalone, running
from tests.support.engine_independent import engine  # noqa: F401  (nothing engine-specific)

from .tabs import broadcast, open_tab, open_tabs

OPERATIONS = 5000
WARMUP = 500
SESSION = bytes(range(256)) * 2 + b"x" * 52  # ~564 B, the size of a small msgpack state
MESSAGES = 2000
SESSIONS = 1000
BROADCASTS = 5


@pytest.fixture(scope="module")
def server() -> Iterator[Standalone]:
    with running(Standalone()) as topology:
        yield topology


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) / 1000, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] / 1000, 1),
    }


async def timed(operation: Callable[[], Awaitable[Any]], count: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        await operation()
        samples.append(clock() - start)
    return samples


async def measure_store(port: int) -> dict[str, Any]:
    raw = Redis(port=port)
    store = RedisSessionStore(Redis(port=port), key_prefix="bench:", close_client=True)
    version = await store.save("s", SESSION, version=0)
    await raw.set("bench:raw", SESSION)
    state = {"version": version}

    async def store_save() -> None:
        state["version"] = await store.save("s", SESSION, version=state["version"])

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw GET": lambda: raw.get("bench:raw"),
        "store get": lambda: store.get("s"),
        "raw SET": lambda: raw.set("bench:raw", SESSION),
        "store save": store_save,
    }
    samples: dict[str, list[int]] = {name: [] for name in cases}
    for operation in cases.values():
        await timed(operation, WARMUP)
    for _ in range(OPERATIONS // 500):  # interleaved blocks: the cases share the noise
        for name, operation in cases.items():
            samples[name] += await timed(operation, 500)
    await store.close()
    await raw.aclose()
    result: dict[str, Any] = {name: percentiles(values) for name, values in samples.items()}
    for kind, raw_name in (("get", "raw GET"), ("save", "raw SET")):
        for stat in ("p50_us", "p99_us"):
            result[f"store {kind} / {raw_name} {stat[:3]}"] = round(
                result[f"store {kind}"][stat] / result[raw_name][stat], 2
            )
    return result


def test_session_store_latency(benchmark: Any, server: Standalone) -> None:
    result = benchmark.pedantic(lambda: asyncio.run(measure_store(server.server.port)), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(json.dumps(result, indent=1))


SUBSCRIBER = """
import asyncio, json, sys, time
from redis.asyncio import Redis
from livetemplate.backends.redis import RedisBroadcaster

async def main(port, mode, count):
    latencies = []
    done = asyncio.Event()

    async def handle(message):
        latencies.append(time.monotonic_ns() - int(message))
        if len(latencies) == count:
            done.set()

    client = Redis(port=port)
    if mode == "broadcaster":
        broadcaster = RedisBroadcaster(client, channel_prefix="bench:")
        await broadcaster.subscribe("latency", handle)
    else:
        pubsub = client.pubsub()
        await pubsub.subscribe("bench:latency")

        async def read():
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None:
                    await handle(message["data"])

        reader = asyncio.create_task(read())
    print("ready", flush=True)
    await done.wait()
    print(json.dumps(latencies), flush=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


async def publish_to(port: int, mode: str) -> list[int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUBSCRIBER, str(port), mode, str(MESSAGES), stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert (await process.stdout.readline()).strip() == b"ready"
    publisher = Redis(port=port)
    try:
        for _ in range(MESSAGES):
            await publisher.publish("bench:latency", str(time.monotonic_ns()))
            await asyncio.sleep(0.001)
        latencies: list[int] = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    finally:
        await publisher.aclose()
        if process.returncode is None:
            process.kill()
        await process.wait()
    return latencies[MESSAGES // 10 :]  # without the warm-up


def test_cross_process_publish_to_receive(benchmark: Any, server: Standalone) -> None:
    async def measure() -> dict[str, Any]:
        result: dict[str, list[int]] = {"raw": [], "broadcaster": []}
        for _ in range(2):  # interleaved: both share the noise
            for mode, latencies in result.items():
                latencies.extend(await publish_to(server.server.port, mode))
        summary: dict[str, Any] = {f"{mode} receive": percentiles(values) for mode, values in result.items()}
        for stat in ("p50_us", "p99_us"):
            ratio = summary["broadcaster receive"][stat] / summary["raw receive"][stat]
            summary[f"broadcaster / raw {stat[:3]}"] = round(ratio, 2)
        return summary

    result = benchmark.pedantic(lambda: asyncio.run(measure()), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(json.dumps(result, indent=1))


def redis_against_memory(
    server: Standalone, measure: Callable[[str | None], Coroutine[Any, Any, list[float]]], what: str
) -> dict[str, Any]:
    """``measure`` (its times in ms) on Redis, under a prefix of its own, then on the memory
    store (``None``): best and median of each, and their ratio."""
    prefix = f"bench-{time.time_ns()}:"
    redis = asyncio.run(measure(f"{server.url}?key_prefix={prefix}&channel_prefix={prefix}"))
    memory = asyncio.run(measure(None))
    result: dict[str, Any] = {
        f"{name}: {what}, best / median (ms)": [round(min(times), 1), round(statistics.median(times), 1)]
        for name, times in (("redis", redis), ("memory", memory))
    }
    result["redis / memory (best)"] = round(min(redis) / min(memory), 1)
    return result


def test_a_broadcast_that_commits_for_every_session(benchmark: Any, server: Standalone) -> None:
    async def measure(backend: str | None) -> list[float]:
        app = create_app(**({"backend": backend} if backend else {}))
        await open_tabs(app, SESSIONS)
        times = []
        for _ in range(BROADCASTS):
            start = time.perf_counter()
            await broadcast(app, TOPIC, "increment", {})
            times.append((time.perf_counter() - start) * 1000)
        counts = sorted({view.state.count for view in app.hub.views})
        await app.shutdown()
        assert counts == [BROADCASTS], "a session missed a broadcast"  # none refused
        return times

    def run() -> dict[str, Any]:
        result = redis_against_memory(server, measure, "broadcast")
        best = result["redis: broadcast, best / median (ms)"][0]
        result["redis µs a session (best)"] = round(best * 1000 / SESSIONS, 1)
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(json.dumps(result, indent=1))


def test_a_resynchronisation_of_every_group(
    benchmark: Any, server: Standalone, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def measure() -> dict[str, list[float]]:
        prefix = f"bench-{time.time_ns()}:"
        app = create_app(backend=f"{server.url}?key_prefix={prefix}&channel_prefix={prefix}")
        await open_tabs(app, SESSIONS)
        await broadcast(app, TOPIC, "increment", {})  # every group has a snapshot in Redis
        times: dict[str, list[float]] = {"batched": [], "one at a time": []}
        for _ in range(BROADCASTS):  # interleaved: both share the noise
            for name, batch in (("batched", livetemplate.hub.RESYNC_BATCH), ("one at a time", 1)):
                with monkeypatch.context() as patch:
                    patch.setattr(livetemplate.hub, "RESYNC_BATCH", batch)
                    start = time.perf_counter()
                    await app.hub.resync()
                    while app.hub._tasks:  # the tabs' refreshes it started
                        await asyncio.wait(list(app.hub._tasks))
                    times[name].append((time.perf_counter() - start) * 1000)
        await app.shutdown()
        return times

    def run() -> dict[str, Any]:
        times = asyncio.run(measure())
        result: dict[str, Any] = {
            f"resync of {SESSIONS} groups {name}, best / median (ms)": [
                round(min(values), 1),
                round(statistics.median(values), 1),
            ]
            for name, values in times.items()
        }
        result["one at a time / batched (best)"] = round(min(times["one at a time"]) / min(times["batched"]), 1)
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(json.dumps(result, indent=1))


def test_a_storm_of_tabs_opening_at_once(benchmark: Any, server: Standalone) -> None:
    async def measure(backend: str | None) -> list[float]:
        options = {"backend": backend} if backend else {}
        first = create_app(**options)
        await open_tabs(first, SESSIONS)
        await broadcast(first, TOPIC, "increment", {})  # every session has a snapshot (on Redis)
        await first.shutdown()
        times = []
        for _ in range(BROADCASTS):
            app = create_app(**options)  # an instance the sessions come to, as after a restart
            await open_tab(app, SESSIONS)  # its connections and scripts are ready
            heap.started()  # as a served app's start does: no full collection walks the program
            start = time.perf_counter()
            await open_tabs(app, SESSIONS, at_once=True)
            times.append((time.perf_counter() - start) * 1000)
            gc.unfreeze()
            counts = {view.state.count for view in app.hub.views if view.group.id != f"tab-{SESSIONS:05d}"}
            await app.shutdown()
            assert counts == ({1} if backend else {0}), "a tab missed its session's state"
        return times

    def run() -> dict[str, Any]:
        return redis_against_memory(server, measure, f"{SESSIONS} tabs at once")

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(json.dumps(result, indent=1))
