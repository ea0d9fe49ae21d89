"""Two instances of one app, each a uvicorn process, over one Redis server, without sticky
routing: a browser's tabs, HTTP requests and reconnections may land on either instance and
always find the session's state; an instance killed or restarted loses nothing that was
acknowledged."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser
from redis.asyncio import Redis

from tests.integration.conftest import eventually
from tests.integration.instances import (
    WAIT,
    Balancer,
    Closed,
    Instance,
    Instances,
    Tab,
    new_session,
    open_page,
    tree_items,
)
from tests.integration.redis_servers import Standalone

pytestmark = pytest.mark.anyio

BOARD = "tests.integration.apps:board"
#: The refusal of an action that met other instances' commits on every attempt.
CONFLICT = {"_general": "The page changed meanwhile; please try again."}
#: The refusal of an action that arrives while the instance drains (its socket closes next).
DRAINING = {"_general": "the server is shutting down; reload the page in a moment"}
Launch = Callable[..., Instances]
MakeBalancer = Callable[..., Awaitable[Balancer]]


@pytest.fixture
def site(launch: Launch, standalone: Standalone, prefix: str) -> Instances:
    """Instances of the board on the shared Redis server, under the test's own prefixes."""
    return launch(BOARD, backend=f"{standalone.url}?key_prefix={prefix}&channel_prefix={prefix}")


async def post(instance: Instance, cookie: str, action: str, **data: Any) -> dict[str, Any]:
    """The client's HTTP fallback: a JSON POST of the action; the answer (a complete tree)."""
    async with httpx.AsyncClient(timeout=WAIT, cookies={"livetemplate-id": cookie}) as http:
        response = await http.post(
            instance.url, json={"action": action, "data": data}, headers={"accept": "application/json"}
        )
    response.raise_for_status()
    frame: dict[str, Any] = response.json()
    assert frame["meta"]["success"], frame
    return frame


async def page_items(instance: Instance, cookie: str) -> list[str]:
    """The items a page load (the client's HTTP mode: the initial tree as JSON) shows."""
    async with httpx.AsyncClient(timeout=WAIT, cookies={"livetemplate-id": cookie}) as http:
        response = await http.get(instance.url, headers={"accept": "application/json"})
    response.raise_for_status()
    return tree_items(response.json())


async def test_an_action_in_a_tab_on_one_instance_appears_in_a_tab_on_the_other(
    site: Instances, chromium: Browser
) -> None:
    a, b = await site.start(), await site.start()
    context = await chromium.new_context()  # one browser: the same cookie on both (ports share cookies)
    on_a = await open_page(chromium, a.url, context)
    on_b = await open_page(chromium, b.url, context)
    for page, other, item in ((on_a, on_b, "from-a"), (on_b, on_a, "from-b")):
        await page.fill("input[name=item]", item)
        await page.click("button[type=submit]")
        await other.wait_for_selector(f'#items li[data-key="{item}"]')
    assert await on_a.inner_text("#items") == await on_b.inner_text("#items") == "from-a\nfrom-b"
    assert await a.metric("livetemplate_connections_active") == await b.metric("livetemplate_connections_active") == 1
    await context.close()


async def test_posts_page_loads_and_reconnections_find_the_state_on_either_instance(site: Instances) -> None:
    a, b = await site.start(), await site.start()
    cookie = await new_session(a.url)
    await post(a, cookie, "add", item="p1")
    await post(b, cookie, "add", item="p2")
    await post(a, cookie, "add", item="p3")
    assert await page_items(b, cookie) == await page_items(a, cookie) == ["p1", "p2", "p3"]

    tab = await Tab.open(b.url, cookie)  # a tab on B sees what A's requests changed, live
    assert tab.items() == ["p1", "p2", "p3"]
    await post(a, cookie, "add", item="p4")
    await tab.until(lambda: tab.items()[-1:] == ["p4"], "a POST on A to reach the tab on B")
    await tab.close()

    await post(a, cookie, "add", item="p5")  # B has no tab of the session now: it hears nothing
    for instance in (b, a, b):
        tab = await Tab.open(instance.url, cookie)
        assert tab.items() == ["p1", "p2", "p3", "p4", "p5"], instance
        await tab.close()
    assert await page_items(b, cookie) == ["p1", "p2", "p3", "p4", "p5"]


async def test_a_session_with_a_tab_open_outlives_the_stores_time_to_live(
    launch: Launch, standalone: Standalone, prefix: str
) -> None:
    """An open tab's session does not expire in Redis while nothing changes it: the instance
    reads it again within the time to live (GETEX renews it), so a tab opened later on the
    other instance finds it."""
    ttl = 1.0
    site = launch(BOARD, backend=f"{standalone.url}?key_prefix={prefix}&channel_prefix={prefix}&ttl={ttl}")
    a, b = await site.start(), await site.start()
    cookie = await new_session(a.url)
    tab = await Tab.open(a.url, cookie)
    await post(a, cookie, "add", item="kept")
    await tab.until(lambda: tab.items() == ["kept"], "the item in the open tab")
    await asyncio.sleep(3 * ttl)  # the tab stays open; nothing changes the session
    other = await Tab.open(b.url, cookie)
    assert other.items() == ["kept"]
    await other.close()
    await tab.close()


async def test_a_page_reconnects_to_the_other_instance_when_its_own_is_killed(
    site: Instances, balancer: MakeBalancer, chromium: Browser
) -> None:
    a, b = await site.start(heartbeat_ms=1000), await site.start(heartbeat_ms=1000)
    front: Balancer = await balancer(a.port, b.port)
    page = await open_page(chromium, front.url)
    await page.fill("input[name=item]", "before")
    await page.click("button[type=submit]")
    await page.wait_for_selector('#items li[data-key="before"]')

    serving = [i for i in (a, b) if await i.metric("livetemplate_connections_active") == 1]
    assert len(serving) == 1
    killed = serving[0]
    survivor = b if killed is a else a
    killed.kill()
    await page.wait_for_function("() => window.__lvtEvents.some((e) => e.type === 'lvt:reconnected')")
    assert await survivor.metric("livetemplate_connections_active") == 1

    await page.fill("input[name=item]", "after")
    await page.click("button[type=submit]")
    await page.wait_for_selector('#items li[data-key="after"]')
    assert await page.inner_text("#items") == "before\nafter"  # rendered by the survivor, from Redis
    await page.context.close()


async def test_a_rolling_restart_loses_no_acknowledged_action(site: Instances, balancer: MakeBalancer) -> None:
    """Tabs keep adding items through the balancer while each instance in turn is stopped
    (SIGTERM: its sockets close with 1012), started again and put back."""
    a, b = await site.start(message_rate_limit=None), await site.start(message_rate_limit=None)
    front: Balancer = await balancer(a.port, b.port)
    cookie = await new_session(front.url)
    sent: list[str] = []
    acknowledged: list[str] = []
    close_codes: list[int | None] = []
    stop = asyncio.Event()

    async def keep_adding(name: str) -> None:
        tab = await Tab.open(front.url, cookie)
        n = 0
        while not stop.is_set():
            item = f"{name}-{n}"
            sent.append(item)
            try:
                meta = await tab.act("add", item=item)
            except Closed as closed:  # the item may or may not have been added: never sent again
                close_codes.append(closed.code)
                tab = await Tab.reopen(front.url, cookie)
                n += 1
                continue
            if meta["success"]:
                acknowledged.append(item)
                n += 1
            else:  # refused (conflicting changes, or the instance draining): nothing ran, send it again
                assert meta["errors"] in (CONFLICT, DRAINING), meta
            await asyncio.sleep(0.01)
        await tab.close()

    writers = [asyncio.ensure_future(keep_adding(f"tab{i}")) for i in range(4)]

    def added_since(mark: int) -> bool:
        for writer in writers:
            if writer.done():
                writer.result()  # a tab that failed fails the test now
        return len(acknowledged) > mark + 20

    try:
        for old in (a, b):
            await eventually(lambda: added_since(0), "tabs to add items")
            old.terminate()
            assert await old.exited() == -signal.SIGTERM  # uvicorn re-raises it once shut down
            assert "Application shutdown complete" in old.log()
            new = await site.start(message_rate_limit=None)
            front.replace(old.port, new.port)
            mark = len(acknowledged)
            await eventually(lambda mark=mark: added_since(mark), "tabs to carry on")
        stop.set()
        await asyncio.gather(*writers)
    finally:
        stop.set()
        await asyncio.gather(*writers, return_exceptions=True)

    assert close_codes and set(close_codes) == {1012}, close_codes
    final = await page_items(site.started[-1], cookie)
    counts = Counter(final)
    assert [item for item, count in counts.items() if count > 1] == []
    assert set(acknowledged) <= set(final) <= set(sent)


async def test_tabs_on_two_instances_adding_at_once_keep_every_acknowledged_item_once(site: Instances) -> None:
    a, b = await site.start(message_rate_limit=None), await site.start(message_rate_limit=None)
    cookie = await new_session(a.url)
    acknowledged: list[str] = []
    refused: list[dict[str, Any]] = []
    per_tab = 25

    async def add_all(instance: Instance, name: str) -> Tab:
        tab = await Tab.open(instance.url, cookie)
        for n in range(per_tab):
            item = f"{name}-{n}"
            while True:  # a refusal ("the page changed meanwhile") changed nothing: send it again
                meta = await tab.act("add", item=item)
                if meta["success"]:
                    acknowledged.append(item)
                    break
                refused.append(meta)
        return tab

    tabs = await asyncio.gather(*(add_all(instance, f"{instance.port}-{i}") for i in range(3) for instance in (a, b)))
    assert len(acknowledged) == 6 * per_tab
    final = await page_items(b, cookie)
    assert sorted(final) == sorted(acknowledged)  # each acknowledged item, once
    for tab in tabs:  # and every tab converges on it
        await tab.until(lambda tab=tab: tab.items() == final, "the tab to show the final list")  # type: ignore[misc]
        await tab.close()
    assert all(meta["errors"] == CONFLICT for meta in refused)


async def test_a_topic_action_adds_once_to_a_session_with_tabs_on_both_instances(site: Instances) -> None:
    a, b = await site.start(), await site.start()
    cookie = await new_session(a.url)
    tabs = [await Tab.open(instance.url, cookie, query="topic=shared") for instance in (a, b)]
    sender = await Tab.open(b.url, await new_session(b.url))  # another browser, not subscribed
    shared = [f"shared-{n}" for n in range(6)]
    for item in shared:
        assert (await sender.act("share", topic="shared", item=item))["success"]
    for tab in tabs:  # each instance ran every message for its tab; one of them committed it
        await tab.until(lambda tab=tab: sorted(tab.items()) == shared, "each shared item once")  # type: ignore[misc]
    assert sorted(await page_items(a, cookie)) == shared
    for tab in (*tabs, sender):
        await tab.close()


async def test_a_topic_action_reaches_more_sessions_than_the_redis_pool_holds(
    launch: Launch, standalone: Standalone, prefix: str
) -> None:
    """Tabs of 80 sessions open at once; then a topic message that changes persisted fields
    commits (claim, compare-and-set, envelope) for every subscribed session at once. redis-py
    refuses commands past its pool's size instead of waiting: with a pool of 4 connections,
    40 sessions on each instance each still get the item, none refused as an outage."""
    site = launch(BOARD, backend=f"{standalone.url}?key_prefix={prefix}&channel_prefix={prefix}&max_connections=4")
    a, b = await site.start(), await site.start()
    sessions = [(instance, await new_session(instance.url)) for instance in (a, b) for _ in range(40)]
    # at once, as after a restart: every tab's group is read and its channel subscribed together
    tabs = await asyncio.gather(*(Tab.open(instance.url, cookie, query="topic=crowd") for instance, cookie in sessions))
    sender = await Tab.open(a.url, await new_session(a.url))
    assert (await sender.act("share", topic="crowd", item="for everyone"))["success"]
    for tab in tabs:
        await tab.until(lambda tab=tab: tab.items() == ["for everyone"], "the item in every session")  # type: ignore[misc]
    for tab in (*tabs, sender):
        await tab.close()


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(("list", b"x"), id="wrong-redis-type"),
        pytest.param(("string", b"\x00\xffnot a snapshot"), id="corrupted-bytes"),
        pytest.param(("string", b"LT1:3:00ff:\xc1\xc1\xc1"), id="undecodable-state"),
        pytest.param(("string", b"LT1:3:00ff:\x81\xa5items\x05"), id="state-of-the-wrong-type"),
    ],
)
async def test_a_bad_value_in_redis_starts_the_session_afresh(
    site: Instances, standalone: Standalone, prefix: str, stored: tuple[str, bytes]
) -> None:
    a = await site.start()
    cookie = await new_session(a.url)
    key = f"{prefix}board:{cookie.partition('.')[0]}"
    kind, value = stored
    redis = Redis(port=standalone.server.port)
    try:
        await (redis.rpush(key, value) if kind == "list" else redis.set(key, value))
        assert await page_items(a, cookie) == []
        tab = await Tab.open(a.url, cookie)
        assert tab.items() == []
        assert (await tab.act("add", item="fresh"))["success"]
        await tab.close()
        assert await page_items(a, cookie) == ["fresh"]
        stored_now = await redis.get(key)
        assert isinstance(stored_now, bytes) and stored_now.endswith(b"fresh")
    finally:
        await redis.aclose()
    assert a.process.poll() is None
    logged = "holds no valid snapshot" if kind == "list" or not value.startswith(b"LT1") else "does not fit its type"
    assert logged in a.log()


async def test_an_undecodable_broadcast_is_dropped_and_counted(
    site: Instances, standalone: Standalone, prefix: str
) -> None:
    a, b = await site.start(), await site.start()
    cookie = await new_session(a.url)
    tab = await Tab.open(a.url, cookie, query="topic=news")
    redis = Redis(port=standalone.server.port)
    try:
        for channel in (f"{prefix}group:board:{cookie.partition('.')[0]}", f"{prefix}topic:news"):
            assert await redis.publish(channel, b"\x00 not an envelope") == 1

        async def both_counted() -> bool:
            return await a.metric('livetemplate_errors_total{kind="broadcast_decode"}') == 2

        await eventually(both_counted, "the two drops to be counted")
    finally:
        await redis.aclose()
    other = await Tab.open(b.url, cookie)
    assert (await other.act("announce", topic="news", text="still delivered"))["success"]
    await tab.until(lambda: "still delivered" in tab.html, "news from B after the bad messages")
    assert (await other.act("add", item="still committed"))["success"]
    await tab.until(lambda: tab.items() == ["still committed"], "a commit from B after the bad messages")
    await tab.close()
    await other.close()
