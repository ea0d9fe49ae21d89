"""The embedded backends: the memory session store (versions, compare-and-set, expiry, sweeps),
the in-process broadcaster, and backends by URL."""

from __future__ import annotations

import asyncio

import pytest

from livetemplate import InProcessBroadcaster, MemorySessionStore, SessionStore, Snapshot, StaleVersion
from livetemplate.backends import from_url
from livetemplate.broadcast import Broadcaster

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store_versions_and_compare_and_set() -> None:
    store = MemorySessionStore()
    assert isinstance(store, SessionStore)
    assert await store.get("a") is None
    assert await store.save("a", bytearray(b"one"), version=0) == 1
    assert await store.save("b", b"two", version=0) == 1
    got = await store.get("a")
    assert got == Snapshot(b"one", 1) and type(got.data) is bytes
    with pytest.raises(StaleVersion, match="'a' is no longer at version 0"):
        await store.save("a", b"lost", version=0)
    assert await store.save("a", b"uno", version=1) == 2
    with pytest.raises(StaleVersion):
        await store.save("a", b"lost", version=1)
    assert await store.get("a") == Snapshot(b"uno", 2)
    assert sorted(await store.list()) == ["a", "b"]
    assert len(store) == 2
    await store.delete("a")
    await store.delete("missing")
    assert await store.get("a") is None
    assert await store.save("a", b"again", version=0) == 1  # a deleted group starts over
    assert sorted(await store.list()) == ["a", "b"]
    assert await store.ping() is None
    await store.close()
    await store.close()


async def test_concurrent_writers_of_one_version_one_wins() -> None:
    store = MemorySessionStore()
    results = await asyncio.gather(
        *(store.save("g", f"w{i}".encode(), version=0) for i in range(5)), return_exceptions=True
    )
    assert results.count(1) == 1
    assert sum(isinstance(r, StaleVersion) for r in results) == 4
    await store.close()


async def test_memory_store_expiry() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl=10, clock=clock)
    await store.save("a", b"1", version=0)
    await store.save("b", b"2", version=0)
    clock.now += 6
    assert await store.get("a") == Snapshot(b"1", 1)  # reading refreshes
    clock.now += 6
    assert await store.get("a") == Snapshot(b"1", 1)
    assert await store.list() == ["a"]  # b expired
    assert await store.get("b") is None
    clock.now += 11
    assert await store.get("a") is None
    assert len(store) == 0
    assert await store.save("a", b"new", version=0) == 1  # an expired group starts over
    await store.close()


async def test_memory_store_sweep() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl=10, clock=clock)
    await store.save("old", b"1", version=0)
    clock.now += 8
    await store.save("new", b"2", version=0)
    clock.now += 5
    assert store.sweep() == 1
    assert len(store) == 1
    assert store.sweep() == 0
    await store.close()


async def test_memory_store_sweeps_in_the_background_until_closed() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl=10, sweep_interval=0.01, clock=clock)
    await store.save("a", b"1", version=0)
    clock.now += 11
    await asyncio.sleep(0.05)
    assert len(store) == 0
    await store.close()
    await store.save("b", b"2", version=0)  # using it again restarts the sweep
    clock.now += 11
    await asyncio.sleep(0.05)
    assert len(store) == 0
    await store.close()


async def test_a_claim_goes_to_its_first_taker_until_it_expires_and_is_swept() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    assert await store.claim("group:message-1", ttl=60)
    assert not await store.claim("group:message-1", ttl=60)  # taken
    assert await store.claim("group:message-2", ttl=60)  # another change
    clock.now += 61
    assert await store.claim("group:message-1", ttl=60)  # expired: free again
    clock.now += 61
    store.sweep()
    assert store._claims == {}
    assert await store.list() == []  # claims are not sessions
    for n in range(100):  # a claim a second: the expired ones go as new ones come
        assert await store.claim(f"group:m{n}", ttl=10)
        clock.now += 1
    assert len(store._claims) <= 11
    await store.close()


@pytest.mark.parametrize("options", [{"ttl": 0}, {"ttl": -1}, {"sweep_interval": 0}])
def test_memory_store_rejects_bad_settings(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemorySessionStore(**options)


async def test_in_process_broadcaster_delivers_to_every_handler_despite_failures() -> None:
    broadcaster = InProcessBroadcaster()
    assert isinstance(broadcaster, Broadcaster)
    got: list[tuple[str, bytes]] = []

    async def first(message: bytes) -> None:
        got.append(("first", message))

    async def failing(message: bytes) -> None:
        raise RuntimeError("handler bug")

    async def last(message: bytes) -> None:
        got.append(("last", message))

    for handler in (first, failing, last):
        await broadcaster.subscribe("c", handler)
    await broadcaster.publish("c", b"hello")
    await broadcaster.publish("other", b"nobody listens")
    assert got == [("first", b"hello"), ("last", b"hello")]
    await broadcaster.unsubscribe("c", first)
    await broadcaster.unsubscribe("c", first)  # twice: nothing happens
    await broadcaster.publish("c", b"again")
    assert got[-1] == ("last", b"again") and len(got) == 3
    assert broadcaster.channels() == ["c"]
    await broadcaster.unsubscribe("c", failing)
    await broadcaster.unsubscribe("c", last)
    assert broadcaster.channels() == []
    await broadcaster.close()


def test_memory_backend_by_url() -> None:
    backend = from_url("memory://")
    assert isinstance(backend.store, MemorySessionStore) and backend.store.ttl == 24 * 3600
    assert isinstance(backend.broadcaster, InProcessBroadcaster)
    assert from_url("MEMORY://?ttl=60").store.ttl == 60  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?ttl=60&size=3", "unknown option\\(s\\) in 'memory://\\?ttl=60&size=3': size"),
        ("postgres://localhost/db", "unknown backend URL 'postgres://localhost/db': the scheme must be one of"),
        ("localhost:6379", "unknown backend URL"),
    ],
)
def test_bad_backend_urls_fail_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_url(url)


async def test_in_process_broadcaster_tells_whether_another_handler_hears_a_channel() -> None:
    broadcaster = InProcessBroadcaster()

    async def ours(message: bytes) -> None: ...

    async def theirs(message: bytes) -> None: ...

    assert not broadcaster.heard_besides("c", ours)  # nobody subscribed
    assert broadcaster.alone(ours)
    await broadcaster.subscribe("c", ours)
    await broadcaster.subscribe("d", ours)
    assert not broadcaster.heard_besides("c", ours)  # only ours, anywhere
    assert broadcaster.alone(ours)
    assert broadcaster.heard_besides("c", theirs)
    assert not broadcaster.alone(theirs)
    await broadcaster.subscribe("d", theirs)  # another app in the process, on another channel
    assert not broadcaster.alone(ours)
    assert not broadcaster.heard_besides("c", ours)
    assert broadcaster.heard_besides("d", ours)
    await broadcaster.subscribe("c", theirs)
    assert broadcaster.heard_besides("c", ours)
    await broadcaster.unsubscribe("c", theirs)
    await broadcaster.unsubscribe("d", theirs)
    assert not broadcaster.heard_besides("d", ours)
    await broadcaster.unsubscribe("c", ours)
    await broadcaster.unsubscribe("d", ours)
    assert not broadcaster.heard_besides("c", theirs)  # nobody left
    await broadcaster.close()
