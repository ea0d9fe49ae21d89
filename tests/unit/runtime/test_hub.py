"""Server push and topics: ``ctx.session.trigger_action``, ``app.publish``, ``ctx.publish``,
subscriptions in mount and the topic ACL."""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import types
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, NotAvailable, Persist, Session
from livetemplate.broadcast import BroadcastUnavailable
from livetemplate.outbox import Outbox
from livetemplate.session import LiveView
from livetemplate.testing import LiveClient, LiveSocket, settle
from livetemplate.wire import Incoming
from tests.support.metrics import renders
from tests.support.sockets import Direct, Socket

pytestmark = pytest.mark.anyio

#: What a tab is told before it is closed with 1013 when its channels cannot be subscribed.
UNAVAILABLE = {"_general": "Live updates are unavailable right now; reload in a moment."}

TEMPLATE = '<p class="events">{{ events|join(",") }}</p><p class="note">{{ note }}</p>'


class State(msgspec.Struct):
    events: Annotated[list[str], Persist] = []
    note: str = ""


class Controller:
    """Subscribes in mount to the topics named in the query (``?topics=a,b``)."""

    def __init__(self) -> None:
        self.jobs: list[asyncio.Task[None]] = []
        self.sessions: list[Session] = []

    def mount(self, state: State, ctx: Context) -> State:
        for topic in filter(None, ctx.get_str("topics").split(",")):
            ctx.subscribe(ctx.self_topic if topic == "self" else topic)
        return state

    def record(self, state: State, ctx: Context) -> State:
        state.events.append(ctx.get_str("event", ctx.action))
        return state

    def headline(self, state: State, ctx: Context) -> State:
        state.note = ctx.get_str("text")
        return state

    async def start_job(self, state: State, ctx: Context) -> State:  # async: it starts a task on the loop
        state.events.append("started")
        self.jobs.append(asyncio.get_running_loop().create_task(self._job(ctx.session)))
        return state

    async def _job(self, session: Session) -> None:
        await asyncio.sleep(0.01)
        await session.trigger_action("headline", {"text": "job done"})

    async def start_inline(self, state: State, ctx: Context) -> State:
        state.events.append("start")
        await ctx.session.trigger_action("record", {"event": "follow"})
        return state

    def remember(self, state: State, ctx: Context) -> State:
        self.sessions.append(ctx.session)
        return state

    def announce(self, state: State, ctx: Context) -> State:
        state.events.append("announced")
        ctx.publish("news", "headline", {"text": ctx.get_str("text")})
        return state

    def announce_then_fail(self, state: State, ctx: Context) -> State:
        ctx.publish("news", "headline", {"text": "never"})
        raise RuntimeError("after publishing")

    def leave(self, state: State, ctx: Context) -> State:
        ctx.unsubscribe(ctx.get_str("topic"))
        return state

    def join(self, state: State, ctx: Context) -> State:
        ctx.subscribe(ctx.get_str("topic"))
        return state

    def join_and_record(self, state: State, ctx: Context) -> State:
        ctx.subscribe(ctx.get_str("topic"))
        return self.record(state, ctx)

    def join_then_fail(self, state: State, ctx: Context) -> State:
        ctx.subscribe(ctx.get_str("topic"))
        raise RuntimeError("after subscribing")


def make(controller: Controller | None = None, **options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(controller or Controller(), State(), template=TEMPLATE, **options)


def shown(ws: LiveSocket, name: str) -> str:
    html = ws.html()
    start = html.index(f'<p class="{name}">') + len(f'<p class="{name}">')
    return html[start : html.index("</p>", start)]


async def until(ws: LiveSocket, name: str, value: str) -> None:
    """Receive frames until the client shows ``value`` in paragraph ``name``."""
    while shown(ws, name) != value:
        frame = await ws.receive_json()
        assert "tree" in frame, frame


async def opened(client: LiveClient, url: str = "/") -> LiveSocket:
    ws = client.websocket(url)
    await ws.__aenter__()
    assert ws.accepted
    frame = await ws.receive_json()
    assert "tree" in frame, frame
    return ws


# -- ctx.session.trigger_action -------------------------------------------------------------------


async def test_trigger_from_a_background_task_reaches_every_tab() -> None:
    controller = Controller()
    app = make(controller)
    async with LiveClient(app) as client, LiveClient(app, shutdown=False) as stranger:
        await client.get("/")
        one, two = await opened(client), await opened(client)
        other = await opened(stranger)
        reply = await one.action("start_job")
        assert reply["meta"]["success"] is True  # the request has ended; the job runs on
        await asyncio.gather(*controller.jobs)
        for ws in (one, two):
            await until(ws, "note", "job done")
            await until(ws, "events", "started")
        await other.expect_nothing()
        assert shown(other, "note") == ""


async def test_trigger_pushes_have_no_action_in_meta() -> None:
    controller = Controller()
    async with LiveClient(make(controller)) as client:
        ws = await opened(client)
        await ws.action("remember")
        await controller.sessions[0].trigger_action("headline", {"text": "pushed"})
        frame = await ws.receive_json()
    assert frame == {"tree": {"1": "pushed"}, "meta": {"success": True, "errors": {}}}


async def test_trigger_from_outside_after_the_request() -> None:
    app = make()
    async with LiveClient(app) as client:
        await client.get("/")
        one, two = await opened(client), await opened(client)
        session = app.session(client.group_id)
        await session.trigger_action("record", {"event": "tick"})
        for ws in (one, two):
            await until(ws, "events", "tick")
        await session.trigger_action("record", {"event": "tock"})
        for ws in (one, two):
            await until(ws, "events", "tick,tock")  # the persisted list changed once per trigger
        page = (await client.get("/")).text
    assert '<p class="events">tick,tock</p>' in page


async def test_trigger_without_connections_is_not_available() -> None:
    controller = Controller()
    app = make(controller)
    async with LiveClient(app) as client:
        await client.post_action("remember")
        with pytest.raises(NotAvailable):
            await controller.sessions[0].trigger_action("record")
        with pytest.raises(NotAvailable):
            await app.session("no-such-group").trigger_action("record")


async def test_trigger_inside_an_action_runs_after_it_commits() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        one, two = await opened(client), await opened(client)
        reply = await one.action("start_inline")
        assert reply["meta"] == {"success": True, "errors": {}, "action": "start_inline"}
        assert shown(one, "events") == "start"
        for ws in (one, two):
            await until(ws, "events", "start,follow")
        await settle()
        await one.expect_nothing()
        page = (await client.get("/")).text
    assert '<p class="events">start,follow</p>' in page


async def test_trigger_inside_an_http_action_reaches_the_tabs() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        ws = await opened(client)
        response = await client.post_action("start_inline")
        assert response.json()["meta"]["success"] is True
        await until(ws, "events", "start,follow")


# -- app.publish and subscriptions ------------------------------------------------------------------


async def test_publish_reaches_the_subscribers_only() -> None:
    app = make(open_topics=True)
    async with LiveClient(app) as alice, LiveClient(app, shutdown=False) as bob:
        a = await opened(alice, "/?topics=news")
        b = await opened(bob, "/?topics=news,sports")
        quiet = await opened(alice, "/")
        await app.publish("news", "headline", {"text": "extra"})
        await until(a, "note", "extra")
        await until(b, "note", "extra")
        await quiet.expect_nothing()
        await app.publish("sports", "headline", {"text": "goal"})
        await until(b, "note", "goal")
        await a.expect_nothing()
        await app.publish("weather", "headline", {"text": "rain"})  # nobody listens
        await b.expect_nothing()


async def test_each_subscriber_runs_the_action_on_its_own_state() -> None:
    app = make(open_topics=True)
    async with LiveClient(app) as alice, LiveClient(app, shutdown=False) as bob:
        a = await opened(alice, "/?topics=news")
        b = await opened(bob, "/?topics=news")
        await a.action("record", {"event": "mine"})
        await app.publish("news", "record", {"event": "shared"})
        await until(a, "events", "mine,shared")
        await until(b, "events", "shared")


async def test_ctx_publish_is_delivered_after_commit() -> None:
    app = make(open_topics=True)
    async with LiveClient(app) as alice, LiveClient(app, shutdown=False) as bob:
        a = await opened(alice, "/?topics=news")
        b = await opened(bob, "/?topics=news")
        reply = await a.action("announce", {"text": "hello"})
        assert reply["meta"]["success"] is True
        await until(b, "note", "hello")
        await until(a, "note", "hello")  # the publisher's own subscription too
        failed = await a.action("announce_then_fail")
        assert failed["meta"]["success"] is False
        await b.expect_nothing(0.1)
        assert shown(b, "note") == "hello"


async def test_ctx_publish_from_an_http_action() -> None:
    app = make(open_topics=True)
    async with LiveClient(app) as alice, LiveClient(app, shutdown=False) as bob:
        b = await opened(bob, "/?topics=news")
        response = await alice.post_action("announce", {"text": "via http"})
        assert response.json()["meta"]["success"] is True
        await until(b, "note", "via http")


async def test_unsubscribe_and_cleanup_on_close() -> None:
    app = make(open_topics=True)
    broadcaster = app.broadcaster
    assert isinstance(broadcaster, livetemplate.InProcessBroadcaster)
    async with LiveClient(app) as client:
        ws = await opened(client, "/?topics=news")
        await ws.action("leave", {"topic": "news"})  # left once the reply is in
        await app.publish("news", "headline", {"text": "missed"})
        await ws.expect_nothing()
        await ws.action("join", {"topic": "alerts"})
        await app.publish("alerts", "headline", {"text": "alert"})
        await until(ws, "note", "alert")
        await ws.close()
        await settle()
        assert broadcaster.channels() == []


class LikeRedis(livetemplate.InProcessBroadcaster):
    """Subscribes as the Redis broadcaster does: the first subscription of a channel holds
    once Redis confirms it, a round trip later (50 ms; for the channels starting with
    ``held``, once ``confirm`` is set); one made meanwhile returns at once, before it holds.
    ``refuse``: the confirmation of a held channel is an error (a cluster whose slots cannot
    be read)."""

    def __init__(self, held: str = "", refuse: bool = False) -> None:
        super().__init__()
        self.held, self.refuse = held, refuse
        self.confirm = asyncio.Event()
        self.confirming: dict[str, list[Any]] = {}  # by channel: the handlers waiting for it

    async def subscribe(self, channel: str, handler: Any) -> None:
        waiting = self.confirming.get(channel)
        if waiting is not None:
            waiting.append(handler)
            return
        waiting = self.confirming[channel] = [handler]
        held = bool(self.held) and channel.startswith(self.held)
        if held:
            await self.confirm.wait()
        else:
            await self.confirmed(channel)
        del self.confirming[channel]
        if held and self.refuse:
            raise BroadcastUnavailable(f"cannot subscribe {channel!r}")
        for each in waiting:
            await super().subscribe(channel, each)

    async def confirmed(self, channel: str) -> None:
        """Redis's confirmation of the first subscription of ``channel``: a round trip."""
        await asyncio.sleep(0.05)

    async def subscribing(self, prefix: str) -> None:
        """Wait until a subscription of a channel starting with ``prefix`` is on its way."""
        while not any(channel.startswith(prefix) for channel in self.confirming):
            await asyncio.sleep(0.001)


async def test_a_client_hears_every_message_on_its_topics_once_it_has_the_page() -> None:
    """The subscriptions of mount hold before the first tree goes out, and those of an action
    before its reply: a message published as soon as the client has either reaches it."""
    app = make(open_topics=True, broadcaster=LikeRedis())
    async with LiveClient(app) as client:
        ws = await opened(client, "/?topics=news")
        await app.publish("news", "headline", {"text": "right after the page"})
        await until(ws, "note", "right after the page")
        assert (await ws.action("join", {"topic": "alerts"}))["meta"]["success"]
        await app.publish("alerts", "headline", {"text": "right after the reply"})
        await until(ws, "note", "right after the reply")


async def second_tab_while_subscribing(
    client: LiveClient, broadcaster: LikeRedis, channel: str
) -> tuple[LiveSocket, LiveSocket]:
    """Open a tab of ``/?topics=news`` and, while its subscription of ``channel`` is on its
    way, a second one, which gets nothing until then; then let the subscription be confirmed."""
    first = client.websocket("/?topics=news")
    await first.__aenter__()
    await broadcaster.subscribing(channel)
    second = client.websocket("/?topics=news")
    await second.__aenter__()
    await second.expect_nothing()
    broadcaster.confirm.set()
    return first, second


@pytest.mark.parametrize("channel", ["topic:", "group:"])
async def test_a_tab_opened_while_its_channel_is_being_subscribed_waits_until_it_holds(channel: str) -> None:
    """A second tab joining a channel whose subscription another tab started is not given its
    page before the subscription holds (the broadcaster returns at once for it), and the
    channel is subscribed once: unsubscribed once both tabs are gone."""
    broadcaster = LikeRedis(held=channel)
    app = make(open_topics=True, broadcaster=broadcaster)
    async with LiveClient(app) as client:
        first, second = await second_tab_while_subscribing(client, broadcaster, channel)
        for ws in (first, second):
            assert "s" in (await ws.receive_json())["tree"]
        await app.publish("news", "headline", {"text": "heard"})
        for ws in (first, second):
            await until(ws, "note", "heard")
            await ws.close()
        await settle()
        assert app.hub.views == set()
        assert app.broadcaster.channels() == []


@pytest.mark.parametrize("channel", ["topic:", "group:"])
async def test_tabs_waiting_for_a_subscription_that_fails_are_closed_with_try_again(channel: str) -> None:
    """The tabs that waited for another tab's subscription of a channel fail with it: none is
    left with a page that would go stale unseen, and the hub keeps none of them."""
    broadcaster = LikeRedis(held=channel, refuse=True)
    app = make(open_topics=True, broadcaster=broadcaster)
    async with LiveClient(app) as client:
        first, second = await second_tab_while_subscribing(client, broadcaster, channel)
        for ws in (first, second):
            assert await ws.receive_close() == 1013
        await settle()
        assert app.hub.views == set()
        assert app.broadcaster.channels() == []


async def test_a_tab_gets_its_page_before_what_changed_while_its_topics_were_subscribed() -> None:
    """The group's persisted fields change while a new tab waits for mount's topic to be
    subscribed: the tab gets its complete page first and the change after it, not a diff
    it cannot place followed by a page without the change."""
    broadcaster = LikeRedis(held="topic:")
    app = make(open_topics=True, broadcaster=broadcaster)
    async with LiveClient(app) as client:
        one = await opened(client)
        two = client.websocket("/?topics=news")
        await two.__aenter__()
        await broadcaster.subscribing("topic:")
        assert (await one.action("record", {"event": "meanwhile"}))["meta"]["success"]
        broadcaster.confirm.set()
        assert "s" in (await two.receive_json())["tree"]
        await until(two, "events", "meanwhile")


async def test_an_action_reply_goes_out_before_a_push_made_while_its_topic_was_subscribed() -> None:
    """A message on a topic the tab has arrives while its action's new topic is being
    subscribed: the reply, rendered first, is sent first."""
    broadcaster = LikeRedis(held="topic:alerts")
    app = make(open_topics=True, broadcaster=broadcaster)
    async with LiveClient(app) as client:
        ws = await opened(client, "/?topics=news")
        await ws.send_json({"action": "join", "data": {"topic": "alerts"}})
        await broadcaster.subscribing("topic:alerts")
        await app.publish("news", "headline", {"text": "meanwhile"})
        broadcaster.confirm.set()
        assert (await ws.receive_json())["meta"]["action"] == "join"
        await until(ws, "note", "meanwhile")


class Loading(Controller):
    """A mount that subscribes, then loads what the topic's messages change (until the test
    sets ``loaded``); awaiting the subscription first with ``?wait=1``, failing after the
    load with ``?fail=1``. Over HTTP it loads nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.loading, self.loaded = asyncio.Event(), asyncio.Event()

    async def mount(self, state: State, ctx: Context) -> State:
        subscribed = ctx.subscribe("news")
        if ctx.get_bool("wait"):
            await subscribed
        if not ctx.is_http:
            self.loading.set()
            await self.loaded.wait()
        if ctx.get_bool("fail"):
            raise RuntimeError("the load failed")
        return state


async def mounting(client: LiveClient, controller: Loading, url: str) -> LiveSocket:
    """A tab of ``url`` whose mount is loading."""
    ws = client.websocket(url)
    await ws.__aenter__()
    await asyncio.wait_for(controller.loading.wait(), 3)
    return ws


@pytest.mark.parametrize(
    ("broadcaster", "url"),
    [(livetemplate.InProcessBroadcaster, "/"), (LikeRedis, "/?wait=1")],
    ids=["in-process", "like-redis-awaited"],
)
async def test_a_message_published_while_mount_loads_reaches_the_tab_after_its_page(
    broadcaster: Callable[[], livetemplate.InProcessBroadcaster], url: str
) -> None:
    """Mount subscribes, then loads: a message published meanwhile (what the load may have
    missed) is not lost. It runs once the page is out, and its update follows the page.
    With a shared broadcaster, mount awaits the subscription before it loads."""
    controller = Loading()
    app = make(controller, open_topics=True, broadcaster=broadcaster())
    async with LiveClient(app) as client:
        assert (await client.get(url)).status_code == 200  # over HTTP there is nothing to wait for
        ws = await mounting(client, controller, url)
        await app.publish("news", "headline", {"text": "while loading"})
        controller.loaded.set()
        assert "s" in (await ws.receive_json())["tree"]
        await until(ws, "note", "while loading")


async def test_a_mount_that_fails_after_subscribing_leaves_the_topic() -> None:
    """The topic was joined as mount ran; mount failed, so nothing is subscribed: the hub
    leaves the topic and the channel, and later messages do not reach the tab."""
    controller = Loading()
    app = make(controller, open_topics=True, broadcaster=LikeRedis())
    async with LiveClient(app) as client:
        ws = await mounting(client, controller, "/?wait=1&fail=1")
        assert any(channel.startswith("topic:") for channel in app.broadcaster.channels())
        controller.loaded.set()
        assert "s" in (await ws.receive_json())["tree"]
        await settle()
        assert not any(channel.startswith("topic:") for channel in app.broadcaster.channels())
        await app.publish("news", "headline", {"text": "not subscribed"})
        await ws.expect_nothing()
        assert shown(ws, "note") == ""


async def test_a_tab_leaving_does_not_wait_for_an_early_subscription_the_closing_hub_cancelled() -> None:
    """The hub closes in the turn a run joined a new topic: the subscription's task is
    cancelled before it ran (its body never runs). The tab's leave does not wait for it for ever."""
    app = make(open_topics=True, broadcaster=LikeRedis())
    async with LiveClient(app) as client:
        await opened(client)
        (view,) = app.hub.views
        app.hub._join_early("late", view)  # what ctx.subscribe("late") does in a run
        for task in app.hub._tasks:  # as close() does, when nothing it awaits first lets them start
            task.cancel()
        await app.hub.close()
        await asyncio.wait_for(app.hub.detach(view), 1)
        assert "late" not in app.hub._by_topic


class Blocking(Controller):
    """A sync mount that subscribes, then blocks its worker thread until ``loaded``."""

    def __init__(self) -> None:
        super().__init__()
        self.loading, self.loaded = threading.Event(), threading.Event()

    def mount(self, state: State, ctx: Context) -> State:
        ctx.subscribe("news")
        self.loading.set()
        self.loaded.wait(5)
        return state


async def test_a_sync_mount_in_a_worker_thread_joins_its_topic_as_it_runs() -> None:
    controller = Blocking()
    app = make(controller, open_topics=True, sync_actions="thread")
    async with LiveClient(app) as client:
        ws = client.websocket("/")
        await ws.__aenter__()
        while not controller.loading.is_set():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)  # the join, which the thread asked for before it said so, has run
        await app.publish("news", "headline", {"text": "while blocked"})
        controller.loaded.set()
        assert "s" in (await ws.receive_json())["tree"]
        await until(ws, "note", "while blocked")


class Refusing(livetemplate.InProcessBroadcaster):
    """Cannot subscribe the channels whose name starts with ``refused`` (a Redis Cluster
    whose slots cannot be read)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def subscribe(self, channel: str, handler: Any) -> None:
        if channel.startswith(self.refused):
            raise BroadcastUnavailable(f"cannot subscribe {channel!r}")
        await super().subscribe(channel, handler)


@pytest.mark.parametrize(("refused", "mounted"), [("topic:", True), ("group:", False)])
async def test_a_channel_that_cannot_be_subscribed_closes_the_connection_with_try_again(
    refused: str, mounted: bool
) -> None:
    """Without its subscriptions a page would go stale unseen: the client is told, the
    connection closed with 1013 (try again later) and the tab cleaned up. A page already
    rendered (mount's topic failed) goes out first: its renderer holds it as sent."""
    app = make(open_topics=True, broadcaster=Refusing(refused))
    async with LiveClient(app) as client:
        ws = client.websocket("/?topics=news")
        await ws.__aenter__()
        if mounted:
            assert "s" in (await ws.receive_json())["tree"]
        error = await ws.receive_json()
        assert error["meta"]["errors"] == UNAVAILABLE
        assert await ws.receive_close() == 1013
        await settle()
        assert app.hub.views == set()
        assert app.broadcaster.channels() == []


async def test_an_action_whose_topic_cannot_be_subscribed_gets_its_reply_then_1013() -> None:
    """The reply was rendered (the client's tree is counted as updated): it goes out, then
    the client is told and closed."""
    app = make(open_topics=True, broadcaster=Refusing("topic:"))
    async with LiveClient(app) as client:
        ws = await opened(client)
        await ws.send_json({"action": "join", "data": {"topic": "news"}})
        assert (await ws.receive_json())["meta"]["success"]
        error = await ws.receive_json()
        assert error["meta"]["errors"] == UNAVAILABLE
        assert await ws.receive_close() == 1013


async def test_the_topics_subscribed_before_one_that_cannot_be_are_left_when_the_tab_closes() -> None:
    """Mount joins twenty topics and one that cannot be subscribed (taken in no set order):
    those joined before the failure are unsubscribed with the tab, not kept for ever."""
    app = make(open_topics=True, broadcaster=Refusing("topic:refused"))
    topics = ",".join([*(f"news{index}" for index in range(20)), "refused"])
    async with LiveClient(app) as client:
        ws = client.websocket(f"/?topics={topics}")
        await ws.__aenter__()
        assert await ws.receive_close() == 1013
        await settle()
        assert app.hub.views == set()
        assert app.broadcaster.channels() == []


async def test_an_action_whose_topic_cannot_be_subscribed_still_refreshes_the_other_tabs() -> None:
    """Its change was committed: the group's other tabs are brought up to date all the same."""
    app = make(open_topics=True, broadcaster=Refusing("topic:"))
    async with LiveClient(app) as client:
        one, two = await opened(client), await opened(client)
        await one.send_json({"action": "join_and_record", "data": {"topic": "news", "event": "joined"}})
        assert await one.receive_close() == 1013
        await until(two, "events", "joined")


async def test_a_pushed_run_whose_topic_cannot_be_subscribed_closes_its_tab_and_not_the_broadcast() -> None:
    """A topic message's run subscribes a topic that cannot be: each tab of the group still
    runs it and gets its update, then is told and closed (1013), as for its own action."""
    app = make(open_topics=True, broadcaster=Refusing("topic:refused"))
    async with LiveClient(app) as client:
        tabs = [await opened(client, "/?topics=news"), await opened(client, "/?topics=news")]
        await app.publish("news", "join_and_record", {"topic": "refused", "event": "pushed"})
        for ws in tabs:
            await until(ws, "events", "pushed")
            error = await ws.receive_json()
            assert error["meta"]["errors"] == UNAVAILABLE
            assert await ws.receive_close() == 1013


async def test_a_pushed_run_that_fails_after_subscribing_leaves_the_topic() -> None:
    app = make(open_topics=True)
    async with LiveClient(app) as client:
        ws = await opened(client, "/?topics=news")
        await app.publish("news", "join_then_fail", {"topic": "alerts"})
        assert (await ws.receive_json())["meta"]["success"] is False
        await settle()
        assert [channel for channel in app.broadcaster.channels() if channel.startswith("topic:")] == ["topic:news"]
        await app.publish("alerts", "headline", {"text": "not subscribed"})
        await ws.expect_nothing()


@pytest.mark.parametrize("topic", ["bad topic", "a//b", "", "news/", "*", "lvt:session:"])
async def test_invalid_topic_names(topic: str) -> None:
    app = make(open_topics=True)
    async with LiveClient(app) as client:
        ws = await opened(client)
        reply = await ws.action("join", {"topic": topic})
        assert reply["meta"]["success"] is False
        with pytest.raises(ValueError, match="invalid topic"):
            await app.publish(topic, "headline")


# -- the topic ACL ------------------------------------------------------------------------------------


async def test_topics_are_denied_by_default() -> None:
    app = make()
    async with LiveClient(app) as client:
        ws = client.websocket("/?topics=news")
        await ws.__aenter__()
        assert ws.accepted
        error = await ws.receive_json()
        assert error == {"type": "error", "code": "topic_forbidden", "topic": "news"}
        first = await ws.receive_json()
        assert "s" in first["tree"]
        await ws.send_json({"action": "__ping__"})
        assert await ws.receive_json() == {"pong": True}  # the connection stays open
        reply = await ws.action("record", {"event": "still works"})
        assert reply["meta"]["success"] is True
        await app.publish("news", "headline", {"text": "leak"})
        await ws.expect_nothing()


async def test_a_denied_subscribe_in_an_action() -> None:
    async with LiveClient(make()) as client:
        ws = await opened(client)
        await ws.send_json({"action": "join", "data": {"topic": "secret"}})
        error = await ws.receive_json()
        reply = await ws.receive_json()
    assert error == {"type": "error", "code": "topic_forbidden", "topic": "secret"}
    assert reply["meta"]["success"] is False
    assert "secret" in reply["meta"]["errors"]["_general"]


async def test_the_groups_own_topic_is_allowed() -> None:
    app = make()
    async with LiveClient(app) as client, LiveClient(app, shutdown=False) as stranger:
        await client.get("/")
        one, two = await opened(client, "/?topics=self"), await opened(client, "/?topics=self")
        other = await opened(stranger, "/?topics=self")
        group_id = client.group_id
        await app.publish(f"lvt:session:{group_id}", "headline", {"text": "for you"})
        await until(one, "note", "for you")
        await until(two, "note", "for you")
        await other.expect_nothing()


async def test_another_groups_topic_is_denied() -> None:
    app = make()
    async with LiveClient(app) as victim, LiveClient(app, shutdown=False) as spy:
        await victim.get("/")
        topic = f"lvt:session:{victim.http.cookies['livetemplate-id']}"
        ws = await opened(spy)
        await ws.send_json({"action": "join", "data": {"topic": topic}})
        assert await ws.receive_json() == {"type": "error", "code": "topic_forbidden", "topic": topic}


async def test_open_topics_allows_all() -> None:
    async with LiveClient(make(open_topics=True)) as client:
        ws = await opened(client, "/?topics=news,a/b/c,x-y_z")
        await ws.expect_nothing()


async def test_topic_acl_decides() -> None:
    calls: list[tuple[str, bool, str]] = []

    def acl(topic: str, ctx: Context) -> bool:
        calls.append((topic, ctx.is_http, ctx.group_id))
        return topic.startswith("room/")

    app = make(topic_acl=acl)
    async with LiveClient(app) as client:
        await client.get("/")
        ws = client.websocket("/?topics=room/1,lobby,self")
        await ws.__aenter__()
        error = await ws.receive_json()
        await ws.receive_json()
        assert error == {"type": "error", "code": "topic_forbidden", "topic": "lobby"}
        group_id = client.group_id
        assert calls == [("room/1", False, group_id), ("lobby", False, group_id)]  # not asked for self
        joined = await ws.action("join", {"topic": "room/2"})
        assert joined["meta"]["success"] is True
        await settle()
        await app.publish("room/2", "headline", {"text": "in room 2"})
        await until(ws, "note", "in room 2")


def _raises(topic: str, ctx: Context) -> bool:
    raise RuntimeError("acl backend down")


@pytest.mark.parametrize("acl", [_raises])
async def test_a_failing_acl_denies(acl: Callable[[str, Context], bool]) -> None:
    async with LiveClient(make(topic_acl=acl)) as client:
        ws = await opened(client)
        reply = await ws.action("join", {"topic": "room/1"})
        assert reply["meta"]["success"] is False
        await ws.send_json({"action": "__ping__"})
        assert await ws.receive_json() == {"pong": True}


async def test_subscribing_over_http_is_a_no_op() -> None:
    async with LiveClient(make()) as client:
        page = await client.get("/?topics=news")
        posted = await client.post_action("join", {"topic": "news"})
    assert page.status_code == 200
    assert posted.json()["meta"]["success"] is True


# -- delivery does not wait for anyone ------------------------------------------------------------------


async def test_a_client_that_stops_reading_delays_nobody() -> None:
    app = make(open_topics=True)
    clients = [LiveClient(app, shutdown=False) for _ in range(6)]
    readers = [await opened(client, "/?topics=news") for client in clients[:5]]
    stuck = clients[5].websocket("/?topics=news")
    await stuck.__aenter__()
    await stuck.receive_json()
    stuck.stop_reading()
    events = [str(i) for i in range(20)]
    for event in events:
        await app.publish("news", "record", {"event": event})
    for ws in readers:
        await until(ws, "events", ",".join(events))
    assert shown(stuck, "events") == ""  # it has read nothing meanwhile
    stuck.resume_reading()
    await until(stuck, "events", ",".join(events))  # and then everything, in order
    for client in clients:
        await client.__aexit__(None, None, None)
    await app.shutdown()


async def test_shutdown_does_not_wait_for_a_client_that_stopped_reading() -> None:
    app = make(open_topics=True, shutdown_timeout=1)
    async with LiveClient(app, shutdown=False) as client:
        ws = await opened(client, "/?topics=news")
        ws.stop_reading()
        await app.publish("news", "record", {"event": "x" * 100_000})
        await asyncio.wait_for(app.shutdown(), timeout=5)
        assert ws.close_code == 1012


async def test_a_push_commits_in_the_first_run_that_changes_the_group() -> None:
    """Two tabs of a group with nothing stored yet; only the second tab's run changes the
    persisted fields: it commits, and the first tab takes the change."""

    class Picky(Controller):
        def note_it(self, state: State, ctx: Context) -> State:
            state.note = ctx.get_str("note")
            return state

        def record_if_noted(self, state: State, ctx: Context) -> State:
            if state.note:
                state.events.append("noted")
            return state

    controller = Picky()
    async with LiveClient(make(controller)) as client:
        one, two = await opened(client), await opened(client)
        await one.action("remember")
        await two.action("note_it", {"note": "yes"})
        await controller.sessions[0].trigger_action("record_if_noted")
        await until(two, "events", "noted")
        await until(one, "events", "noted")


class Slow(Controller):
    async def record_slowly(self, state: State, ctx: Context) -> State:
        await asyncio.sleep(0.002)  # waits: the broadcast's other runs get tasks of their own
        state.events.append(ctx.get_str("event"))
        return state


async def test_a_push_never_overtakes_an_earlier_broadcast_that_waits() -> None:
    controller = Slow()
    app = make(controller, open_topics=True)
    clients = [LiveClient(app, shutdown=False) for _ in range(5)]
    tabs = [await opened(client, "/?topics=news") for client in clients]
    for ws in tabs:
        await ws.action("remember")
    await app.publish("news", "record_slowly", {"event": "first"})  # every run waits
    for session in controller.sessions:  # at once, while those runs are under way
        await session.trigger_action("record", {"event": "second"})
    for ws in tabs:
        while shown(ws, "events").count(",") < 1:
            assert "tree" in await ws.receive_json()
        assert shown(ws, "events") == "first,second"
    for client in clients:
        await client.__aexit__(None, None, None)
    await app.shutdown()


# -- what a broadcast leaves for the garbage collector ---------------------------------------------


class Tally(msgspec.Struct):
    count: Annotated[int, Persist] = 0


class Counting:
    def mount(self, state: Tally, ctx: Context) -> Tally:
        ctx.subscribe("tick")
        return state

    def bump(self, state: Tally, ctx: Context) -> Tally:
        state.count += 1
        return state


async def open_tabs(app: livetemplate.LiveApp, writers: list[Callable[..., bool]]) -> list[LiveView]:
    """A tab of its own session group for each of ``writers`` (its outbox's direct write)."""
    rt, views = app.runtime, []
    for index, write_now in enumerate(writers):
        group = await rt.groups.get(f"group-{index:04d}")
        outbox = Outbox(Socket(), direct=Direct(write_now))
        view = LiveView(rt.runner, rt.pipeline, group, query={}, outbox=outbox)
        await app.hub.attach(view)
        await app.hub.settle(view, (await view.open()).outcome)
        views.append(view)
    return views


async def broadcast(app: livetemplate.LiveApp) -> None:
    """Publish ``bump`` on ``tick`` and wait until every tab has run it."""
    await app.publish("tick", "bump")
    while app.hub.fan_out._worker or app.hub._tasks:
        await asyncio.sleep(0)


async def test_a_broadcast_leaves_the_collector_nothing_to_walk_per_tab() -> None:
    """Every object a broadcast leaves alive is walked by each full collection from then on
    (the heap policy freezes what connections hold, not what broadcasts renew): snapshots and
    the memory store's entries are never tracked, and the renderer's remembered values are
    tuples of atoms, which the collector stops tracking once it has seen them."""
    app = livetemplate.mount(Counting(), Tally(), template="<p>{{ count }}</p>", open_topics=True)
    hub, tabs = app.hub, 100
    await open_tabs(app, [lambda *frames: True for _ in range(tabs)])
    await broadcast(app)
    gc.collect()
    gc.freeze()
    try:
        await broadcast(app)
        gc.collect()
        left = [o for o in gc.get_objects() if not isinstance(o, (types.FrameType, types.CoroutineType))]
        assert all(view.state.count == 2 for view in hub.views)
        assert len(left) < tabs // 4, collections.Counter(type(o).__name__ for o in left).most_common(5)
    finally:
        gc.unfreeze()
        await app.shutdown()


async def test_a_broadcast_makes_nothing_per_tab_before_its_runs() -> None:
    """A broadcast's parts for the session groups are made as the fan-out takes them: made up
    front, thousands of them lived through the young generation's collections while the
    fan-out ran and were walked again by the older generations'."""
    app = livetemplate.mount(Counting(), Tally(), template="<p>{{ count }}</p>", open_topics=True)
    tabs = 300
    await open_tabs(app, [lambda *frames: True for _ in range(tabs)])
    gc.collect()
    gc.disable()  # the collector's count is then the tracked objects made and not freed
    try:
        before = gc.get_count()[0]
        await app.publish("tick", "bump")  # scheduled: the fan-out has not run yet
        made = gc.get_count()[0] - before
        assert made < tabs // 10, made
        while app.hub.fan_out._worker or app.hub._tasks:
            await asyncio.sleep(0)
        assert all(view.state.count == 1 for view in app.hub.views)
    finally:
        gc.enable()
        await app.shutdown()


# -- shared renders ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False])
async def test_a_broadcast_renders_once_for_tabs_brought_to_equal_states(shared: bool) -> None:
    """Tabs of different groups with equal states get the same frame bytes from one render
    and share what their clients hold; a tab that acts on its own copies it first."""
    app = livetemplate.mount(
        Counting(), Tally(), template="<p>{{ count }}</p>", open_topics=True, shared_renders=shared
    )
    rt = app.runtime
    received: list[list[bytes]] = [[] for _ in range(10)]
    views = await open_tabs(app, [lambda *f, frames=frames: not frames.extend(f) for frames in received])
    sent = dict(zip(views, received, strict=True))
    opened = renders(rt.metrics)
    await broadcast(app)
    await broadcast(app)
    rendered = renders(rt.metrics) - opened
    pushed = [b'{"tree":{"0":"%d"},"meta":{"success":true,"errors":{}}}' % count for count in (1, 2)]
    assert all(frames == pushed for frames in sent.values())
    helds = {id(view.renderer.held) for view in views}
    if shared:
        # the tabs opened onto the same page share what they hold from the start: one render a broadcast
        assert rendered == 2 and len(helds) == 1
        assert sent[views[0]][1] is sent[views[1]][1]  # the same bytes object
    else:
        assert rendered == 20 and len(helds) == 10
    mine = views[3]
    reply = await mine.handle(Incoming(action="bump"))
    assert reply.frames[0].startswith(b'{"tree":{"0":"3"}')
    await broadcast(app)
    assert [frames[-1][:18] for frames in sent.values()] == [
        b'{"tree":{"0":"4"},' if view is mine else b'{"tree":{"0":"3"},' for view in views
    ]
    await app.shutdown()


class CountedPushes:
    """Counts the pushes that run the async way (``LiveView.push``), the others running at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        push = LiveView.push

        def counted(view: LiveView, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return push(view, *args, **kwargs)

        monkeypatch.setattr(LiveView, "push", counted)


async def test_a_broadcast_of_a_sync_action_seen_before_runs_at_once_to_the_same_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second broadcast of a sync action runs as plain calls: each tab of a session
    group shows it, the group commits once, and a tab of the group not subscribed is refreshed."""
    pushes = CountedPushes(monkeypatch)
    app = make(open_topics=True)
    async with LiveClient(app) as alice, LiveClient(app, shutdown=False) as bob:
        tabs = [await opened(alice, "/?topics=news"), await opened(alice, "/?topics=news")]
        other_tab = await opened(alice, "/")
        theirs = await opened(bob, "/?topics=news")
        await app.publish("news", "record", {"event": "one"})
        for ws in (*tabs, other_tab, theirs):
            await until(ws, "events", "one")
        assert pushes.count >= 1  # not seen yet: the async way until one run of it is over
        seen = pushes.count
        await app.publish("news", "record", {"event": "two"})
        for ws in (*tabs, other_tab, theirs):
            await until(ws, "events", "one,two")
        assert pushes.count == seen  # all at once
        (group,) = {view.group for view in app.hub.views if view.outbox is not None and view.topics == set()}
        assert group.snapshot is not None and group.snapshot.version == 2  # one commit a broadcast


@pytest.mark.parametrize("topic", ["alerts", "refused"])
async def test_a_run_at_once_that_joins_a_topic_hands_over_to_subscribe_it(
    monkeypatch: pytest.MonkeyPatch, topic: str
) -> None:
    """The run is settled the async way: the topic holds, or the tab is told and closed."""
    pushes = CountedPushes(monkeypatch)
    app = make(open_topics=True, broadcaster=Refusing("topic:refused"))
    async with LiveClient(app) as client:
        ws = await opened(client, "/?topics=news")
        await app.publish("news", "join_and_record", {"topic": "news", "event": "seen"})  # the async way
        await until(ws, "events", "seen")
        await app.publish("news", "join_and_record", {"topic": topic, "event": "joined"})
        await until(ws, "events", "seen,joined")
        assert pushes.count == 1  # at once
        if topic == "refused":
            assert (await ws.receive_json())["meta"]["errors"] == UNAVAILABLE
            assert await ws.receive_close() == 1013
        else:
            await app.publish(topic, "headline", {"text": "heard"})
            await until(ws, "note", "heard")


async def test_a_group_run_at_once_hands_the_rest_over_at_a_busy_tab(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's first tab runs at once; its second, found locked, is left to the
    coroutine handed back, which runs it once the lock is free."""
    pushes = CountedPushes(monkeypatch)
    app = make(open_topics=True)
    async with LiveClient(app) as client:
        tabs = [await opened(client, "/?topics=news"), await opened(client, "/?topics=news")]
        await app.publish("news", "record", {"event": "one"})
        for ws in tabs:
            await until(ws, "events", "one")
        first, second = app.hub.views_of(next(iter(app.hub.views)).group.id)
        seen = pushes.count
        await second.lock.__aenter__()
        rest = app.hub._deliver_at_once([first, second], "record", {"event": "two"}, True)
        assert rest is not None and pushes.count == seen
        assert first.state.events == ["one", "two"] and second.state.events == ["one"]
        second.lock.release()
        await rest
        assert pushes.count == seen + 1 and second.state.events == ["one", "two"]
        for ws in tabs:
            await until(ws, "events", "one,two")


async def test_a_run_at_once_that_fails_after_subscribing_leaves_the_topic() -> None:
    class Failing(Controller):
        def join_or_fail(self, state: State, ctx: Context) -> State:
            ctx.subscribe(ctx.get_str("topic"))
            if ctx.get_bool("fail"):
                raise RuntimeError("after subscribing")
            return self.record(state, ctx)

    app = make(Failing(), open_topics=True)
    async with LiveClient(app) as client:
        ws = await opened(client, "/?topics=news")
        await app.publish("news", "join_or_fail", {"topic": "news", "event": "seen"})  # the async way
        await until(ws, "events", "seen")
        await app.publish("news", "join_or_fail", {"topic": "alerts", "fail": True})
        assert (await ws.receive_json())["meta"]["success"] is False
        await settle()
        assert [channel for channel in app.broadcaster.channels() if channel.startswith("topic:")] == ["topic:news"]
