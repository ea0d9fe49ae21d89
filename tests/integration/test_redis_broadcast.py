"""RedisBroadcaster against real servers: one subscriber connection per process with local
fan-out, sharded pub/sub on a Cluster, resubscription after restarts and failovers, and a
subscription made in mount holding while it runs."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from livetemplate.backends.redis import BroadcastUnavailable, RedisBroadcaster, RedisSessionStore
from livetemplate.backends.redis_clients import RedisClient
from livetemplate.broadcast import Broadcaster
from livetemplate.testing import LiveClient
from tests.integration.conftest import Proxy, eventually
from tests.integration.redis_servers import Cluster, Standalone, Topology
from tests.unit.runtime.test_hub import Loading, make, mounting, until

pytestmark = pytest.mark.anyio

Clients = Callable[[str], RedisClient]


class Inbox:
    """Handlers that record what they receive."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = defaultdict(list)

    def handler(self, name: str) -> Callable[[bytes], Any]:
        async def handle(message: bytes) -> None:
            self.received[name].append(message)

        handle.__qualname__ = f"handler {name}"
        return handle


@pytest.fixture
async def broadcasters(clients: Clients, prefix: str) -> AsyncIterator[Callable[..., RedisBroadcaster]]:
    made: list[RedisBroadcaster] = []

    def make(url: str, **options: Any) -> RedisBroadcaster:
        broadcaster = RedisBroadcaster(clients(url), channel_prefix=prefix, **options)
        made.append(broadcaster)
        return broadcaster

    yield make
    for broadcaster in made:
        await broadcaster.close()


def channels_on_distinct_slots(cluster: Cluster, prefix: str, count: int) -> list[str]:
    """Channel names whose slots belong to ``count`` different masters."""

    found: dict[int, str] = {}
    for index in range(1000):
        name = f"room-{index}"
        port = cluster.node_for_slot(key_slot((prefix + name).encode())).port
        found.setdefault(port, name)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("no spread of channels found")


def data_nodes(topology: Topology) -> list[Any]:
    """The servers that hold data: every master of a cluster, else the (current) master."""
    if isinstance(topology, Cluster):
        return list(topology.nodes)
    if isinstance(topology, Standalone):
        return [topology.server]
    return [topology.process_at(topology.master_address()[1])]  # type: ignore[attr-defined]


def channels_of_node(cluster: Cluster, prefix: str, port: int, count: int) -> list[str]:
    """``count`` channel names owned by the master on ``port``, each on a slot of its own."""
    found: dict[int, str] = {}
    for index in range(10_000):
        name = f"node-room-{index}"
        slot = key_slot((prefix + name).encode())
        if slot not in found and cluster.node_for_slot(slot).port == port:
            found[slot] = name
            if len(found) == count:
                return list(found.values())
    raise AssertionError("not enough channels found on the node")


async def subscriber_clients(topology: Topology) -> int:
    """Connections subscribed to anything, over every data node of the topology."""
    total = 0
    for node in data_nodes(topology):
        client = Redis(port=node.port)
        try:
            for entry in await client.client_list():
                if entry.get("name", "").startswith("sentinel-"):
                    continue  # the sentinels' own hello channel
                if int(entry.get("sub", 0)) or int(entry.get("ssub", 0)) or int(entry.get("psub", 0)):
                    total += 1
        finally:
            await client.aclose()
    return total


async def test_fan_out_to_many_handlers_over_one_connection(
    topology: Topology, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    receiver = broadcasters(topology.url)
    sender = broadcasters(topology.url)
    assert isinstance(receiver, Broadcaster)
    channels = channels_on_distinct_slots(topology, prefix, 3) if isinstance(topology, Cluster) else ["a", "b", "c"]
    inbox = Inbox()
    for channel in channels:
        for index in range(4):
            await receiver.subscribe(channel, inbox.handler(f"{channel}/{index}"))
    for channel in channels:
        await sender.publish(channel, f"hello {channel}".encode())
    expected = {f"{channel}/{index}": [f"hello {channel}".encode()] for channel in channels for index in range(4)}
    await eventually(lambda: dict(inbox.received) == expected, "every handler to get its channel's message")
    # one subscriber connection (on a cluster, one per master owning a channel), not one per handler
    connections = len(channels) if isinstance(topology, Cluster) else 1
    assert receiver.subscriber_connections() == connections
    assert await subscriber_clients(topology) == connections
    await receiver.close()
    await eventually(lambda: _no_subscribers(topology), "the subscriber connections to close")


async def _no_subscribers(topology: Topology) -> bool:
    return await subscriber_clients(topology) == 0


async def test_more_publishes_at_once_than_the_pool_holds_all_arrive(
    topology: Topology, broadcasters: Callable[..., RedisBroadcaster]
) -> None:
    """A broadcast's commits each publish to their group's channel at once: past the pool's
    size (100 connections) redis-py refuses a command rather than wait; none may be lost."""
    receiver, sender = broadcasters(topology.url), broadcasters(topology.url)
    inbox = Inbox()
    await receiver.subscribe("crowd", inbox.handler("crowd"))
    count = 1000
    await asyncio.gather(*(sender.publish("crowd", b"%d" % index) for index in range(count)))
    await eventually(lambda: len(inbox.received["crowd"]) == count, "every message to arrive")
    assert sorted(inbox.received["crowd"]) == sorted(b"%d" % index for index in range(count))


async def test_a_store_and_a_broadcaster_sharing_one_client_share_its_pool(
    standalone: Standalone, clients: Clients, prefix: str
) -> None:
    """Commits and their envelopes at once, through one client of a pool of 10 (with the
    subscriber's connection): every one succeeds."""
    client = clients(f"{standalone.url}?max_connections=10")
    store = RedisSessionStore(client, key_prefix=prefix)
    broadcaster = RedisBroadcaster(client, channel_prefix=prefix)
    inbox = Inbox()
    await broadcaster.subscribe("crowd", inbox.handler("crowd"))
    count = 300
    saves = [store.save(f"g{index}", b"x", version=0) for index in range(count)]
    publishes = [broadcaster.publish("crowd", b"%d" % index) for index in range(count)]
    results = await asyncio.gather(*saves, *publishes)
    assert results == [1] * count + [None] * count
    await eventually(lambda: len(inbox.received["crowd"]) == count, "every message to arrive")
    await broadcaster.close()
    await store.close()


async def test_sharded_pub_sub_uses_the_channel_owner(
    cluster: Cluster, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    receiver = broadcasters(cluster.url)
    inbox = Inbox()
    channels = channels_on_distinct_slots(cluster, prefix, 3)
    for channel in channels:
        await receiver.subscribe(channel, inbox.handler(channel))

    for channel in channels:
        owner = cluster.node_for_slot(key_slot((prefix + channel).encode()))
        client = Redis(port=owner.port)
        try:
            numsub = await client.execute_command("PUBSUB", "SHARDNUMSUB", prefix + channel)
            assert numsub == [(prefix + channel).encode(), 1]
            plain = await client.execute_command("PUBSUB", "NUMSUB", prefix + channel)
            assert plain == [(prefix + channel).encode(), 0]  # sharded, not classic pub/sub
            # a message published straight on the owner with SPUBLISH arrives
            await client.execute_command("SPUBLISH", prefix + channel, b"direct")
        finally:
            await client.aclose()
    await eventually(lambda: all(inbox.received[channel] == [b"direct"] for channel in channels), "sharded delivery")


async def test_a_failing_or_slow_handler_does_not_stop_delivery(
    standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = broadcasters(standalone.url, handler_timeout=0.1)
    inbox = Inbox()

    async def failing(message: bytes) -> None:
        raise RuntimeError("handler bug")

    async def stuck(message: bytes) -> None:
        await asyncio.Event().wait()

    await receiver.subscribe("c", failing)
    await receiver.subscribe("c", stuck)
    await receiver.subscribe("c", inbox.handler("ok"))
    for number in range(3):
        await receiver.publish("c", b"%d" % number)
    await eventually(lambda: inbox.received["ok"] == [b"0", b"1", b"2"], "the healthy handler to get everything")
    messages = [record.getMessage() for record in caplog.records]
    assert any("failed" in message for message in messages)
    assert any("cancelled" in message for message in messages)


async def test_a_full_delivery_queue_drops_counts_and_resynchronises_once_caught_up(
    standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster]
) -> None:
    """Dropped messages may be commits of groups this instance shows: once the handlers have
    caught up, the app is told to resynchronise, as after a reconnection (the hub reloads its
    groups), once for the overflow."""
    resyncs: list[list[str]] = []

    async def resynchronise(channels: list[str]) -> None:
        resyncs.append(channels)

    receiver = broadcasters(standalone.url, max_pending=2, handler_timeout=30, on_resubscribe=resynchronise)
    release = asyncio.Event()
    seen: list[bytes] = []

    async def blocked(message: bytes) -> None:
        await release.wait()
        seen.append(message)

    await receiver.subscribe("q", blocked)
    await receiver.subscribe("other", Inbox().handler("other"))
    for number in range(10):
        await receiver.publish("q", b"%d" % number)
    await eventually(lambda: receiver.dropped == 7, "the overflow to be counted")  # 1 in the handler, 2 queued
    assert resyncs == []  # not while the handlers are behind
    release.set()
    await eventually(lambda: len(seen) == 3, "the queued messages")
    await eventually(lambda: resyncs == [["other", "q"]], "one resynchronisation, of every channel")
    await receiver.publish("q", b"later")  # no overflow since: no more
    await eventually(lambda: len(seen) == 4, "the next message")
    await asyncio.sleep(0.1)
    assert resyncs == [["other", "q"]]


async def test_unsubscribe_removes_the_redis_subscription_with_the_last_handler(
    standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    receiver = broadcasters(standalone.url)
    inbox = Inbox()
    first, second = inbox.handler("1"), inbox.handler("2")
    await receiver.subscribe("u", first)
    await receiver.subscribe("u", second)
    client = Redis(port=standalone.server.port)

    async def numsub() -> int:
        return int((await client.pubsub_numsub(prefix + "u"))[0][1])

    try:
        assert await numsub() == 1
        await receiver.unsubscribe("u", first)
        assert await numsub() == 1
        await receiver.publish("u", b"only second")
        await eventually(lambda: inbox.received["2"] == [b"only second"], "delivery to the remaining handler")
        assert inbox.received["1"] == []
        await receiver.unsubscribe("u", second)
        await eventually(lambda: _equals(numsub(), 0), "the Redis subscription to go")
        assert receiver.channels() == []
    finally:
        await client.aclose()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def commands_sent(topology: Topology, *names: str) -> int:
    """How many commands named ``names`` the data nodes have run (INFO commandstats)."""
    total = 0
    for node in data_nodes(topology):
        client = Redis(port=node.port)
        try:
            stats = await client.info("commandstats")
        finally:
            await client.aclose()
        total += sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names)
    return total


async def test_a_crowd_of_subscriptions_goes_in_a_few_commands(
    topology: Topology, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    """A storm of tabs opening subscribes a channel each at once: one SUBSCRIBE carries a
    turn's channels (up to 512: two for 1,000; on a cluster one SSUBSCRIBE a slot); every one
    is confirmed and delivers, and their removal goes the same way."""
    receiver, sender = broadcasters(topology.url), broadcasters(topology.url)
    await receiver.subscribe("warm", Inbox().handler("warm"))  # the subscriber connections exist
    count = 1000
    channels = [f"storm-{index}" for index in range(count)]
    inbox = Inbox()
    before = await commands_sent(topology, "subscribe", "ssubscribe")
    await asyncio.gather(*(receiver.subscribe(channel, inbox.handler(channel)) for channel in channels))
    sent = await commands_sent(topology, "subscribe", "ssubscribe") - before
    # a cluster refuses shard channels of several slots in one command: one a slot there
    most = len({key_slot((prefix + channel).encode()) for channel in channels}) if isinstance(topology, Cluster) else 2
    assert 1 <= sent <= most, f"{sent} commands for {count} channels"
    for channel in channels[:: count // 10]:
        await sender.publish(channel, channel.encode())
    expected = {channel: [channel.encode()] for channel in channels[:: count // 10]}
    await eventually(lambda: dict(inbox.received) == expected, "delivery on the crowd's channels")

    handlers = {channel: receiver._handlers[channel][0] for channel in channels}
    before = await commands_sent(topology, "unsubscribe", "sunsubscribe")
    await asyncio.gather(*(receiver.unsubscribe(channel, handler) for channel, handler in handlers.items()))
    sent = await commands_sent(topology, "unsubscribe", "sunsubscribe") - before
    assert 1 <= sent <= most, f"{sent} commands for {count} channels"
    assert receiver.channels() == ["warm"]
    await eventually(lambda: _equals(subscribed_channels(topology, prefix), [prefix + "warm"]), "the unsubscriptions")


async def subscribed_channels(topology: Topology, prefix: str) -> list[str]:
    """The channels under ``prefix`` with a subscriber, over every data node."""
    found: list[str] = []
    for node in data_nodes(topology):
        client = Redis(port=node.port)
        try:
            command = "PUBSUB SHARDCHANNELS" if isinstance(topology, Cluster) else "PUBSUB CHANNELS"
            found += [name.decode() for name in await client.execute_command(command, prefix + "*")]
        finally:
            await client.aclose()
    return sorted(found)


async def test_a_channel_removed_in_the_turn_it_was_added_is_not_subscribed(
    standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    """Its subscribe returns at once (no confirmation comes for a channel not sent), and a
    later subscribe of it works."""
    receiver, sender = broadcasters(standalone.url, keepalive=60.0), broadcasters(standalone.url)
    await receiver.subscribe("warm", Inbox().handler("warm"))
    inbox = Inbox()
    handler = inbox.handler("brief")
    async with asyncio.timeout(30):  # waiting for a confirmation would take the keepalive, 60 s
        await asyncio.gather(receiver.subscribe("brief", handler), receiver.unsubscribe("brief", handler))
    assert receiver.channels() == ["warm"]
    assert await subscribed_channels(standalone, prefix) == [prefix + "warm"]
    await receiver.subscribe("brief", handler)
    await sender.publish("brief", b"now")
    await eventually(lambda: inbox.received["brief"] == [b"now"], "delivery once subscribed")


async def test_publish_while_redis_is_down_raises(
    own_standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster]
) -> None:
    broadcaster = broadcasters(own_standalone.url)
    own_standalone.server.kill()
    with pytest.raises(BroadcastUnavailable, match="unreachable"):
        await broadcaster.publish("x", b"lost")


async def test_resubscribes_after_a_restart_and_calls_the_hook(
    own_standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster], caplog: pytest.LogCaptureFixture
) -> None:
    resubscribed: list[list[str]] = []

    async def hook(channels: list[str]) -> None:
        resubscribed.append(channels)

    receiver = broadcasters(own_standalone.url, on_resubscribe=hook, max_reconnect_delay=0.2)
    sender = broadcasters(own_standalone.url)
    inbox = Inbox()
    await receiver.subscribe("one", inbox.handler("one"))
    await receiver.subscribe("two", inbox.handler("two"))
    await sender.publish("one", b"before")
    await eventually(lambda: inbox.received["one"] == [b"before"], "delivery before the restart")

    own_standalone.server.kill()
    await asyncio.sleep(0.3)  # the reader notices and backs off
    own_standalone.server.start()
    await eventually(lambda: resubscribed == [["one", "two"]], "the resubscribe hook")
    await sender.publish("one", b"after")
    await sender.publish("two", b"after")
    await eventually(
        lambda: inbox.received["one"] == [b"before", b"after"] and inbox.received["two"] == [b"after"],
        "delivery after the restart",
    )
    assert receiver.subscriber_connections() == 1
    assert await subscriber_clients(own_standalone) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any("lost its connection" in message for message in messages)
    assert any("reconnected" in message for message in messages)


async def test_a_silent_connection_is_detected_by_the_keepalive(
    proxy: Proxy, standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster]
) -> None:
    """The subscriber's connection stops carrying anything without closing: the idle ping
    goes unanswered, the connection is dropped and made again."""
    resubscribed: list[list[str]] = []

    async def hook(channels: list[str]) -> None:
        resubscribed.append(channels)

    url = proxy.url + "?socket_timeout=0.5&socket_connect_timeout=0.5"
    receiver = broadcasters(url, keepalive=0.2, max_reconnect_delay=0.2, on_resubscribe=hook)
    sender = broadcasters(standalone.url)
    inbox = Inbox()
    await receiver.subscribe("quiet", inbox.handler("quiet"))
    proxy.stall()
    await eventually(lambda: receiver.subscriber_connections() == 0, "the silent connection to be dropped")
    proxy.reconnect()
    await eventually(lambda: resubscribed == [["quiet"]], "the resubscription")
    await sender.publish("quiet", b"heard")
    await eventually(lambda: inbox.received["quiet"] == [b"heard"], "delivery on the new connection")


async def test_a_subscription_made_while_redis_is_down_is_made_when_it_returns(
    own_standalone: Standalone, broadcasters: Callable[..., RedisBroadcaster]
) -> None:
    receiver = broadcasters(own_standalone.url, max_reconnect_delay=0.2)
    sender = broadcasters(own_standalone.url)
    inbox = Inbox()
    own_standalone.server.kill()
    channels = [f"late-{index}" for index in range(20)]  # a crowd: one batch, whose send fails
    await asyncio.gather(*(receiver.subscribe(channel, inbox.handler(channel)) for channel in channels))  # no failure
    own_standalone.server.start()
    await eventually(lambda: receiver.subscriber_connections() == 1, "the subscriber to connect")

    async def delivered() -> bool:
        for channel in channels:
            await sender.publish(channel, b"hi")
        await asyncio.sleep(0.05)
        return all(inbox.received[channel] for channel in channels)

    await eventually(delivered, "delivery on every late subscription")


async def test_a_cluster_node_restart_resubscribes_its_shard_channels(
    own_cluster: Cluster, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    resubscribed: list[list[str]] = []

    async def hook(channels: list[str]) -> None:
        resubscribed.append(channels)

    receiver = broadcasters(own_cluster.url, on_resubscribe=hook, max_reconnect_delay=0.2)
    sender = broadcasters(own_cluster.url)
    inbox = Inbox()
    channels = channels_on_distinct_slots(own_cluster, prefix, 3)
    restarted = own_cluster.node_for_slot(key_slot((prefix + channels[0]).encode()))
    # more channels of the restarted node, on slots of their own: one SSUBSCRIBE of them all
    # on reconnection (redis-py's own) is refused with CROSSSLOT
    on_restarted = [channels[0], *channels_of_node(own_cluster, prefix, restarted.port, 3)]
    channels += on_restarted[1:]
    for channel in channels:
        await receiver.subscribe(channel, inbox.handler(channel))

    restarted.kill()
    restarted.start()  # same port, same nodes.conf: same slots
    await eventually(lambda: resubscribed == [sorted(on_restarted)], "the hook for the restarted node's channels")

    async def all_delivered() -> bool:
        for channel in channels:
            if not inbox.received[channel]:
                try:
                    await sender.publish(channel, b"after")
                except BroadcastUnavailable:
                    return False  # the cluster is still settling
        await asyncio.sleep(0.05)
        return all(inbox.received[channel] for channel in channels)

    await eventually(all_delivered, "delivery on every shard channel")
    assert receiver.subscriber_connections() == 3


async def test_a_slot_migration_moves_the_shard_subscription(
    own_cluster: Cluster, broadcasters: Callable[..., RedisBroadcaster], prefix: str
) -> None:
    """The slot of a subscribed channel moves to another master: the server drops the
    subscription and the broadcaster subscribes on the new owner, then tells the app that
    messages on it may have been missed meanwhile."""
    resubscribed: list[list[str]] = []

    async def hook(channels: list[str]) -> None:
        resubscribed.append(channels)

    receiver = broadcasters(own_cluster.url, on_resubscribe=hook)
    sender = broadcasters(own_cluster.url)
    inbox = Inbox()
    await receiver.subscribe("moving", inbox.handler("moving"))
    slot = key_slot((prefix + "moving").encode())
    source = own_cluster.node_for_slot(slot)
    target = next(node for node in own_cluster.nodes if node is not source)
    own_cluster.move_empty_slot(slot, target)
    await eventually(lambda: _owner_subscribed(target.port, prefix + "moving"), "the subscription on the new owner")
    await eventually(lambda: resubscribed == [["moving"]], "the resynchronisation hook")

    async def delivered() -> bool:
        if not inbox.received["moving"]:
            await sender.publish("moving", b"after the move")
            await asyncio.sleep(0.05)
        return inbox.received["moving"] == [b"after the move"]

    await eventually(delivered, "delivery after the move")


async def _owner_subscribed(port: int, channel: str) -> bool:
    client = Redis(port=port)
    try:
        reply = await client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return bool(reply[1] == 1)
    finally:
        await client.aclose()


async def test_close_stops_everything(standalone: Standalone, clients: Clients, prefix: str) -> None:
    receiver = RedisBroadcaster(clients(standalone.url), channel_prefix=prefix)
    await receiver.subscribe("c", Inbox().handler("c"))
    await receiver.close()
    assert receiver.subscriber_connections() == 0
    assert receiver.channels() == []
    with pytest.raises(RuntimeError, match="closed"):
        await receiver.subscribe("c", Inbox().handler("c"))
    assert not [task for task in asyncio.all_tasks() if "read_forever" in repr(task) or "_dispatch" in repr(task)]


@pytest.mark.parametrize("steps", [1, 2, 3], ids=lambda steps: f"after {steps} turns")
async def test_subscriptions_in_flight_when_the_broadcaster_closes_end(
    standalone: Standalone, clients: Clients, prefix: str, steps: int
) -> None:
    """Tabs opening while the server shuts down: their subscriptions end (as cancelled, or
    not made), whatever the point the close catches them at, and leave no task behind."""
    receiver = RedisBroadcaster(clients(standalone.url), channel_prefix=prefix)
    await receiver.subscribe("warm", Inbox().handler("warm"))
    subscribing = [
        asyncio.ensure_future(receiver.subscribe(f"late-{index}", Inbox().handler("x"))) for index in range(5)
    ]
    for _ in range(steps):
        await asyncio.sleep(0)
    await receiver.close()
    async with asyncio.timeout(10):  # they would otherwise wait forever
        await asyncio.gather(*subscribing, return_exceptions=True)
    await asyncio.sleep(0.1)
    assert not [task for task in asyncio.all_tasks() if "read_forever" in repr(task) or "_flush" in repr(task)]


async def test_a_message_another_instance_publishes_while_mount_loads_reaches_the_tab(
    topology: Topology, broadcasters: Callable[..., RedisBroadcaster]
) -> None:
    """Two instances on one Redis: a tab's mount awaits its subscription, then loads; a
    message the other instance publishes meanwhile runs on the tab once its page is out."""
    loading = Loading()
    here = make(loading, open_topics=True, broadcaster=broadcasters(topology.url))
    there = make(Loading(), open_topics=True, broadcaster=broadcasters(topology.url))
    async with LiveClient(here) as client, LiveClient(there):
        ws = await mounting(client, loading, "/?wait=1")
        await there.publish("news", "headline", {"text": "from the other instance"})
        loading.loaded.set()
        assert "s" in (await ws.receive_json())["tree"]
        await until(ws, "note", "from the other instance")
