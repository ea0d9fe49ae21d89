"""What a hostile or broken client tries, and what it gets: each attack from the security
review, reproduced, with the fix it now meets."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, Persist
from livetemplate.testing import LiveClient, LiveSocket, settle

pytestmark = pytest.mark.anyio

TEMPLATE = "<p>{{ count }}</p><i>{{ note }}</i>"


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0
    note: str = ""


class Controller:
    calls = 0

    def increment(self, state: State, ctx: Context) -> State:
        state.count += 1
        return state

    gate = threading.Event()

    def doze(self, state: State, ctx: Context) -> State:
        time.sleep(0.1)  # long enough to be seen holding the loop
        Controller.gate.wait(5)
        return state

    def nap(self, state: State, ctx: Context) -> State:
        Controller.gate.wait(5)  # a blocking call in a sync action, until the test lets it go
        state.note = "rested"
        return state

    async def hog(self, state: State, ctx: Context) -> State:
        time.sleep(0.3)  # holds the event loop: logged and counted
        return state

    def quit(self, state: State, ctx: Context) -> State:
        raise SystemExit(3)

    async def cancelled(self, state: State, ctx: Context) -> State:
        raise asyncio.CancelledError()

    def note(self, state: State, ctx: Context) -> State:
        state.note = ctx.get_str("text")
        return state

    @classmethod
    def make(cls, state: State, ctx: Context) -> State:
        return state

    @staticmethod
    def helper(state: State, ctx: Context) -> State:
        return state

    @property
    def expensive(self) -> int:
        Controller.calls += 1
        return 1

    def two_args(self, state: State) -> State:
        return state


def make(**options: Any) -> livetemplate.LiveApp:
    options.setdefault("open_topics", True)
    return livetemplate.mount(Controller(), State(), template=TEMPLATE, **options)


def meta_of(frame: Any) -> Any:
    return frame["meta"]


# -- memory pinning through unknown action names ------------------------------------------------------


async def test_unknown_names_are_not_remembered_nor_echoed_whole() -> None:
    app = make(message_rate_limit=None)
    actions = app.runtime.runner.actions
    before = dict(actions._actions)
    async with LiveClient(app) as client, client.connect("/") as ws:
        for i in range(200):
            name = f"x{i}" + "y" * 20_000
            await ws.send_json({"action": name})
            frame = await ws.receive_json()
            assert len(json.dumps(frame)) < 400  # the reply does not carry the 20 KB name back
            assert meta_of(frame)["success"] is False
    assert actions._actions == before  # nothing the client named was kept


@pytest.mark.parametrize("name", ["make", "helper", "expensive", "two_args", "mount", "_private", "__init__"])
async def test_only_state_and_ctx_methods_are_actions(name: str) -> None:
    Controller.calls = 0
    async with LiveClient(make()) as client, client.connect("/") as ws:
        frame = await ws.action(name)
    assert meta_of(frame)["success"] is False and "unknown action" in meta_of(frame)["errors"]["_general"]
    assert Controller.calls == 0  # the property was never evaluated


def test_the_action_table() -> None:
    assert make().runtime.runner.actions.names == ["cancelled", "doze", "hog", "increment", "nap", "note", "quit"]


# -- session fixation ------------------------------------------------------------------------------------


async def test_a_planted_session_id_is_replaced_over_http_and_websocket() -> None:
    app = make()
    planted = "A" * 43  # well-formed, as the old ids were, but not signed by this server
    async with LiveClient(app, shutdown=False) as attacker:
        await attacker.get("/")
        forged = attacker.group_id + ".AAAAAAAAAAAAAAAAAAAAAA"  # a real id with a forged signature
    for value in (planted, forged):
        async with LiveClient(app, shutdown=False) as victim:
            page = await victim.get("/", headers={"cookie": f"livetemplate-id={value}"})
            assert "livetemplate-id=" in page.headers["set-cookie"]
            assert victim.group_id not in (planted, forged.partition(".")[0])
            ws = victim.websocket("/", headers={"cookie": f"livetemplate-id={value}"}, cookies=False)
            async with ws:
                assert ws.accepted and "livetemplate-id=" in ws.accept_headers["set-cookie"]
                assert not ws.accept_headers["set-cookie"].startswith(f"livetemplate-id={value}")
    await app.shutdown()


async def test_an_issued_id_works_before_anything_is_saved() -> None:
    app = make()
    async with LiveClient(app) as client:
        await client.get("/")
        group_id = client.group_id
        again = await client.get("/")
        assert "set-cookie" not in again.headers  # no store entry yet, and still recognised
        assert client.group_id == group_id
        assert len(app.store) == 0  # type: ignore[arg-type]


# -- one client must not hold up the others ------------------------------------------------------------------


async def test_a_blocking_sync_action_in_a_thread_does_not_freeze_other_sessions() -> None:
    app = make(sync_actions="thread")
    async with (
        LiveClient(app) as slow,
        LiveClient(app, shutdown=False) as other,
        slow.connect("/") as sleeper,
        other.connect("/") as ws,
    ):
        Controller.gate.clear()
        await sleeper.send_json({"action": "nap"})
        assert (await ws.action("increment"))["tree"] == {"0": "1"}  # answered while the nap blocks
        Controller.gate.set()
        await sleeper.receive_json()
        assert "rested" in sleeper.html()


async def test_a_sync_action_seen_blocking_moves_to_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    """``sync_actions="auto"`` (the default): on the event loop until an action holds it up
    once; from then on that action runs in a worker thread and holds nobody else up."""
    app = make(slow_action_threshold=0.05)
    async with (
        LiveClient(app) as slow,
        LiveClient(app, shutdown=False) as other,
        slow.connect("/") as sleeper,
        other.connect("/") as ws,
    ):
        Controller.gate.set()
        await sleeper.action("doze")  # on the loop, seen blocking it: logged, counted, moved
        assert "action 'doze' held the event loop" in caplog.text and "worker thread from now on" in caplog.text
        Controller.gate.clear()
        await sleeper.send_json({"action": "doze"})
        assert (await ws.action("increment"))["tree"] == {"0": "1"}  # answered while the doze blocks
        Controller.gate.set()
        await sleeper.receive_json()
    assert app.metrics.errors.labels("slow_action")._value.get() == 1


async def test_an_action_holding_the_event_loop_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    app = make()
    async with LiveClient(app) as client, client.connect("/") as ws:
        await ws.action("hog")
    assert "action 'hog' held the event loop for" in caplog.text
    assert app.metrics.errors.labels("slow_action")._value.get() == 1


@pytest.mark.parametrize("action", ["quit", "cancelled"])
async def test_system_exit_and_a_stray_cancellation_fail_the_action_not_the_socket(action: str) -> None:
    async with LiveClient(make()) as client, client.connect("/") as ws:
        frame = await ws.action(action)
        assert meta_of(frame) == {"success": False, "errors": {"_general": "Something went wrong."}, "action": action}
        assert meta_of(await ws.action("increment"))["success"] is True


# -- caps -------------------------------------------------------------------------------------------------


async def test_connections_over_the_limit_are_refused_and_counted() -> None:
    app = make(max_connections=5, max_connections_per_group=None)
    sockets: list[LiveSocket] = []
    async with LiveClient(app) as client:
        for _ in range(5 + 100):
            ws = client.websocket("/")
            await ws.__aenter__()
            sockets.append(ws)
        refused = [ws for ws in sockets if not ws.accepted]
        assert len(refused) == 100
        assert {ws.refused_status for ws in refused} == {503}
        assert refused[0].refused_headers["retry-after"] == "5"
        assert app.metrics.connections_rejected.labels("max_connections")._value.get() == 100
        metrics = (await client.get("/metrics")).text
        assert 'livetemplate_connections_rejected_total{reason="max_connections"} 100.0' in metrics
        assert "livetemplate_connections_active 5.0" in metrics


async def test_tabs_per_session_are_capped() -> None:
    app = make(max_connections_per_group=3)
    async with LiveClient(app) as client:
        await client.get("/")
        tabs = [client.websocket("/") for _ in range(4)]
        for ws in tabs:
            await ws.__aenter__()
        assert [ws.accepted for ws in tabs] == [True, True, True, False]
        async with LiveClient(app, shutdown=False) as other, other.connect("/"):
            pass  # another session is not affected
        await tabs[0].close()
        await settle()
        async with client.connect("/"):
            pass  # a closed tab frees its place


async def test_the_memory_store_keeps_at_most_max_sessions() -> None:
    store = livetemplate.MemorySessionStore(max_sessions=10)
    app = make(session_store=store)
    async with LiveClient(app) as keeper, keeper.connect("/") as ws:
        await ws.action("increment")  # this session keeps an open connection
        for _ in range(30):  # cookieless clients, each a new session
            async with LiveClient(app, shutdown=False) as bot:
                await bot.post_action("increment")
        assert len(store) == 10
        assert app.metrics.session_store_evictions._value.get() == 21
        assert app.groups.key(keeper.group_id) in await store.list()  # the connected one stayed


async def test_message_rate_is_limited_per_connection() -> None:
    app = make(message_rate_limit=(1.0, 3))
    async with LiveClient(app) as client, client.connect("/") as ws:
        frames = [await ws.action("increment") for _ in range(5)]
        assert [meta_of(f)["success"] for f in frames] == [True, True, True, False, False]
        assert meta_of(frames[-1])["errors"] == {"_rate_limit": "Too many messages; slow down."}
        assert (await ws.action("__ping__")) == {"pong": True}  # heartbeats are never refused
        await asyncio.sleep(1.1)
        assert meta_of(await ws.action("increment"))["success"] is True  # the socket stayed open


# -- a client that stops reading ----------------------------------------------------------------------------


async def test_a_backed_up_client_gets_one_coalesced_update_and_bounded_memory() -> None:
    app = make(send_budget=2048, slow_client_timeout=60)
    async with LiveClient(app) as client:
        ws = client.websocket("/")
        await ws.__aenter__()
        await ws.receive_json()
        ws.stop_reading()
        await ws.send_json({"action": "note", "data": {"text": "n" * 3000}})  # a reply bigger than the budget
        await settle()
        outbox = next(iter(app.runtime.connections)).outbox  # type: ignore[attr-defined]
        for i in range(500):
            await app.session(client.group_id).trigger_action("note", {"text": f"push {i}"})
        while app.hub._tasks:  # every push has run
            await asyncio.sleep(0.01)
        assert outbox.pending_bytes < 2048 + 100  # 500 pushes did not pile up: at most the budget
        skipped = app.metrics.websocket_buffer_full._value.get()
        assert skipped > 400  # renders skipped while the client was behind
        ws.resume_reading()
        frames = 0
        while "push 499" not in ws.html():
            await ws.receive_json()
            frames += 1
        assert frames < 500 - skipped + 3  # what was queued, then one update for all the rest


async def test_a_client_stuck_past_the_timeout_is_closed() -> None:
    app = make(send_budget=1024, slow_client_timeout=0.2)
    async with LiveClient(app) as client:
        ws = client.websocket("/")
        await ws.__aenter__()
        await ws.receive_json()
        ws.stop_reading()
        for i in range(5):
            await app.session(client.group_id).trigger_action("note", {"text": "x" * 2000 + str(i)})
            await asyncio.sleep(0.1)
        await settle()
        assert ws.close_code == 1008 and ws.close_reason == "client too slow"
        assert app.metrics.websocket_slow_client_closes._value.get() == 1


# -- smaller ones --------------------------------------------------------------------------------------


async def test_deeply_nested_json_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    nested = '{"action": "note", "data": {"text": ' + "[" * 10_000 + "]" * 10_000 + "}}"
    async with LiveClient(make(max_message_size=64 * 1024)) as client:
        async with client.connect("/") as ws:
            await ws.send_text(nested)
            frame = await ws.receive_json()
            assert meta_of(frame)["errors"] == {"_general": "malformed message: nested too deeply"}
        response = await client.post("/", content=nested, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "Traceback" not in caplog.text


async def test_a_non_ascii_csrf_value_is_refused_not_a_crash() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        response = await client.post("/", data={"_csrf": "é" * 32, "increment": ""})
    assert response.status_code == 403


async def test_get_str_of_an_object_is_a_field_error() -> None:
    async with LiveClient(make()) as client, client.connect("/") as ws:
        frame = await ws.action("note", {"text": {"nested": "object"}})
    assert meta_of(frame)["errors"] == {"text": "must be text"}


async def test_pages_cannot_be_framed_by_default() -> None:
    async with LiveClient(make()) as client:
        page = await client.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    async with LiveClient(make(frame_ancestors=["'self'", "https://a.example"])) as client:
        page = await client.get("/")
    assert "x-frame-options" not in page.headers
    assert page.headers["content-security-policy"] == "frame-ancestors 'self' https://a.example"
