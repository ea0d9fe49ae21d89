"""Several instances of one app sharing a store and a broadcaster (here in one process): a
commit, a publish and a push made on one reach the tabs on the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, InProcessBroadcaster, MemorySessionStore, Persist
from livetemplate.hub import Envelope
from livetemplate.sessions import Snapshot, StoreUnavailable
from livetemplate.testing import LiveClient, LiveSocket

pytestmark = pytest.mark.anyio

TEMPLATE = "<p>{{ items|join(',') }}</p><i>{{ note }}</i>"


class State(msgspec.Struct):
    items: Annotated[list[str], Persist] = []
    note: str = ""


class Controller:
    def mount(self, state: State, ctx: Context) -> None:
        if ctx.get_str("topic"):
            ctx.subscribe(ctx.get_str("topic"))

    def add(self, state: State, ctx: Context) -> State:
        state.items.append(ctx.get_str("item"))
        return state

    def note(self, state: State, ctx: Context) -> State:
        state.note = ctx.get_str("text")
        return state


class Cluster:
    """``n`` instances of the app over one store and one broadcaster."""

    def __init__(
        self, n: int = 2, broadcaster: InProcessBroadcaster | None = None, store: MemorySessionStore | None = None
    ) -> None:
        self.store = store if store is not None else MemorySessionStore()
        self.broadcaster = broadcaster or InProcessBroadcaster()
        self.apps = [
            livetemplate.mount(
                Controller(),
                State(),
                template=TEMPLATE,
                name="shared",
                session_store=self.store,
                broadcaster=self.broadcaster,
                open_topics=True,
                secret_key="same on every instance",
            )
            for _ in range(n)
        ]

    @contextlib.asynccontextmanager
    async def browser(self) -> AsyncIterator[tuple[LiveClient, LiveClient]]:
        """One browser's clients of the first two instances: its session cookie on both, as a
        balancer without stickiness sends it to either."""
        one, two = self.apps[:2]
        async with LiveClient(one, shutdown=False) as a, LiveClient(two, shutdown=False) as b:
            await a.get("/")
            b.http.cookies.update(a.http.cookies)
            yield a, b

    async def close(self) -> None:
        for app in self.apps:
            app.runtime.closing = False  # each shuts down its own parts; the shared ones close once
        for app in self.apps:
            await app.hub.close()
            await app.groups.close()
        await self.store.close()
        await self.broadcaster.close()


@pytest.fixture
async def cluster() -> Any:
    cluster = Cluster()
    yield cluster
    await cluster.close()


async def until(ws: LiveSocket, text: str) -> None:
    while text not in ws.html():
        await ws.receive_json()


async def tab(client: LiveClient, url: str = "/") -> LiveSocket:
    ws = client.websocket(url)
    await ws.__aenter__()
    await ws.receive_json()
    return ws


async def test_a_commit_on_one_instance_reaches_the_tabs_on_the_other(cluster: Cluster) -> None:
    one = cluster.apps[0]
    async with cluster.browser() as (a, b):
        here, there = await tab(a), await tab(b)
        await here.action("add", {"item": "milk"})
        await until(there, "<p>milk</p>")
        await there.action("add", {"item": "eggs"})  # there holds the new version: no conflict
        await until(here, "<p>milk,eggs</p>")
        snapshot = await cluster.store.get(one.groups.key(a.group_id))
        assert snapshot is not None and snapshot.version == 2


async def test_a_page_load_or_tab_on_an_instance_without_a_tab_of_the_group_reads_the_store(
    cluster: Cluster,
) -> None:
    """Regression: an instance that had served the group (a POST, a tab since closed) kept its
    snapshot with nothing to tell it of later commits elsewhere, and served it as current."""
    async with cluster.browser() as (a, b):
        assert (await b.post_action("add", {"item": "b1"})).status_code == 200
        assert (await a.post_action("add", {"item": "a1"})).status_code == 200
        assert "<p>b1,a1</p>" in (await b.get("/")).text
        there = await tab(b)
        await there.close()
        assert (await a.post_action("add", {"item": "a2"})).status_code == 200
        again = await tab(b)
        assert "<p>b1,a1,a2</p>" in again.html()
        await again.close()


class SlowToSubscribe(InProcessBroadcaster):
    """Subscribes only once ``gate`` is open, as a Redis subscription waits for the server's
    confirmation; ``waiting`` is set when a subscription waits."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def subscribe(self, channel: str, handler: Any) -> None:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        await super().subscribe(channel, handler)


async def test_a_commit_made_while_a_tab_subscribes_reaches_it() -> None:
    """Regression: an instance read a group for a new tab, then subscribed to its channel. A
    commit made elsewhere in between was neither in what it had read nor heard on the channel,
    and the tab showed the older state until its next action."""
    broadcaster = SlowToSubscribe()
    cluster = Cluster(broadcaster=broadcaster)
    try:
        async with cluster.browser() as (a, b):
            here = await tab(a)
            broadcaster.gate.clear()
            opening = asyncio.ensure_future(tab(b))
            await broadcaster.waiting.wait()  # two has read the group and waits to subscribe
            await here.action("add", {"item": "milk"})
            broadcaster.gate.set()
            there = await opening
            assert "<p>milk</p>" in there.html()
            await there.action("add", {"item": "eggs"})  # no conflict to resolve first
            await until(here, "<p>milk,eggs</p>")
    finally:
        await cluster.close()


class SlowToRead(MemorySessionStore):
    """A memory store whose reads take a moment, as a Redis store's do."""

    async def get(self, key: str) -> Snapshot | None:
        await asyncio.sleep(0.01)
        return await super().get(key)


async def test_a_commit_made_while_tabs_subscribe_reaches_the_tab_that_waited_for_another() -> None:
    """Two tabs of a session open on an instance at once: the second waits until the first
    has subscribed to the session's channel and read the session again, so a commit made
    elsewhere meanwhile is in what both show."""
    broadcaster = SlowToSubscribe()
    cluster = Cluster(broadcaster=broadcaster, store=SlowToRead())
    try:
        async with cluster.browser() as (a, b):
            here = await tab(a)
            broadcaster.gate.clear()
            first = asyncio.ensure_future(tab(b))
            await broadcaster.waiting.wait()
            second = asyncio.ensure_future(tab(b))
            while len(cluster.apps[1].hub.views_of(b.group_id)) < 2:  # the second waits too
                await asyncio.sleep(0.001)
            await here.action("add", {"item": "milk"})
            broadcaster.gate.set()
            for there in await asyncio.gather(first, second):
                assert "<p>milk</p>" in there.html()
    finally:
        await cluster.close()


async def test_a_session_with_a_tab_open_outlives_the_stores_time_to_live() -> None:
    """Regression: an instance reads a group with an open tab only when told of a change, so
    a tab left open longer than the store's time to live without a change let the session
    expire there; a tab opened then on another instance showed an empty session (and its
    first change overwrote the first tab's). The groups with open tabs are read again well
    within the time to live."""
    ttl = 0.3
    cluster = Cluster(store=MemorySessionStore(ttl=ttl, sweep_interval=ttl))
    try:
        async with cluster.browser() as (a, b):
            here = await tab(a)
            await here.action("add", {"item": "milk"})
            await asyncio.sleep(3 * ttl)  # the tab stays open, nothing changes
            there = await tab(b)
            assert "<p>milk</p>" in there.html()
            await there.action("add", {"item": "eggs"})
            await until(here, "<p>milk,eggs</p>")
    finally:
        await cluster.close()


class Unreachable(MemorySessionStore):
    """A memory store whose reads fail while ``down``."""

    down = False

    async def get(self, key: str) -> Snapshot | None:
        if self.down:
            raise StoreUnavailable("down")
        return await super().get(key)


async def test_the_reads_that_keep_sessions_alive_do_not_pile_up_while_the_store_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One read of the served groups at a time: it retries with backoff until the store is
    back, and the next ones start only after it."""
    store = Unreachable(ttl=0.03)  # a read again every 10 ms
    cluster = Cluster(n=1, store=store)
    (app,) = cluster.apps
    caplog.set_level(logging.INFO, "livetemplate.hub")

    def reads() -> int:
        return sum("their time to live" in record.getMessage() for record in caplog.records)

    try:
        async with LiveClient(app, shutdown=False) as client:
            await tab(client)
            store.down = True
            before = reads()
            await asyncio.sleep(0.3)  # some thirty periods
            assert reads() - before == 1
            store.down = False
            while reads() - before < 3:  # the first ends at its next try; the next ones start again
                await asyncio.sleep(0.05)
    finally:
        await cluster.close()


async def test_a_publish_reaches_subscribers_on_every_instance(cluster: Cluster) -> None:
    one, two = cluster.apps
    async with LiveClient(one, shutdown=False) as a, LiveClient(two, shutdown=False) as b:
        here, there = await tab(a, "/?topic=news"), await tab(b, "/?topic=news")
        await one.publish("news", "note", {"text": "extra"})
        await until(here, "<i>extra</i>")
        await until(there, "<i>extra</i>")


async def test_a_push_changes_the_groups_fields_once_across_instances(cluster: Cluster) -> None:
    one = cluster.apps[0]
    async with cluster.browser() as (a, b):
        group_id = a.group_id
        here, there = await tab(a), await tab(b)
        await one.session(group_id).trigger_action("add", {"item": "once"})
        await until(here, "<p>once</p>")
        await until(there, "<p>once</p>")
        snapshot = await cluster.store.get(one.groups.key(group_id))
        assert snapshot is not None and snapshot.version == 1
        await here.close()  # now only the other instance has a tab of the group
        await one.session(group_id).trigger_action("add", {"item": "remote"})
        await until(there, "<p>once,remote</p>")


async def test_a_push_run_at_once_tells_the_other_instances_of_its_commit(cluster: Cluster) -> None:
    """The second push of a sync action runs at once here; its commit still reaches the
    other instance, whose own run of the push keeps the stored fields."""
    one = cluster.apps[0]
    async with cluster.browser() as (a, b):
        here, there = await tab(a), await tab(b)
        for expected in ("once", "once,twice"):
            await one.session(a.group_id).trigger_action("add", {"item": expected.rsplit(",", 1)[-1]})
            await until(here, f"<p>{expected}</p>")
            await until(there, f"<p>{expected}</p>")
        snapshot = await cluster.store.get(one.groups.key(a.group_id))
        assert snapshot is not None and snapshot.version == 2


async def test_a_topic_action_changes_a_browsers_fields_once_whatever_instances_hold_its_tabs(
    cluster: Cluster,
) -> None:
    one, two = cluster.apps
    async with cluster.browser() as (a, b):
        here, there = await tab(a, "/?topic=news"), await tab(b, "/?topic=news")
        other = await tab(LiveClient(two, shutdown=False), "/?topic=news")  # another browser
        for publisher, item in ((one, "first"), (two, "second")):
            await publisher.publish("news", "add", {"item": item})
        for ws in (here, there):
            await until(ws, "<p>first,second</p>")
        await until(other, "<p>first,second</p>")
        snapshot = await cluster.store.get(one.groups.key(a.group_id))
        assert snapshot is not None and snapshot.version == 2  # each message committed once
        await asyncio.sleep(0.05)  # what is still on its way lands
        for ws in (here, there):
            await ws.sync()
            assert "<p>first,second</p>" in ws.html()  # no tab shows an item twice later
        await other.close()


async def test_bad_and_own_messages_are_dropped(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    one, two = cluster.apps
    async with LiveClient(two, shutdown=False) as b:
        there = await tab(b, "/?topic=news")
        channel = "topic:news"
        with caplog.at_level(logging.WARNING, "livetemplate.hub"):
            await cluster.broadcaster.publish(channel, b"\x00 not an envelope")
            unknown = Envelope("gossip", "news", one.instance_id)
            await cluster.broadcaster.publish(channel, msgspec.msgpack.encode(unknown))
            own = Envelope("topic", "news", two.instance_id, "note", {"text": "echo"})
            await cluster.broadcaster.publish(channel, msgspec.msgpack.encode(own))
        assert "undecodable" in caplog.text and "unknown kind 'gossip'" in caplog.text
        await there.expect_nothing()


class Resubscribing(InProcessBroadcaster):
    """An in-process broadcaster that, like Redis pub/sub, can lose messages and say so."""

    def __init__(self) -> None:
        super().__init__()
        self.on_resubscribe: Any = None


async def test_after_the_broadcaster_resubscribed_every_view_catches_up() -> None:
    store = MemorySessionStore()
    lossy = Resubscribing()
    earlier: list[list[str]] = []

    async def app_hook(channels: list[str]) -> None:
        earlier.append(channels)

    lossy.on_resubscribe = app_hook  # a hook set before the app: it still runs
    one = livetemplate.mount(
        Controller(), State(), template=TEMPLATE, name="lossy", session_store=store, broadcaster=lossy, secret_key="k"
    )
    async with LiveClient(one) as client:
        here = await tab(client)
        # another instance committed while this one's subscriber was disconnected: no envelope came
        key = one.groups.key(client.group_id)
        snapshot = await store.get(key)
        await store.save(
            key, msgspec.msgpack.encode({"items": ["missed"]}), version=snapshot.version if snapshot else 0
        )
        await lossy.on_resubscribe(["group:lossy:x"])
        await until(here, "<p>missed</p>")
    assert earlier == [["group:lossy:x"]]


class Unreadable(MemorySessionStore):
    """A memory store that cannot be read for the keys in ``down`` (an outage of one shard)."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()

    async def get(self, key: str) -> Snapshot | None:
        if key in self.down:
            raise StoreUnavailable("the store is down")
        return await super().get(key)


async def test_a_resynchronisation_goes_on_past_a_group_it_cannot_read_and_reads_it_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: the first group the store could not read ended the resynchronisation, and
    left that group marked as read: its tab, and those after it, kept a commit they missed."""
    monkeypatch.setattr("livetemplate.hub.RESYNC_RETRY", 0.01)
    store = Unreadable()
    lossy = Resubscribing()
    one = livetemplate.mount(
        Controller(), State(), template=TEMPLATE, name="lossy", session_store=store, broadcaster=lossy, secret_key="k"
    )
    async with LiveClient(one) as first, LiveClient(one) as second:
        tabs = [await tab(first), await tab(second)]
        keys = [one.groups.key(client.group_id) for client in (first, second)]
        for key in keys:  # another instance committed while this one's subscriber was disconnected
            await store.save(key, msgspec.msgpack.encode({"items": ["missed"]}), version=0)
        store.down.add(keys[0])
        resync = asyncio.ensure_future(lossy.on_resubscribe(["group:lossy:x"]))
        await until(tabs[1], "<p>missed</p>")  # the other group is brought up to date
        group = one.groups.find(first.group_id)
        assert group is not None and group.stale and "missed" not in tabs[0].html()
        store.down.clear()  # the store answers again: the retry reads it
        await until(tabs[0], "<p>missed</p>")
        await resync
        assert not group.stale


class Slow(MemorySessionStore):
    """A memory store whose reads take a while (a round trip), counting those in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = self.most_at_once = 0
        self.read: list[str] = []

    async def get(self, key: str) -> Snapshot | None:
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        try:
            await asyncio.sleep(0.01)
            self.read.append(key)
            return await super().get(key)
        finally:
            self.reading -= 1


async def test_a_resynchronisation_reads_its_groups_a_batch_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Together, so that a store that pipelines them (Redis) reads thousands of groups in a few
    round trips instead of one each: the tabs are brought up to date that much sooner."""
    monkeypatch.setattr("livetemplate.hub.RESYNC_BATCH", 2)
    store = Slow()
    lossy = Resubscribing()
    one = livetemplate.mount(
        Controller(), State(), template=TEMPLATE, name="lossy", session_store=store, broadcaster=lossy, secret_key="k"
    )
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(LiveClient(one)) for _ in range(5)]
        for client in clients:
            await tab(client)
        store.read.clear()
        store.most_at_once = 0
        await lossy.on_resubscribe(["group:lossy:x"])
        assert sorted(store.read) == sorted(one.groups.key(client.group_id) for client in clients)
        assert store.most_at_once == 2


async def test_a_message_delivered_twice_runs_once(cluster: Cluster) -> None:
    one, two = cluster.apps
    async with LiveClient(two, shutdown=False) as b:
        there = await tab(b, "/?topic=news")
        envelope = msgspec.msgpack.encode(Envelope("topic", "news", one.instance_id, "x:1", "add", {"item": "a"}))
        await cluster.broadcaster.publish("topic:news", envelope)
        await cluster.broadcaster.publish("topic:news", envelope)  # a publish retried after a lost reply
        await until(there, "<p>a</p>")
        await there.expect_nothing()


class Yielding(InProcessBroadcaster):
    """Like redis-py, lets the event loop run other tasks before a message is on its way."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def publish(self, channel: str, message: bytes) -> None:
        await asyncio.sleep(0)
        self.events.append("sent")
        await super().publish(channel, message)


async def test_a_publish_leaves_for_the_other_instances_before_the_local_fan_out() -> None:
    """Regression: the local subscribers' runs were started first and, while the message
    waited for the broadcaster's connection, all ran: every other instance got it only after
    this one's whole fan-out (a second with 1,000 subscribers)."""
    events: list[str] = []

    class Noting(Controller):
        async def note(self, state: State, ctx: Context) -> State:  # type: ignore[override]
            events.append("delivered")
            state.note = ctx.get_str("text")
            return state

    broadcaster = Yielding(events)
    app = livetemplate.mount(
        Noting(), State(), template=TEMPLATE, broadcaster=broadcaster, open_topics=True, secret_key="k"
    )

    async def another_instance(message: bytes) -> None:
        return None

    await broadcaster.subscribe("topic:news", another_instance)  # someone else listens for the topic
    async with LiveClient(app) as client:
        tabs = [await tab(client, "/?topic=news") for _ in range(3)]
        await app.publish("news", "note", {"text": "hi"})
        for ws in tabs:
            await until(ws, "<i>hi</i>")
    assert events == ["sent", "delivered", "delivered", "delivered"]
