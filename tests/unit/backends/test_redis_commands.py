"""How many pipelines a Redis client's command queue has in flight (no server: clients connect
lazily). The queue against real servers: tests/integration/test_redis_commands.py."""

from __future__ import annotations

import asyncio
import gc

import pytest
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode

from livetemplate.backends.redis_commands import command_queue

pytestmark = pytest.mark.anyio


async def free_slots(slots: asyncio.Semaphore) -> int:
    """Take every slot that is free (a free one is taken without waiting); how many there were."""
    taken = 0
    while not slots.locked():
        await slots.acquire()
        taken += 1
    return taken


async def test_as_many_slots_as_the_pool_opens_connections() -> None:
    clients = [
        Redis(),  # redis-py's default pool
        Redis(max_connections=7),
        Redis(connection_pool=BlockingConnectionPool(max_connections=5)),
        RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", 1)], max_connections=9),  # to each node
    ]
    try:
        # one connection of a server's pool is left for a subscriber; a Cluster's have their own pools
        assert [await free_slots(command_queue(client).slots) for client in clients] == [99, 6, 4, 9]
        assert command_queue(clients[1]) is command_queue(clients[1])  # shared by the client's users
        tiny = Redis(max_connections=1)
        assert await free_slots(command_queue(tiny).slots) == 1  # never none
        await tiny.aclose()
    finally:
        for client in clients:
            await client.aclose()


async def test_a_queue_outliving_its_client_says_so() -> None:
    client = Redis(port=1)  # never connects: the queue fails before it would
    queue = command_queue(client)
    del client
    gc.collect()
    with pytest.raises(RuntimeError, match="client is gone"):
        await queue.execute("get", "key")
