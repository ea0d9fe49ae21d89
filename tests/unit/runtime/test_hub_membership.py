"""Topic membership under races, against a model: tabs open, join, leave and fail while
their subscriptions are on their way (a broadcaster that confirms after a drawn delay, as
Redis does, and refuses one channel), and messages are published meanwhile.

Hypothesis draws batches of steps; the steps of a batch run at once. Once a batch has
settled, each open tab is subscribed to what a sequential model of its own steps says, the
hub's membership agrees with every tab's subscriptions, and the broadcaster holds exactly
the channels of the topics that have members; once every tab is gone, the hub and the
broadcaster hold nothing."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import livetemplate
from livetemplate import Context
from livetemplate.broadcast import BroadcastUnavailable
from livetemplate.session import LiveView
from livetemplate.testing import LiveClient, LiveSocket, settle
from livetemplate.wire import TOPIC_CHANNEL
from tests.unit.runtime.test_hub import Controller, LikeRedis, State, make

TOPICS = ["a", "b", "c", "refused"]


class Failing(Controller):
    """Mount subscribes the topics of the query, then fails with ``?fail=1``."""

    def mount(self, state: State, ctx: Context) -> State:
        super().mount(state, ctx)
        if ctx.get_bool("fail"):
            raise RuntimeError("mount failed after subscribing")
        return state


class Jittery(LikeRedis):
    """Confirms a first subscription after a delay drawn from ``rng`` (up to 3 ms), and
    refuses the channel of topic ``refused``."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    async def subscribe(self, channel: str, handler: Any) -> None:
        if channel == TOPIC_CHANNEL + "refused":
            await asyncio.sleep(self.rng.uniform(0, 0.003))
            raise BroadcastUnavailable(f"cannot subscribe {channel!r}")
        await super().subscribe(channel, handler)

    async def confirmed(self, channel: str) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.003))


TOPIC = st.sampled_from(TOPICS)
STEP = st.one_of(
    st.tuples(st.just("open"), st.frozensets(TOPIC, max_size=3), st.booleans()),
    st.tuples(st.sampled_from(["join", "leave", "join_then_fail", "close"]), st.integers(0, 7), TOPIC),
    st.tuples(st.just("publish"), TOPIC),
)
BATCHES = st.lists(st.lists(STEP, min_size=1, max_size=6), min_size=1, max_size=5)


class Tab:
    """A test tab and what the model says it is subscribed to (None once it is closed)."""

    def __init__(self, number: int, ws: LiveSocket, topics: set[str] | None, refused: bool = False) -> None:
        self.number = number
        self.ws = ws
        self.topics = topics
        self.refused = refused  # to be closed by the app: a topic it wanted cannot be subscribed

    def apply(self, action: str, topic: str) -> None:
        """The model: a tab's messages are handled in order, one at a time."""
        if self.topics is None:
            return
        if action == "join":
            if topic == "refused":
                self.topics, self.refused = None, True
            else:
                self.topics.add(topic)
        elif action == "leave":
            self.topics.discard(topic)
        elif action == "close":
            self.topics = None


async def quiet(broadcaster: Jittery, app: livetemplate.LiveApp) -> None:
    """Wait until no subscription is on its way and the hub's background work is done."""
    while True:
        await settle(2)
        if not broadcaster.confirming and not app.hub._subscribing and not app.hub._tasks:
            return


async def run(batches: list[list[tuple[Any, ...]]], seed: int) -> None:
    broadcaster = Jittery(random.Random(seed))
    app = make(Failing(), open_topics=True, broadcaster=broadcaster)
    tabs: list[Tab] = []
    async with LiveClient(app) as client:
        for batch in batches:
            opening: list[Tab] = []
            for step in batch:
                if step[0] == "open":
                    _, topics, fail = step
                    number = len(tabs) + len(opening)
                    url = f"/?tab={number}&topics={','.join(sorted(topics))}&fail={int(fail)}"
                    refused = "refused" in topics and not fail  # a failed mount subscribes nothing
                    expected = set() if fail else None if refused else set(topics)
                    opening.append(Tab(number, client.websocket(url), expected, refused))
                elif step[0] == "publish":
                    await app.publish(step[1], "record", {"event": f"to {step[1]}"})
                elif tabs:
                    tab = tabs[step[1] % len(tabs)]
                    if tab.topics is None:
                        continue
                    tab.apply(step[0], step[2])
                    if step[0] == "close":
                        await tab.ws.close()
                    else:
                        await tab.ws.send_json({"action": step[0], "data": {"topic": step[2]}})
            await asyncio.gather(*(tab.ws.__aenter__() for tab in opening))
            tabs += opening
            for tab in tabs:
                await answered(tab)
            await quiet(broadcaster, app)
            check(app, broadcaster, tabs)
        for tab in tabs:
            if tab.topics is not None:
                await tab.ws.close()
        await quiet(broadcaster, app)
        hub = app.hub
        assert (hub.views, hub._by_topic, hub._topics_of, hub._early, hub._by_group) == (set(), {}, {}, {}, {})
        assert broadcaster.channels() == []


async def answered(tab: Tab) -> None:
    """Wait until the app has handled what the tab sent (it answers a ping after them), or
    closed it with 1013 as the model says."""
    if tab.topics is None:
        if tab.refused:
            assert await tab.ws.receive_close() == 1013
            tab.refused = False
        return
    await tab.ws.send_json({"action": "__ping__"})
    while True:
        frame = await tab.ws.receive_json()
        if frame == {"pong": True}:
            return


def check(app: livetemplate.LiveApp, broadcaster: Jittery, tabs: list[Tab]) -> None:
    hub = app.hub
    views: dict[int, LiveView] = {int(view.query["tab"]): view for view in hub.views}
    assert set(views) == {tab.number for tab in tabs if tab.topics is not None}
    for tab in tabs:
        if tab.topics is None:
            continue
        view = views[tab.number]
        assert view.topics == tab.topics, tab.number
        assert set(hub._topics_of.get(view, ())) == tab.topics
        assert {topic for topic, members in hub._by_topic.items() if view in members} == tab.topics
    assert hub._early == {}
    assert all(members and members <= hub.views for members in hub._by_topic.values())
    assert {c for c in broadcaster.channels() if c.startswith(TOPIC_CHANNEL)} == {
        TOPIC_CHANNEL + topic for topic in hub._by_topic
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=BATCHES, seed=st.integers(0, 2**32 - 1))
def test_topic_membership_follows_the_model_under_races(batches: list[list[tuple[Any, ...]]], seed: int) -> None:
    asyncio.run(run(batches, seed))
