"""The command queue against real servers: a crowd's commands go in a few pipelines, each
command keeps its own reply or error, scripts are loaded again once for a crowd."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from livetemplate.backends.redis_clients import RedisClient
from livetemplate.backends.redis_commands import BATCH, command_queue
from tests.integration.conftest import Proxy
from tests.integration.redis_servers import Cluster, Standalone, Topology

pytestmark = pytest.mark.anyio

Clients = Callable[[str], RedisClient]


async def connections_named(server: Standalone, name: str) -> int:
    """How many connections the server has open for clients named ``name``."""
    async with Redis(host="127.0.0.1", port=server.server.port) as admin:
        return sum(1 for client in await admin.client_list() if client["name"] == name)


async def test_a_crowd_takes_a_connection_a_pipeline(standalone: Standalone, prefix: str) -> None:
    """A thousand commands issued at once go as four pipelines, on four connections, where one
    command a connection would open the pool's hundred."""
    async with Redis(host="127.0.0.1", port=standalone.server.port, client_name="crowd") as client:
        queue = command_queue(client)
        count = 1000
        keys = [f"{prefix}{index}" for index in range(count)]
        sets = (queue.execute("set", key, str(index)) for index, key in enumerate(keys))
        assert await asyncio.gather(*sets) == [True] * count
        assert await asyncio.gather(*(queue.execute("get", key) for key in keys)) == [
            str(index).encode() for index in range(count)
        ]
        assert await connections_named(standalone, "crowd") == -(-count // BATCH)


async def test_every_topology_answers_each_command_of_a_crowd(
    topology: Topology, clients: Clients, prefix: str
) -> None:
    """Keys over every slot of a Cluster: each command's reply reaches its own caller."""
    queue = command_queue(clients(topology.url))
    keys = [f"{prefix}{index}" for index in range(600)]
    assert await asyncio.gather(*(queue.execute("set", key, key) for key in keys)) == [True] * len(keys)
    assert await asyncio.gather(*(queue.execute("getex", key, px=60_000) for key in keys)) == [
        key.encode() for key in keys
    ]


async def test_a_command_that_fails_fails_alone(standalone: Standalone, clients: Clients, prefix: str) -> None:
    queue = command_queue(clients(standalone.url))
    await queue.execute("set", prefix + "text", "not a number")
    replies = await asyncio.gather(
        queue.execute("incr", prefix + "counter"),
        queue.execute("incr", prefix + "text"),  # in the same pipeline
        queue.execute("get", prefix + "text"),
        return_exceptions=True,
    )
    assert replies[0] == 1 and replies[2] == b"not a number"
    assert isinstance(replies[1], ResponseError) and "not an integer" in str(replies[1])


async def test_a_caller_cancelled_before_the_send_sends_nothing(
    standalone: Standalone, clients: Clients, prefix: str
) -> None:
    client = clients(standalone.url)
    queue = command_queue(client)
    kept = asyncio.ensure_future(queue.execute("set", prefix + "kept", "1"))
    dropped = asyncio.ensure_future(queue.execute("set", prefix + "dropped", "1"))
    await asyncio.sleep(0)  # both queued, not yet sent
    dropped.cancel()
    assert await kept is True
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert await client.exists(prefix + "kept", prefix + "dropped") == 1


async def test_the_turns_first_caller_cancelled_still_sends_the_others(
    standalone: Standalone, clients: Clients, prefix: str
) -> None:
    """The first caller of a turn sends its commands: cancelled while it waits for the others,
    it leaves them on their way."""
    client = clients(standalone.url)
    queue = command_queue(client)
    first = asyncio.ensure_future(queue.execute("set", prefix + "first", "1"))
    others = [asyncio.ensure_future(queue.execute("set", f"{prefix}other-{index}", "1")) for index in range(3)]
    await asyncio.sleep(0)  # all queued behind the first, which waits for the turn to end
    first.cancel()
    async with asyncio.timeout(10):  # left behind, they would wait forever
        assert await asyncio.gather(*others) == [True] * 3
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await client.exists(prefix + "first") == 0


async def test_a_lost_connection_fails_every_command_of_its_pipeline(
    proxy: Proxy, clients: Clients, prefix: str
) -> None:
    """Nobody waits forever on a pipeline whose connection went: each caller gets the error (and
    the store's retries take it from there)."""
    queue = command_queue(clients(proxy.url))
    await queue.execute("ping")
    proxy.disconnect()
    crowd = (queue.execute("get", f"{prefix}{index}") for index in range(10))
    replies = await asyncio.gather(*crowd, return_exceptions=True)
    assert all(isinstance(reply, ConnectionError) for reply in replies), replies
    proxy.reconnect()
    assert await queue.execute("set", prefix + "back", "1") is True


async def test_a_flushed_script_is_loaded_once_for_the_crowd(
    standalone: Standalone, clients: Clients, prefix: str
) -> None:
    client = clients(standalone.url)
    queue = command_queue(client)
    script = client.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    await queue.run_script(script, [prefix + "first"], ["1"])  # loaded

    async def loads() -> int:
        stats = await client.info("commandstats")
        return int(stats.get("cmdstat_script|load", {}).get("calls", 0))

    await client.script_flush()
    before = await loads()
    keys = [f"{prefix}{index}" for index in range(300)]
    assert await asyncio.gather(*(queue.run_script(script, [key], ["x"]) for key in keys)) == [b"OK"] * len(keys)
    assert await loads() == before + 1
    assert await client.mget(keys) == [b"x"] * len(keys)


async def test_a_cluster_node_down_fails_only_its_own_commands(
    own_cluster: Cluster, clients: Clients, prefix: str
) -> None:
    """A crowd's pipeline reaches each master apart (redis-py's cluster pipeline): while one
    master is down (before a replica takes over), the commands for the others still succeed."""
    from redis.crc import key_slot

    queue = command_queue(clients(own_cluster.url))
    keys = [f"{prefix}{index}" for index in range(300)]
    assert await asyncio.gather(*(queue.execute("set", key, "before") for key in keys)) == [True] * len(keys)
    down = own_cluster.node_for_slot(key_slot(keys[0].encode()))
    on_down = {key for key in keys if own_cluster.node_for_slot(key_slot(key.encode())) is down}
    down.kill()
    replies = await asyncio.gather(*(queue.execute("set", key, "after") for key in keys), return_exceptions=True)
    failed = {key for key, reply in zip(keys, replies, strict=True) if isinstance(reply, Exception)}
    assert failed == on_down
    assert all(reply is True for key, reply in zip(keys, replies, strict=True) if key not in on_down)


async def test_a_caller_cancelled_in_flight_leaves_the_others_their_replies(
    standalone: Standalone, clients: Clients, prefix: str
) -> None:
    queue = command_queue(clients(standalone.url))
    slow = asyncio.ensure_future(queue.execute("blpop", [prefix + "empty"], 0.3))  # holds its pipeline 0.3 s
    other = asyncio.ensure_future(queue.execute("set", prefix + "after", "1"))  # in the same pipeline
    await asyncio.sleep(0.1)  # both sent
    slow.cancel()
    assert await other is True
    with pytest.raises(asyncio.CancelledError):
        await slow


async def test_a_crowd_follows_a_slot_that_moved(own_cluster: Cluster, clients: Clients, prefix: str) -> None:
    """The client still maps a slot to its old master: that master answers MOVED for the
    crowd's commands of the slot, which reach the new one; the others are not held up."""
    from redis.crc import key_slot

    queue = command_queue(clients(own_cluster.url))
    keys = [f"{prefix}{index}" for index in range(100)]
    await asyncio.gather(*(queue.execute("get", key) for key in keys))  # the client has the slots' map
    moving = f"{prefix}moving"
    slot = key_slot(moving.encode())
    source = own_cluster.node_for_slot(slot)
    own_cluster.move_empty_slot(slot, next(node for node in own_cluster.nodes if node is not source))
    replies = await asyncio.gather(*(queue.execute("set", key, "x") for key in [*keys, moving]))
    assert replies == [True] * (len(keys) + 1)
    assert await queue.execute("get", moving) == b"x"
