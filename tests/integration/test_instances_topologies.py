"""Two instances of one app (uvicorn processes) over Sentinel and over a Cluster: a failover of
the master during a live session, and keys and shard channels spread across cluster slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.integration.conftest import eventually
from tests.integration.instances import Instances, Tab, new_session
from tests.integration.redis_servers import Cluster, SentinelSetup

pytestmark = pytest.mark.anyio

BOARD = "tests.integration.apps:board"
Launch = Callable[..., Instances]
NOT_SAVED = {"_general": "Your change could not be saved; try again."}


async def test_a_sentinel_failover_during_a_live_session(
    launch: Launch, own_sentinel: SentinelSetup, prefix: str, record_property: Callable[[str, object], None]
) -> None:
    """The master is SIGKILLed while tabs on both instances are open: actions fail clearly
    (nothing is lost or half-done) until the sentinels promote the replica, then the state is
    intact, commits reach the other instance again and so do topic messages. The outage, from
    the kill to the first acknowledged action and to that action showing on the other
    instance, is recorded as a test property and printed."""
    site = launch(BOARD, backend=f"{own_sentinel.url}?key_prefix={prefix}&channel_prefix={prefix}&retry_delay=0.05")
    a, b = await site.start(), await site.start()
    cookie = await new_session(a.url)
    writer, reader = await Tab.open(a.url, cookie), await Tab.open(b.url, cookie)
    listener = await Tab.open(b.url, await new_session(b.url), query="topic=news")
    before = [f"before-{n}" for n in range(3)]
    for item in before:
        assert (await writer.act("add", item=item))["success"]
    await reader.until(lambda: reader.items() == before, "the items on the other instance")
    await asyncio.to_thread(own_sentinel.wait_replicated)
    _, port = own_sentinel.master_address()

    killed_at = time.monotonic()
    own_sentinel.process_at(port).kill()
    refused = 0
    for n in range(10_000):
        item = f"after-{n}"
        meta = await writer.act("add", item=item)
        if meta["success"]:
            acknowledged_at = time.monotonic()
            break
        assert meta["errors"] == NOT_SAVED, meta
        refused += 1
        await asyncio.sleep(0.05)
    await reader.until(lambda: reader.items()[-1:] == [item], "the first change after the failover on B", 60)
    seen_at = time.monotonic()
    assert reader.items() == [*before, item]  # the state is intact; the refused actions changed nothing
    assert refused > 0
    await asyncio.to_thread(own_sentinel.wait_for_promotion, port)

    assert (await writer.act("add", item="later"))["success"]  # commits travel again
    await reader.until(lambda: reader.items()[-1:] == ["later"], "a later commit on B")
    announcer = await Tab.open(a.url, cookie)

    async def news_arrives() -> bool:  # a message published while B resubscribes is lost: send again
        assert (await announcer.act("announce", topic="news", text="after the failover"))["success"]
        await asyncio.sleep(0.2)
        return "after the failover" in listener.html

    await eventually(news_arrives, "topic messages to reach B again", 60)
    for tab in (writer, reader, listener, announcer):
        await tab.close()
    outage = {"kill_to_acknowledged_s": acknowledged_at - killed_at, "kill_to_seen_on_other_s": seen_at - killed_at}
    for name, value in outage.items():
        record_property(name, round(value, 3))
    print(f"\nSentinel failover outage: {outage} ({refused} actions refused meanwhile)")


async def test_two_instances_over_a_cluster(launch: Launch, cluster: Cluster, prefix: str) -> None:
    """Sessions whose keys fall in slots of every master, topics whose shard channels do too:
    each reaches the tabs on both instances."""
    site = launch(BOARD, backend=f"{cluster.url}?key_prefix={prefix}&channel_prefix={prefix}")
    a, b = await site.start(), await site.start()
    topics = [f"room-{n}" for n in range(10)]  # all ten sessions' keys on one master: 1 in 20,000
    tabs: list[tuple[Tab, Tab]] = []
    for topic in topics:
        cookie = await new_session(a.url)
        pair = (
            await Tab.open(a.url, cookie, query=f"topic={topic}"),
            await Tab.open(b.url, cookie, query=f"topic={topic}"),
        )
        tabs.append(pair)
    for topic, (on_a, on_b) in zip(topics, tabs, strict=True):
        assert (await on_a.act("add", item=f"{topic}-from-a"))["success"]
        assert (await on_b.act("add", item=f"{topic}-from-b"))["success"]
        for tab in (on_a, on_b):
            await tab.until(lambda tab=tab, t=topic: tab.items() == [f"{t}-from-a", f"{t}-from-b"], "both items")
        assert (await on_b.act("announce", topic=topic, text=f"news of {topic}"))["success"]
        for tab in (on_a, on_b):
            await tab.until(lambda tab=tab, t=topic: f"news of {t}" in tab.html, "the topic's news")
    for on_a, on_b in tabs:  # nothing crossed over to another room
        assert on_a.html.count("news of") == on_b.html.count("news of") == 1

    keys_on, channels_on = set(), set()
    for node in cluster.nodes:
        with node.client() as client:
            if any(True for _ in client.scan_iter(match=f"{prefix}*")):
                keys_on.add(node.port)
            if any(name.startswith(prefix.encode()) for name in client.execute_command("PUBSUB", "SHARDCHANNELS")):
                channels_on.add(node.port)
    assert len(keys_on) > 1 and len(channels_on) > 1, (keys_on, channels_on)
    for pair in tabs:
        for tab in pair:
            await tab.close()
