"""A Sentinel failover under a live store and broadcaster: the master is SIGKILLed, the
sentinels promote the replica, and both carry on against the new master."""

from __future__ import annotations

import asyncio

import pytest

from livetemplate.backends import from_url
from livetemplate.backends.redis import RedisBroadcaster, RedisSessionStore
from livetemplate.sessions import Snapshot, StoreUnavailable
from tests.integration.conftest import eventually
from tests.integration.redis_servers import SentinelSetup

pytestmark = pytest.mark.anyio


async def test_store_and_broadcaster_survive_a_failover(own_sentinel: SentinelSetup, prefix: str) -> None:
    url = f"{own_sentinel.url}?key_prefix={prefix}&channel_prefix={prefix}&retry_delay=0.05&max_retries=2"
    backend = from_url(url)
    store, broadcaster = backend.store, backend.broadcaster
    assert isinstance(store, RedisSessionStore) and isinstance(broadcaster, RedisBroadcaster)
    resubscribed: list[list[str]] = []

    async def hook(channels: list[str]) -> None:
        resubscribed.append(channels)

    broadcaster.on_resubscribe = hook
    broadcaster.max_reconnect_delay = 0.2
    received: list[bytes] = []

    async def handler(message: bytes) -> None:
        received.append(message)

    try:
        await broadcaster.subscribe("room", handler)
        assert await store.save("g", b"before", version=0) == 1
        await asyncio.to_thread(own_sentinel.wait_replicated)  # the replica has the write
        _, old_port = own_sentinel.master_address()

        own_sentinel.process_at(old_port).kill()
        with pytest.raises(StoreUnavailable):  # without fallback, the outage is an error
            await store.save("g", b"during", version=1)
        promoted = await asyncio.to_thread(own_sentinel.wait_for_promotion, old_port)
        assert promoted.port != old_port

        async def saved() -> bool:
            try:
                return await store.save("g", b"after", version=1) == 2
            except StoreUnavailable:
                return False  # clients still learning the new master

        await eventually(saved, "a save on the new master", timeout=30)
        assert await store.get("g") == Snapshot(b"after", 2)
        await store.ping()
        await eventually(lambda: resubscribed == [["room"]], "the broadcaster to resubscribe", timeout=30)
        await broadcaster.publish("room", b"after the failover")
        await eventually(lambda: received == [b"after the failover"], "delivery after the failover")
    finally:
        await broadcaster.close()
        await store.close()
