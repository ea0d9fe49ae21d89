"""State and sessions: persisted fields through the session store, tabs of one group,
per-connection fields, commit-or-nothing actions, serialized changes, the stores."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, FieldError, MemorySessionStore, Persist, SessionStore, Snapshot, StoreUnavailable
from livetemplate.sessions import CorruptSnapshot
from livetemplate.state import StateSpec
from livetemplate.testing import LiveClient, settle
from tests.support.stores import RecordingStore

pytestmark = pytest.mark.anyio

TEMPLATE = '<p class="count">{{ count }}</p><p class="filter">{{ filter }}</p><p class="note">{{ note }}</p>'


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0
    filter: str = "all"
    note: str = ""


class Ephemeral(msgspec.Struct):
    count: int = 0


class Controller:
    def __init__(self) -> None:
        self.mounts = 0

    def mount(self, state: State, ctx: Context) -> State:
        self.mounts += 1
        state.filter = ctx.get_str("filter", "all")
        return state

    def increment(self, state: State, ctx: Context) -> State:
        state.count += 1
        return state

    def save_draft(self, state: State, ctx: Context) -> State:
        state.note = f"draft via {ctx.action}"
        return state

    async def async_increment(self, state: State, ctx: Context) -> State:
        await asyncio.sleep(0)
        state.count += 1
        return state

    async def slow_increment(self, state: State, ctx: Context) -> State:
        seen = state.count
        await asyncio.sleep(0.02)
        state.count = seen + 1
        return state

    def in_place(self, state: State, ctx: Context) -> None:
        state.count += 100

    def set_note(self, state: State, ctx: Context) -> State:
        state.note = ctx.get_str("note")
        return state

    def crash(self, state: State, ctx: Context) -> State:
        state.count += 1
        state.note = "crashed"
        ctx.publish("news", "increment")
        raise RuntimeError("boom")

    def invalid(self, state: State, ctx: Context) -> State:
        state.count += 1
        ctx.publish("news", "increment")
        raise FieldError({"count": "too many", "note": "bad"})

    async def returns_error(self, state: State, ctx: Context) -> FieldError:
        state.count += 1
        ctx.publish("news", "increment")
        return FieldError("count", "nope")


class Subscriber(Controller):
    def mount(self, state: State, ctx: Context) -> State:
        ctx.subscribe("news")
        return super().mount(state, ctx)


def make(controller: Controller | None = None, **options: Any) -> livetemplate.LiveApp:
    """The app; instances that share a store share a secret, as several instances of one site must."""
    options.setdefault("secret_key", "shared by every instance")
    return livetemplate.mount(controller or Controller(), State(), template=TEMPLATE, **options)


def shown(html: str, name: str) -> str:
    start = html.index(f'<p class="{name}">') + len(f'<p class="{name}">')
    return html[start : html.index("</p>", start)]


async def page_value(client: LiveClient, name: str, url: str = "/") -> str:
    return shown((await client.get(url)).text, name)


# -- persisted and per-connection fields -----------------------------------------------------------


async def test_persisted_fields_survive_reload_and_others_are_refilled() -> None:
    async with LiveClient(make()) as client:
        await client.get("/?filter=done")
        async with client.websocket("/?filter=done") as ws:
            await ws.receive_json()
            await ws.action("increment")
            await ws.action("set_note", {"note": "hello"})
        assert await page_value(client, "count") == "1"
        assert await page_value(client, "note") == ""
        assert await page_value(client, "filter") == "all"
        async with client.websocket("/?filter=active") as again:
            await again.receive_json()
        assert shown(again.html(), "count") == "1"
        assert shown(again.html(), "note") == ""
        assert shown(again.html(), "filter") == "active"


class TwoPersisted(msgspec.Struct):
    title: Annotated[str, Persist] = ""
    count: Annotated[int, Persist] = 0
    draft: str = ""


@pytest.mark.parametrize("initial", [State(count=3, note="x"), TwoPersisted("a", 2, "y")])
def test_the_persisted_fields_are_dumped_by_name_and_loaded_back_alone(initial: Any) -> None:
    """One persisted field or several: stored as a map of their names (the format a store
    holds across versions), and loaded into a state without touching the other fields."""
    spec = StateSpec(initial)
    data = spec.dump(initial)
    assert data is not None
    persisted = {name: getattr(initial, name) for name in spec.persisted}
    assert msgspec.msgpack.decode(data) == persisted
    fresh = spec.new()
    loaded = spec.load(fresh, data)
    assert {name: getattr(loaded, name) for name in spec.persisted} == persisted
    others = [name for name in type(initial).__struct_fields__ if name not in persisted]
    assert others
    assert [getattr(loaded, name) for name in others] == [getattr(spec.new(), name) for name in others]


async def test_persisted_fields_come_back_from_the_store() -> None:
    store = RecordingStore()
    app = make(session_store=store)
    async with LiveClient(app) as client:
        await client.post_action("increment")
        group_id = client.group_id
        assert store.saves() == 1
        assert list(store.data) == [app.groups.key(group_id)]
        assert store.data[app.groups.key(group_id)].version == 1
        cookie = client.cookie_header()
    assert store.closed  # shutdown closes the store
    restarted = make(session_store=store)  # a new process: it reads the group from the store
    async with LiveClient(restarted) as client, client.websocket("/", headers={"cookie": cookie}) as ws:
        await ws.receive_json()
        assert shown(ws.html(), "count") == "1"
        await ws.action("increment")
    assert ("get", app.groups.key(group_id)) in store.calls
    assert store.data[app.groups.key(group_id)].version == 2


async def test_another_instance_shares_the_store() -> None:
    store = MemorySessionStore()
    first = make(session_store=store, name="counter")
    second = make(session_store=store, name="counter")
    other = make(session_store=store, name="elsewhere")
    assert first.store is store and second.store is store
    async with LiveClient(first) as client:
        await client.post_action("increment")
        await client.post_action("increment")
        cookie = {"cookie": client.cookie_header()}
    async with LiveClient(second) as client:
        assert shown((await client.get("/", headers=cookie)).text, "count") == "2"
    async with LiveClient(other) as client:
        assert shown((await client.get("/", headers=cookie)).text, "count") == "0"
    await store.close()


async def test_an_empty_memory_store_passed_in_is_used() -> None:
    store = MemorySessionStore()
    app = make(session_store=store)
    async with LiveClient(app) as client:
        await client.post_action("increment")
    assert app.store is store
    assert len(store) == 1


async def test_a_state_without_persisted_fields_never_touches_the_store() -> None:
    store = RecordingStore()

    class Plain:
        def increment(self, state: Ephemeral, ctx: Context) -> Ephemeral:
            state.count += 1
            return state

    app = livetemplate.mount(Plain(), Ephemeral(), template="<p>{{ count }}</p>", session_store=store)
    async with LiveClient(app) as client:
        await client.get("/")
        reply = await client.post_action("increment")
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await ws.action("increment")
        page = (await client.get("/")).text
    assert reply.json()["tree"]["0"] == "1"
    assert "<p>0</p>" in page
    assert store.calls == []


async def test_unreadable_stored_state_is_ignored() -> None:
    store = RecordingStore()
    app = make(session_store=store)
    async with LiveClient(app) as client:
        await client.get("/")
        cookie = client.cookie_header()
        store.data[app.groups.key(client.group_id)] = Snapshot(b"\xc1garbage", 7)
    async with LiveClient(make(session_store=store)) as client:
        response = await client.get("/", headers={"cookie": cookie})
        reply = await client.post_action("increment", headers={"cookie": cookie})
    assert response.status_code == 200
    assert shown(response.text, "count") == "0"
    assert reply.json()["tree"]["0"] == "1"
    group_id = cookie.split("=", 1)[1].partition(".")[0]
    assert store.data[app.groups.key(group_id)].version == 9  # the page load repaired it


async def test_a_change_the_store_cannot_take_fails_clearly_and_keeps_the_state() -> None:
    store = RecordingStore(fail_saves=True)
    async with LiveClient(make(session_store=store)) as client:
        async with client.connect("/") as ws:
            reply = await ws.action("increment")
            assert reply["meta"] == {
                "success": False,
                "errors": {"_general": "Your change could not be saved; try again."},
                "action": "increment",
            }
            assert reply["tree"] == {}
            store.fail_saves = False
            again = await ws.action("increment")
        assert again["tree"] == {"0": "1"}
        assert await page_value(client, "count") == "1"


async def test_idle_groups_are_swept_and_reloaded() -> None:
    app = make(group_idle_timeout=0.01)
    async with LiveClient(app) as client:
        await client.post_action("increment")
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await asyncio.sleep(0.05)
            assert len(app.groups) == 1  # a group with a connection stays
        await asyncio.sleep(0.05)
        assert len(app.groups) == 0  # swept in the background
        assert app.groups.sweep() == 0
        assert await page_value(client, "count") == "1"


# -- tabs of one session group -----------------------------------------------------------------------


async def test_a_committed_change_reaches_the_other_tab() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/") as one, client.websocket("/") as two:
            await one.receive_json()
            await two.receive_json()
            reply = await one.action("increment")
            pushed = await two.receive_json()
            assert reply["tree"] == {"0": "1"}
            assert pushed == {"tree": {"0": "1"}, "meta": {"success": True, "errors": {}}}
            await one.expect_nothing()
            from_two = await two.action("increment")
            assert from_two["tree"] == {"0": "2"}
            assert (await one.receive_json())["tree"] == {"0": "2"}


async def test_an_http_post_reaches_the_open_tabs() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await client.post_action("increment")
            pushed = await ws.receive_json()
    assert pushed["tree"] == {"0": "1"}


async def test_other_sessions_are_not_touched() -> None:
    app = make()
    async with LiveClient(app) as alice, LiveClient(app, shutdown=False) as bob:
        await alice.get("/")
        await bob.get("/")
        async with alice.websocket("/") as a, bob.websocket("/") as b:
            await a.receive_json()
            await b.receive_json()
            await a.action("increment")
            await b.expect_nothing()
            assert shown(b.html(), "count") == "0"


async def test_per_connection_fields_stay_per_connection() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/?filter=all") as one, client.websocket("/?filter=all") as two:
            await one.receive_json()
            await two.receive_json()
            navigated = await one.action("__navigate__", {"filter": "done"})
            assert navigated["tree"] == {"1": "done"}
            noted = await one.action("set_note", {"note": "mine"})
            assert noted["tree"] == {"2": "mine"}
            await two.expect_nothing()
            await one.action("increment")
            await two.receive_json()
            assert shown(two.html(), "filter") == "all"
            assert shown(two.html(), "note") == ""
            assert shown(two.html(), "count") == "1"
            assert shown(one.html(), "filter") == "done"
            assert shown(one.html(), "note") == "mine"


async def test_each_connection_has_its_own_renderer() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/") as one:
            await one.receive_json()
            await one.action("increment")
            async with client.websocket("/") as late:
                first = await late.receive_json()
                assert "s" in first["tree"]  # a new connection gets the complete tree
                assert shown(late.html(), "count") == "1"
                await one.action("increment")
                assert (await late.receive_json())["tree"] == {"0": "2"}


# -- commit or nothing -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["crash", "invalid", "returns_error"])
async def test_a_failed_action_commits_nothing(action: str) -> None:
    store = RecordingStore()
    app = make(Subscriber(), session_store=store, open_topics=True)
    async with LiveClient(app) as client, LiveClient(app, shutdown=False) as watcher:
        await client.get("/")
        async with client.websocket("/") as one, client.websocket("/") as two, watcher.websocket("/") as news:
            await one.receive_json()
            await two.receive_json()
            await news.receive_json()
            sets = store.saves()
            reply = await one.action(action)
            assert reply["meta"]["success"] is False
            assert reply["tree"] == {}
            await two.expect_nothing()
            await news.expect_nothing()  # nothing was published
            assert store.saves() == sets  # nothing was persisted
            after = await one.action("increment")
            assert after["tree"] == {"0": "1"}
        assert shown((await client.get("/")).text, "note") == ""


async def test_field_errors_reach_meta() -> None:
    async with LiveClient(make()) as client, client.websocket("/") as ws:
        await ws.receive_json()
        invalid = await ws.action("invalid")
        returned = await ws.action("returns_error")
    assert invalid["meta"]["errors"] == {"count": "too many", "note": "bad"}
    assert returned["meta"]["errors"] == {"count": "nope"}


async def test_sync_async_and_in_place_actions() -> None:
    async with LiveClient(make()) as client, client.websocket("/") as ws:
        await ws.receive_json()
        assert (await ws.action("increment"))["tree"] == {"0": "1"}
        assert (await ws.action("async_increment"))["tree"] == {"0": "2"}
        assert (await ws.action("in_place"))["tree"] == {"0": "102"}
        http = await client.post_action("async_increment")
    assert http.json()["tree"]["0"] == "103"


async def test_async_hooks() -> None:
    class AsyncHooks(Controller):
        async def mount(self, state: State, ctx: Context) -> State:
            await asyncio.sleep(0)
            state.filter = "from async mount"
            return state

        async def on_connect(self, state: State, ctx: Context) -> State:
            await asyncio.sleep(0)
            state.note = "connected"
            return state

    async with LiveClient(make(AsyncHooks())) as client:
        page = (await client.get("/")).text
        async with client.websocket("/") as ws:
            await ws.receive_json()
    assert shown(page, "filter") == "from async mount"
    assert shown(page, "note") == ""
    assert shown(ws.html(), "note") == "connected"


@pytest.mark.parametrize("name", ["save_draft", "save-draft", "saveDraft", "SaveDraft"])
async def test_action_names_are_normalised(name: str) -> None:
    async with LiveClient(make()) as client:
        http = await client.post_action(name)
        async with client.websocket("/") as ws:
            await ws.receive_json()
            reply = await ws.action(name)
    assert http.json()["meta"] == {"success": True, "errors": {}, "action": name}
    assert reply["meta"] == {"success": True, "errors": {}, "action": name}
    assert shown(ws.html(), "note") == f"draft via {name}"


# -- serialized changes ---------------------------------------------------------------------------


async def test_concurrent_actions_of_two_tabs_lose_no_update() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/") as one, client.websocket("/") as two:
            await one.receive_json()
            await two.receive_json()
            for _ in range(3):
                await one.send_json({"action": "slow_increment"})
                await two.send_json({"action": "slow_increment"})
            for ws in (one, two):
                while not ws.html() or shown(ws.html(), "count") != "6":
                    await ws.receive_json()
        assert await page_value(client, "count") == "6"


async def test_concurrent_http_posts_lose_no_update() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        replies = await asyncio.gather(*(client.post_action("slow_increment") for _ in range(5)))
        assert all(r.json()["meta"]["success"] for r in replies)
        assert sorted(r.json()["tree"]["0"] for r in replies) == ["1", "2", "3", "4", "5"]
        assert await page_value(client, "count") == "5"


async def test_concurrent_http_and_websocket_lose_no_update() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await ws.send_json({"action": "slow_increment"})
            await client.post_action("slow_increment")
            while shown(ws.html(), "count") != "2":
                await ws.receive_json()
        assert await page_value(client, "count") == "2"


# -- the store the app uses ---------------------------------------------------------------------------


async def test_the_app_uses_a_memory_store_by_default() -> None:
    app = make()
    assert isinstance(app.store, MemorySessionStore)
    async with LiveClient(app) as client:
        await client.post_action("increment")
        group_id = client.group_id
        assert await app.store.list() == [app.groups.key(group_id)]


async def test_a_custom_store_class_works() -> None:
    store = RecordingStore()
    assert isinstance(store, SessionStore)
    app = make(session_store=store)
    async with LiveClient(app) as client:
        await client.post_action("increment")
        await client.post_action("increment")
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await ws.action("increment")
        await settle()
    assert app.store is store
    assert store.saves() == 3
    saved = next(iter(store.data.values()))
    assert isinstance(saved.data, bytes) and saved.version == 3


# -- a store with bad data, a store that is down ------------------------------------------------------


class CorruptingStore(RecordingStore):
    async def get(self, key: str) -> Snapshot | None:
        if key in self.data and self.data[key].data == b"corrupt":
            raise CorruptSnapshot(key, "unknown format")
        return await super().get(key)


async def test_a_corrupt_stored_session_starts_afresh_with_a_logged_error(caplog: pytest.LogCaptureFixture) -> None:
    store = CorruptingStore()
    app = make(session_store=store)
    async with LiveClient(app) as client:
        await client.get("/")
        cookie = client.cookie_header()
        store.data[app.groups.key(client.group_id)] = Snapshot(b"corrupt", 3)
    async with LiveClient(make(session_store=store)) as client:
        page = await client.get("/", headers={"cookie": cookie})
        assert page.status_code == 200 and shown(page.text, "count") == "0"
    assert "holds no valid snapshot: unknown format: the session starts afresh" in caplog.text


class DownStore(RecordingStore):
    async def get(self, key: str) -> Snapshot | None:
        raise StoreUnavailable("connection refused")


async def test_sessions_that_cannot_be_read_get_a_clear_answer() -> None:
    app = make(session_store=DownStore())
    async with LiveClient(app) as client:
        page = await client.get("/")
        assert page.status_code == 503 and page.headers["retry-after"] == "5"
        async with client.websocket("/") as ws:
            frame = await ws.receive_json()
            assert frame["meta"]["errors"] == {"_general": "Your session cannot be read right now; reload in a moment."}
            assert await ws.receive_close() == 1013
    assert app.metrics.session_store_errors.labels("get")._value.get() == 2
