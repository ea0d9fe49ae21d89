"""RedisSessionStore against real servers: standalone, a Sentinel-managed master, a Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from redis.asyncio import RedisCluster

from livetemplate import LiveApp
from livetemplate.backends.redis import CorruptSnapshot, RedisSessionStore
from livetemplate.backends.redis_clients import RedisClient
from livetemplate.backends.redis_commands import command_queue
from livetemplate.groups import Groups
from livetemplate.sessions import SessionStore, Snapshot, StaleVersion, StoreUnavailable
from livetemplate.testing import LiveClient, LiveSocket
from tests.integration.apps import board
from tests.integration.conftest import Proxy, eventually
from tests.integration.redis_servers import Cluster, Standalone, Topology

pytestmark = pytest.mark.anyio

Clients = Callable[[str], RedisClient]


@pytest.fixture
async def stores(clients: Clients, prefix: str) -> AsyncIterator[Callable[..., RedisSessionStore]]:
    """Make stores under the test's prefix (each with its own client); closed after the test."""
    made: list[RedisSessionStore] = []

    def make(url: str, **options: Any) -> RedisSessionStore:
        store = RedisSessionStore(clients(url), key_prefix=prefix, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_the_store_follows_the_protocol(topology: Topology, stores: Callable[..., RedisSessionStore]) -> None:
    store = stores(topology.url)
    assert isinstance(store, SessionStore)
    assert await store.get("g") is None
    assert await store.save("g", b"one", version=0) == 1
    assert await store.save("g", b"two", version=1) == 2
    assert await store.get("g") == Snapshot(b"two", 2)
    with pytest.raises(StaleVersion) as stale:
        await store.save("g", b"late", version=1)
    assert stale.value.key == "g" and stale.value.expected == 1
    with pytest.raises(StaleVersion):
        await store.save("g", b"new", version=0)
    assert await store.get("g") == Snapshot(b"two", 2)
    await store.delete("g")
    assert await store.get("g") is None
    assert await store.save("g", b"again", version=0) == 1
    await store.ping()


async def test_binary_data_survives(topology: Topology, stores: Callable[..., RedisSessionStore]) -> None:
    store = stores(topology.url)
    data = bytes(range(256)) * 40 + b"LT1:9:ab:"  # colons, NULs, a fake header inside
    await store.save("bin", data, version=0)
    assert await store.get("bin") == Snapshot(data, 1)


async def test_concurrent_writers_exactly_one_wins(
    topology: Topology, stores: Callable[..., RedisSessionStore]
) -> None:
    """Two instances (two clients) commit on the same version at once: one wins, the other
    sees StaleVersion, even when both write the same bytes."""
    first, second = stores(topology.url), stores(topology.url)
    await first.save("shared", b"0", version=0)
    for round_ in range(1, 21):
        results = await asyncio.gather(
            first.save("shared", b"same", version=round_),
            second.save("shared", b"same", version=round_),
            return_exceptions=True,
        )
        assert sorted(type(result).__name__ for result in results) == ["StaleVersion", "int"]
        assert [result for result in results if isinstance(result, int)] == [round_ + 1]
    assert (await second.get("shared")) == Snapshot(b"same", 21)


async def test_more_commands_at_once_than_the_pool_holds_wait_their_turn(
    topology: Topology, stores: Callable[..., RedisSessionStore]
) -> None:
    """A broadcast commits for every tab at once; redis-py's pools refuse a command past their
    size (100 connections) rather than wait for a connection. Every read, write and claim of
    the crowd succeeds, and a store with the memory fallback does not take it for an outage
    (ten times the pool: retries, 0.1 s apart, do not cure it)."""
    count = 1000
    for store in (stores(topology.url), stores(topology.url, fallback_to_memory=True)):
        keys = [f"crowd-{index}-{store.fallback_to_memory}" for index in range(count)]
        assert await asyncio.gather(*(store.save(key, b"x", version=0) for key in keys)) == [1] * count
        assert all(await asyncio.gather(*(store.claim(f"{key}:change", ttl=5) for key in keys)))
        assert await asyncio.gather(*(store.get(key) for key in keys)) == [Snapshot(b"x", 1)] * count
        assert not store.degraded


async def test_readiness_does_not_wait_behind_a_crowd_of_commands(
    standalone: Standalone, stores: Callable[..., RedisSessionStore]
) -> None:
    """The readiness ping answers while a crowd of commits still waits its turn: queued behind
    them, it would outlast readiness's timeout during a large broadcast while Redis answers."""
    store = stores(standalone.url)
    saved = 0

    async def save(index: int) -> None:
        nonlocal saved
        await store.save(f"busy-{index}", b"x", version=0)
        saved += 1

    crowd = [asyncio.ensure_future(save(index)) for index in range(3000)]
    await asyncio.sleep(0)  # the crowd takes the slots and queues
    await store.ping()
    assert saved < len(crowd)  # answered before the crowd was through
    await asyncio.gather(*crowd)
    assert saved == len(crowd)


async def test_a_claim_whose_reply_was_lost_is_still_this_claims(
    proxy: Proxy, stores: Callable[..., RedisSessionStore]
) -> None:
    """The claim reached Redis, its reply did not, and it is tried again: it is still this
    claim's. Read as another instance's, the change it claims would be committed by nobody."""
    store = stores(proxy.url, retry_delay=0)
    await store.ping()  # connected: the next reply is the claim's
    proxy.lose_next_reply()
    assert await store.claim("change-1", ttl=5)
    assert not await store.claim("change-1", ttl=5)  # another claim of it (another instance's)


async def test_get_refreshes_the_time_to_live(
    topology: Topology, stores: Callable[..., RedisSessionStore], clients: Clients, prefix: str
) -> None:
    store = stores(topology.url, ttl=timedelta(hours=1))
    raw = clients(topology.url)
    await store.save("ttl", b"x", version=0)
    assert 3_500_000 < await raw.pttl(prefix + "ttl") <= 3_600_000
    await raw.pexpire(prefix + "ttl", 10_000)
    assert await store.get("ttl") == Snapshot(b"x", 1)
    assert await raw.pttl(prefix + "ttl") > 3_500_000


async def test_list_scans_the_prefix_on_every_master(
    topology: Topology, stores: Callable[..., RedisSessionStore], clients: Clients, prefix: str
) -> None:
    store = stores(topology.url)
    other = RedisSessionStore(clients(topology.url), key_prefix=prefix.rstrip(":") + "-other:")
    keys = [f"group-{index}" for index in range(60)]
    for key in keys:
        await store.save(key, b"x", version=0)
    await other.save("elsewhere", b"x", version=0)
    assert await store.list() == sorted(keys)
    assert await other.list() == ["elsewhere"]
    if isinstance(topology, Cluster):  # the keys really are spread over the masters
        raw = clients(topology.url)
        assert isinstance(raw, RedisCluster)
        await raw.initialize()
        owners = {raw.get_node_from_key(prefix + key).name for key in keys}  # type: ignore[union-attr]
        assert len(owners) == len(topology.nodes)


async def test_a_claim_goes_to_one_instance_expires_and_is_not_a_session(
    topology: Topology, stores: Callable[..., RedisSessionStore]
) -> None:
    one, two = stores(topology.url), stores(topology.url)  # two instances, two clients
    taken = await asyncio.gather(*(store.claim("group:message", ttl=0.5) for store in (one, two, one, two)))
    assert sorted(taken) == [False, False, False, True]
    assert await one.list() == []  # beside the sessions, not among them
    await eventually(lambda: two.claim("group:message", ttl=60), "the claim to expire")
    assert not await one.claim("group:message", ttl=60)


async def test_a_prefix_with_glob_characters_lists_only_its_keys(
    standalone: Standalone, stores: Callable[..., RedisSessionStore], clients: Clients, prefix: str
) -> None:
    star = RedisSessionStore(clients(standalone.url), key_prefix=prefix + "a*:")
    plain = RedisSessionStore(clients(standalone.url), key_prefix=prefix + "ab:")
    await star.save("one", b"x", version=0)
    await plain.save("two", b"x", version=0)
    assert await star.list() == ["one"]


async def test_a_value_not_in_the_store_format_is_a_clear_error(
    topology: Topology, stores: Callable[..., RedisSessionStore], clients: Clients, prefix: str
) -> None:
    store = stores(topology.url)
    raw = clients(topology.url)
    cases: dict[str, Any] = {
        "json": b'{"count": 1}',
        "header": b"LT1:x:zz:data",
        "empty": b"",
    }
    for key, value in cases.items():
        await raw.set(prefix + key, value)
        with pytest.raises(CorruptSnapshot, match=key):
            await store.get(key)
    await raw.hset(prefix + "hash", "field", "value")
    with pytest.raises(CorruptSnapshot, match="not a string"):
        await store.get("hash")
    # a fresh start replaces it (version 0); then the key is a snapshot again
    for key in [*cases, "hash"]:
        assert await store.save(key, b"fresh", version=0) == 1
        assert await store.get(key) == Snapshot(b"fresh", 1)


async def test_the_script_is_loaded_again_after_a_script_flush(
    topology: Topology, stores: Callable[..., RedisSessionStore], clients: Clients
) -> None:
    store = stores(topology.url)
    await store.save("s", b"1", version=0)
    raw = clients(topology.url)
    await raw.script_flush()  # on a cluster: every primary
    assert await store.save("s", b"2", version=1) == 2


# -- outages -----------------------------------------------------------------------------


async def test_an_outage_without_fallback_raises_store_unavailable(
    own_standalone: Standalone, stores: Callable[..., RedisSessionStore]
) -> None:
    store = stores(own_standalone.url, max_retries=2, retry_delay=0.01)
    await store.save("g", b"1", version=0)
    own_standalone.server.kill()
    operations = (
        store.get("g"),
        store.save("g", b"2", version=1),
        store.list(),
        store.delete("g"),
        store.claim("g:m", ttl=1),
        store.ping(),
    )
    for operation in operations:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await operation
    assert not store.degraded
    own_standalone.server.start()  # empty: nothing is persisted
    await store.ping()
    assert await store.get("g") is None
    assert await store.save("g", b"again", version=0) == 1


async def test_retries_are_bounded(
    own_standalone: Standalone, stores: Callable[..., RedisSessionStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = stores(own_standalone.url, max_retries=3, retry_delay=0)
    attempts = 0
    queue = command_queue(store.client)
    execute = queue.execute

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await execute(*args, **kwargs)

    queue.execute = counting  # type: ignore[method-assign]
    own_standalone.server.kill()
    with pytest.raises(StoreUnavailable):
        await store.get("g")
    assert attempts == 4


async def test_a_paused_server_times_out_into_store_unavailable(
    own_standalone: Standalone, stores: Callable[..., RedisSessionStore], clients: Clients
) -> None:
    from livetemplate.backends.redis import RedisSessionStore as Store

    client = clients(own_standalone.url + "?socket_timeout=0.2&socket_connect_timeout=0.2")
    store = Store(client, max_retries=1, retry_delay=0)
    await store.save("g", b"1", version=0)
    own_standalone.server.pause()
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("g")
    finally:
        own_standalone.server.resume()
    await eventually(lambda: _answers(store), "the store to answer again")
    assert await store.get("g") == Snapshot(b"1", 1)


async def _answers(store: RedisSessionStore) -> bool:
    try:
        await store.ping()
    except StoreUnavailable:
        return False
    return True


async def test_an_outage_with_fallback_degrades_to_memory_and_writes_back(
    proxy: Proxy,
    standalone: Standalone,
    stores: Callable[..., RedisSessionStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """This instance loses Redis (a cut proxy) while another instance keeps it. Meanwhile
    writes go to memory; when Redis answers again they are written back with a
    compare-and-set against the version Redis had: where Redis moved on, Redis wins."""
    caplog.set_level(logging.INFO, logger="livetemplate.backends.redis")
    local = stores(proxy.url, fallback_to_memory=True, max_retries=1, retry_delay=0, probe_interval=0.05)
    other = stores(standalone.url)
    await local.save("kept", b"k1", version=0)
    await local.save("contested", b"c1", version=0)
    await local.save("removed", b"r1", version=0)
    await local.save("removed-unseen", b"u1", version=0)

    proxy.disconnect()
    assert await local.save("kept", b"k2", version=1) == 2  # no error: degraded
    assert await local.claim("kept:message", ttl=60)  # claims too: this instance decides alone
    assert not await local.claim("kept:message", ttl=60)
    assert local.degraded
    await _ping_fails(local)
    assert await local.save("kept", b"k3", version=2) == 3
    assert await local.get("kept") == Snapshot(b"k3", 3)
    with pytest.raises(StaleVersion):
        await local.save("kept", b"stale", version=2)
    assert await local.save("contested", b"c2-local", version=1) == 2
    assert await local.save("new", b"n1", version=0) == 1
    assert await local.save("removed", b"r2", version=1) == 2
    await local.delete("removed")
    assert await local.get("removed") is None
    await local.delete("removed-unseen")  # no version known here: Redis keeps its copy
    assert await local.get("never-written-here") is None
    assert sorted(await local.list()) == ["contested", "kept", "new"]
    # the other instance still reaches Redis and moves "contested" on
    assert await other.save("contested", b"c2-other", version=1) == 2

    proxy.reconnect()
    await eventually(lambda: not local.degraded, "the store to leave degraded mode")
    assert await other.get("kept") == Snapshot(b"k3", 3)
    assert await other.get("new") == Snapshot(b"n1", 1)
    assert await other.get("removed") is None
    assert await other.get("removed-unseen") == Snapshot(b"u1", 1)
    assert await other.get("contested") == Snapshot(b"c2-other", 2)  # Redis won
    messages = [record.getMessage() for record in caplog.records]
    assert any("'contested'" in message and "Redis wins" in message for message in messages)
    assert await local.get("contested") == Snapshot(b"c2-other", 2)
    assert await local.save("kept", b"k4", version=3) == 4
    await local.ping()


async def test_a_group_read_again_during_an_outage_keeps_its_version_for_the_write_back(
    proxy: Proxy, standalone: Standalone, stores: Callable[..., RedisSessionStore]
) -> None:
    """Regression: a group held here and read again while the store serves from memory (a
    request of a session with no tab here, a keep-alive, a resynchronisation) read as absent
    and took version 0; its next change was then written back against version 0, found Redis
    at 1 and was dropped ("Redis wins"): an acknowledged change lost."""
    local = stores(proxy.url, fallback_to_memory=True, max_retries=1, retry_delay=0, probe_interval=0.05)
    other = stores(standalone.url)
    groups = Groups(local, "app", persisted=True, idle_timeout=60)
    group = await groups.get("browser")
    await groups.commit(group, b"before", group.snapshot)

    proxy.disconnect()
    group = await groups.get("browser")  # no tab here: read again, from memory now
    assert local.degraded
    assert group.snapshot == Snapshot(b"before", 1)
    await groups.commit(group, b"during", group.snapshot)

    proxy.reconnect()
    await eventually(lambda: not local.degraded, "the store to leave degraded mode")
    assert await other.get(groups.key("browser")) == Snapshot(b"during", 2)
    await groups.close()


@contextlib.asynccontextmanager
async def a_tab_through(
    proxy: Proxy, prefix: str, probe_interval: float
) -> AsyncIterator[tuple[LiveApp, LiveSocket, str]]:
    """The board in process over Redis behind ``proxy``, with the memory fallback on, and a tab
    of a session holding one item ("before"): the app, the tab's socket, the session's key."""
    options = f"fallback_to_memory=true&max_retries=1&retry_delay=0&probe_interval={probe_interval}"
    app = board(backend=f"{proxy.url}?key_prefix={prefix}&channel_prefix={prefix}&{options}")
    async with LiveClient(app) as client, client.websocket("/") as ws:
        await ws.receive_json()
        await ws.action("add", {"item": "before"})
        yield app, ws, app.groups.key(client.group_id)


async def test_a_change_dropped_at_write_back_gives_way_in_the_tabs(
    proxy: Proxy, standalone: Standalone, stores: Callable[..., RedisSessionStore], prefix: str
) -> None:
    """Regression: when the write-back dropped this instance's change of a session (another
    instance had changed it in Redis meanwhile: Redis wins), the instance went on showing its
    own, and at its next change took Redis's lower version for writes Redis had lost, and
    wrote its data over the other instance's. Now its tabs take Redis's state at once."""
    other = stores(standalone.url)
    async with a_tab_through(proxy, prefix, probe_interval=0.05) as (app, ws, key):
        proxy.disconnect()
        for item in ("local-1", "local-2"):  # served from memory: versions 2 and 3 here
            assert (await ws.action("add", {"item": item}))["meta"]["success"]
        assert app.store.degraded  # type: ignore[attr-defined]
        await other.save(key, msgspec.msgpack.encode({"items": ["before", "other"]}), version=1)

        proxy.reconnect()
        await eventually(lambda: not app.store.degraded, "the write-back")  # type: ignore[attr-defined]
        while "other" not in ws.html():
            await ws.receive_json()
        assert "local-1" not in ws.html()
        await ws.action("add", {"item": "after"})
    stored = await other.get(key)
    assert stored is not None and msgspec.msgpack.decode(stored.data) == {"items": ["before", "other", "after"]}


async def test_a_resynchronisation_while_the_store_is_still_degraded_waits_for_it(
    proxy: Proxy, standalone: Standalone, stores: Callable[..., RedisSessionStore], prefix: str
) -> None:
    """Regression: the broadcaster came back before the store left its fallback. The
    resynchronisation read the groups from memory, found nothing new and ended, so a change
    another instance made during the outage never reached the tabs (until their next action)."""
    other = stores(standalone.url)
    async with a_tab_through(proxy, prefix, probe_interval=4) as (app, ws, key):
        proxy.disconnect()
        assert await app.store.get("another session") is None  # the store meets the outage
        assert app.store.degraded  # type: ignore[attr-defined]
        await other.save(key, msgspec.msgpack.encode({"items": ["before", "other"]}), version=1)
        proxy.reconnect()  # the broadcaster is back within its backoff, the store at its probe

        async def shown() -> bool:
            with contextlib.suppress(AssertionError):  # no frame yet
                await ws.receive_json(timeout=0.2)
            return "other" in ws.html()

        await eventually(shown, "the other instance's change in the tab")
        assert not app.store.degraded  # type: ignore[attr-defined]


async def _ping_fails(store: RedisSessionStore) -> None:
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_a_degraded_store_keeps_serving_while_redis_stays_down(
    own_standalone: Standalone, stores: Callable[..., RedisSessionStore]
) -> None:
    store = stores(own_standalone.url, fallback_to_memory=True, max_retries=0, probe_interval=0.05)
    own_standalone.server.kill()
    assert await store.save("g", b"1", version=0) == 1
    await asyncio.sleep(0.2)  # several failed probes
    assert store.degraded
    assert await store.get("g") == Snapshot(b"1", 1)
    own_standalone.server.start()
    await eventually(lambda: not store.degraded, "the write-back")
    assert await store.get("g") == Snapshot(b"1", 1)
    assert "degraded=False" in repr(store)
