"""The WebSocket transport: the upgrade, the complete tree pushed on connect, minimal
updates, ``__ping__``, ``__navigate__``, lifecycle hooks, ordering, the Origin check."""

from __future__ import annotations

import asyncio
import gc
import re
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, Persist
from livetemplate.request import Request
from livetemplate.session import LiveView
from livetemplate.testing import LiveClient

pytestmark = pytest.mark.anyio

TEMPLATE = """<p class="count">{{ count }}</p>
<p class="filter">{{ filter }}</p>
<output>{{ lvt.flash("note") }}</output>
<small>{{ lvt.error("_general") }}</small>"""
DOCUMENT = """<!doctype html>
<html><head><title>{{ count }}</title></head>
<body>
<h1>{{ count }}</h1>{% for item in items %}<i>{{ item }}</i>{% endfor %}
</body></html>"""
WRAPPER = re.compile(r'<div data-lvt-id="[^"]+"[^>]*>(.*)</div><script', re.DOTALL)


class Page(msgspec.Struct):
    count: Annotated[int, Persist] = 0
    filter: str = "all"
    items: list[str] = []


class Controller:
    """Counts, filters, and records every hook and action it runs."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def mount(self, state: Page, ctx: Context) -> Page:
        self.log.append(f"mount:{ctx.action!r}:{ctx.is_http}:{sorted(ctx.query.items())}")
        state.filter = ctx.get_str("filter", "all")
        return state

    def on_connect(self, state: Page, ctx: Context) -> Page:
        self.log.append("on_connect")
        return state

    def on_disconnect(self, state: Page, ctx: Context) -> None:
        self.log.append(f"on_disconnect:{state.count}")

    def increment(self, state: Page, ctx: Context) -> Page:
        self.log.append(f"increment:{ctx.action}")
        state.count += 1
        return state

    def nothing(self, state: Page, ctx: Context) -> None:
        return None

    async def slow(self, state: Page, ctx: Context) -> Page:
        self.log.append("slow:start")
        await asyncio.sleep(0.05)
        state.count += 10
        self.log.append("slow:end")
        return state

    def fast(self, state: Page, ctx: Context) -> Page:
        self.log.append("fast")
        state.count += 1
        return state

    def add_item(self, state: Page, ctx: Context) -> Page:
        state.items.append(ctx.get_str("item"))
        return state

    def note(self, state: Page, ctx: Context) -> Page:
        ctx.set_flash("note", ctx.get_str("text"))
        return state

    def forget(self, state: Page, ctx: Context) -> Page:
        ctx.clear_flash("note")
        return state


class Changing(Controller):
    def change(self, state: Page, ctx: Context) -> Page:
        return state


def make(template: str = TEMPLATE, controller: Controller | None = None, **options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(controller or Controller(), Page(), template=template, **options)


# -- the upgrade and the first push -------------------------------------------------------------


async def test_connect_pushes_the_complete_tree() -> None:
    async with LiveClient(make()) as client:
        page = (await client.get("/")).text
        async with client.websocket("/") as ws:
            assert ws.accepted
            assert "set-cookie" not in ws.accept_headers  # the page set it
            first = await ws.receive_json()
    assert first["meta"] == {"success": True, "errors": {}}
    assert "s" in first["tree"]
    content = WRAPPER.search(page)
    assert content is not None
    assert ws.html() == content.group(1)


async def test_an_open_connection_keeps_none_of_its_request() -> None:
    """The upgrade's headers and cookies are read while the connection opens, then dropped
    (kept, they cost every idle connection a few KiB)."""
    async with LiveClient(make()) as client, client.websocket("/?filter=done") as ws:
        first = await ws.receive_json()
        gc.collect()
        kept = [o for o in gc.get_objects() if isinstance(o, Request) and o.scope.get("type") == "websocket"]
        assert kept == []
        assert first["tree"]["1"] == "done"  # what the view needed of it, it has


async def test_connect_advertises_change() -> None:
    async with LiveClient(make(controller=Changing())) as client, client.websocket("/") as ws:
        first = await ws.receive_json()
    assert first["meta"] == {"success": True, "errors": {}, "capabilities": ["change"]}


async def test_document_connect_pushes_the_body_region() -> None:
    async with LiveClient(make(DOCUMENT)) as client:
        page = (await client.get("/")).text
        async with client.websocket("/") as ws:
            await ws.receive_json()
            shown = ws.html()
            update = await ws.action("add_item", {"item": "x"})
            await ws.action("increment")
        after = (await client.get("/")).text
    content = WRAPPER.search(page)
    assert content is not None and shown == content.group(1)
    assert "<title>" not in shown
    assert "s" not in update["tree"]
    final = WRAPPER.search(after)
    assert final is not None
    assert "<h1>1</h1>" in final.group(1)
    assert ws.html() == "\n<h1>1</h1><i>x</i>\n"


async def test_upgrade_without_cookie_sets_one() -> None:
    async with LiveClient(make()) as client:
        async with client.websocket("/") as ws:
            await ws.receive_json()
        cookie = ws.accept_headers["set-cookie"]
        assert re.fullmatch(
            r"livetemplate-id=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax",
            cookie,
        )
        response = await client.get("/")  # the cookie from the upgrade is the session's
    assert "set-cookie" not in response.headers


async def test_upgrade_cookie_is_secure_over_wss() -> None:
    async with LiveClient(make(), base_url="https://testserver") as client, client.websocket("/") as ws:
        await ws.receive_json()
    assert ws.accept_headers["set-cookie"].endswith("; Secure")


# -- updates ---------------------------------------------------------------------------------------


async def test_updates_are_minimal() -> None:
    async with LiveClient(make()) as client, client.websocket("/") as ws:
        await ws.receive_json()
        changed = await ws.action("increment", {})
        unchanged = await ws.action("nothing", {})
    assert changed == {"tree": {"0": "1"}, "meta": {"success": True, "errors": {}, "action": "increment"}}
    assert unchanged == {"tree": {}, "meta": {"success": True, "errors": {}, "action": "nothing"}}
    assert '<p class="count">1</p>' in ws.html()


async def test_action_names_are_echoed_as_sent() -> None:
    async with LiveClient(make()) as client, client.websocket("/") as ws:
        await ws.receive_json()
        for name in ("Increment", "INCREMENT"):
            reply = await ws.action(name)
            assert reply["meta"]["action"] == name
    assert '<p class="count">2</p>' in ws.html()


async def test_ping_gets_exactly_pong() -> None:
    controller = Controller()
    async with LiveClient(make(controller=controller)) as client, client.websocket("/") as ws:
        await ws.receive_json()
        controller.log.clear()
        await ws.send_json({"action": "__ping__"})
        assert await ws.receive_text() == '{"pong":true}'
        await ws.send_json({"action": "__ping__", "data": {}})
        assert await ws.receive_text() == '{"pong":true}'
        await ws.expect_nothing()
    assert controller.log == ["on_disconnect:0"]  # no hook or action ran for the pings


async def test_navigate_reruns_mount_with_the_new_query() -> None:
    controller = Controller()
    async with LiveClient(make(controller=controller)) as client, client.websocket("/?filter=all") as ws:
        await ws.receive_json()
        await ws.action("increment")
        controller.log.clear()
        reply = await ws.action("__navigate__", {"filter": "done", "page": 2})
        assert reply == {"tree": {"1": "done"}, "meta": {"success": True, "errors": {}}}
        again = await ws.action("increment")
    assert controller.log[0] == "mount:'':False:[('filter', 'done'), ('page', '2')]"
    assert again["tree"] == {"0": "2"}  # the persisted count survived the navigation
    assert '<p class="filter">done</p>' in ws.html()


async def test_navigate_without_data_clears_the_query() -> None:
    async with LiveClient(make()) as client, client.websocket("/?filter=done") as ws:
        first = await ws.receive_json()
        assert first["tree"]["1"] == "done"
        reply = await ws.action("__navigate__")
    assert reply["tree"] == {"1": "all"}


async def test_unknown_action_keeps_the_connection_and_the_state() -> None:
    async with LiveClient(make()) as client, client.websocket("/") as ws:
        await ws.receive_json()
        await ws.action("increment")
        reply = await ws.action("launch_rockets", {"now": True})
        assert reply["meta"]["success"] is False
        assert reply["meta"]["action"] == "launch_rockets"
        assert "unknown action 'launch_rockets'" in reply["meta"]["errors"]["_general"]
        assert "count" not in str(reply["tree"])
        after = await ws.action("increment")
    assert after["tree"]["0"] == "2"
    assert after["meta"]["success"] is True


@pytest.mark.parametrize("name", ["mount", "on_connect", "on_disconnect", "_private", "__init__", "log"])
async def test_hooks_and_non_methods_are_not_actions(name: str) -> None:
    controller = Controller()
    async with LiveClient(make(controller=controller)) as client, client.websocket("/") as ws:
        await ws.receive_json()
        count = len(controller.log)
        reply = await ws.action(name)
        assert reply["meta"]["success"] is False
        assert len(controller.log) == count


# -- lifecycle ---------------------------------------------------------------------------------------


async def test_lifecycle_hooks() -> None:
    controller = Controller()
    async with LiveClient(make(controller=controller)) as client:
        await client.get("/?filter=a")
        assert controller.log == ["mount:'':True:[('filter', 'a')]"]
        controller.log.clear()
        await client.post_action("increment")
        assert controller.log == ["mount:'':True:[]", "increment:increment"]
        controller.log.clear()
        async with client.websocket("/?filter=b") as ws:
            await ws.receive_json()
            assert controller.log == ["mount:'':False:[('filter', 'b')]", "on_connect"]
            await ws.action("increment")
            controller.log.clear()
        assert controller.log == ["on_disconnect:2"]
        assert ws.finished


async def test_on_disconnect_runs_when_the_client_goes_away_mid_session() -> None:
    controller = Controller()
    app = make(controller=controller)
    async with LiveClient(app) as client:
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await ws.close(1001)
            assert controller.log[-1] == "on_disconnect:0"
        assert app.runtime.connections == set()
        assert app.hub.views == set()


async def test_messages_are_handled_in_order() -> None:
    controller = Controller()
    async with LiveClient(make(controller=controller)) as client, client.websocket("/") as ws:
        await ws.receive_json()
        controller.log.clear()
        await ws.send_json({"action": "slow", "data": {}})
        await ws.send_json({"action": "fast", "data": {}})
        await ws.send_json({"action": "__ping__"})
        first = await ws.receive_json()
        second = await ws.receive_json()
        third = await ws.receive_json()
    assert controller.log[:3] == ["slow:start", "slow:end", "fast"]
    assert first["meta"]["action"] == "slow" and first["tree"] == {"0": "10"}
    assert second["meta"]["action"] == "fast" and second["tree"] == {"0": "11"}
    assert third == {"pong": True}


async def test_shutdown_closes_connections_with_1012() -> None:
    app = make()
    async with LiveClient(app, shutdown=False) as client:
        async with client.websocket("/") as ws:
            await ws.receive_json()
            await app.shutdown()
            assert await ws.receive_close() == 1012
        async with client.websocket("/") as refused:
            assert not refused.accepted


async def test_a_connection_whose_session_loads_while_the_app_drains_opens_no_tab() -> None:
    """The drain closes it with 1012 as it does every other; once the session is read, no tab
    opens (no mount, no view in the hub) on a connection already closed."""
    controller = Controller()
    app = make(controller=controller)
    loading, release = asyncio.Event(), asyncio.Event()
    read = app.runtime.groups.get

    async def slow_read(group_id: str) -> Any:
        loading.set()
        await release.wait()
        return await read(group_id)

    app.runtime.groups.get = slow_read  # type: ignore[method-assign]
    async with LiveClient(app, shutdown=False) as client:
        async with client.websocket("/") as ws:
            await loading.wait()
            await app.drain()
            assert await ws.receive_close() == 1012
            release.set()
            async with asyncio.timeout(5):  # until the connection's task is over
                while app.runtime.connections:
                    await asyncio.sleep(0.01)
        assert controller.log == []
        assert app.hub.views == set()
    await app.shutdown()


# -- flash over WebSocket ------------------------------------------------------------------------------


async def test_flash_is_per_connection_until_cleared() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        async with client.websocket("/") as one, client.websocket("/") as two:
            await one.receive_json()
            await two.receive_json()
            await one.action("note", {"text": "Saved!"})
            assert "<output>Saved!</output>" in one.html()
            await one.action("increment")
            assert "<output>Saved!</output>" in one.html()  # stays until cleared
            await two.receive_json()  # the count reached the other tab ...
            assert "<output></output>" in two.html()  # ... the flash did not
            await one.action("forget")
            assert "<output></output>" in one.html()


# -- Origin and disabled WebSockets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),
        ("http://testserver", True),
        ("http://evil.example", False),
        ("https://testserver", False),
    ],
)
async def test_upgrade_origin_check(origin: str | None, accepted: bool) -> None:
    controller = Controller()
    headers = {"origin": origin} if origin else {}
    async with LiveClient(make(controller=controller)) as client:
        async with client.websocket("/", headers=headers) as ws:
            assert ws.accepted is accepted
            if accepted:
                assert "tree" in await ws.receive_json()
            else:
                assert ws.close_code is not None  # closed before the accept: the server answers 403
        assert ws.finished
    assert ("on_connect" in controller.log) is accepted


async def test_upgrade_origin_with_allowed_origins() -> None:
    app = make(allowed_origins=("https://app.example",))
    async with LiveClient(app) as client:
        async with client.websocket("/", headers={"origin": "https://app.example"}) as ws:
            assert ws.accepted
        async with client.websocket("/", headers={"origin": "http://testserver"}) as own:
            assert not own.accepted


async def test_upgrade_origin_behind_a_tls_proxy() -> None:
    headers = {"origin": "https://testserver", "x-forwarded-proto": "https"}
    async with LiveClient(make(trust_forwarded_headers=True)) as client, client.websocket("/", headers=headers) as ws:
        assert ws.accepted


async def test_websocket_disabled_refuses_upgrades() -> None:
    controller = Controller()
    async with LiveClient(make(controller=controller, websocket_disabled=True)) as client:
        async with client.websocket("/") as ws:
            assert not ws.accepted
            assert ws.close_code is not None
        posted = await client.post_action("increment")
    assert posted.json()["tree"]["0"] == "1"
    assert "on_connect" not in controller.log


# -- client compatibility ------------------------------------------------------------------------

SPLIT_TEMPLATE = (
    "{% if note %}<output>{{ note }}</output>{% endif %}"
    '<ul>{% for x in items %}<li data-key="{{ x }}">{{ x }}</li>{% endfor %}</ul><p>{{ items|length }}</p>'
)


class Listing(msgspec.Struct):
    items: list[str] = []
    note: str = ""


class ListingController:
    def add(self, state: Listing, ctx: livetemplate.Context) -> Listing:
        state.items.append(ctx.get_str("item"))
        state.note = ctx.get_str("note")
        return state


async def test_list_operations_go_first_when_the_update_also_inserts_elements() -> None:
    """The client applies a top-level keyed range's operations to the DOM directly; when
    the same update inserts an element before the list, its morphdom pass replaces the
    list with a placeholder (client 0.25.1). The operations then travel in a frame of
    their own, without meta, before the rest."""
    app = livetemplate.mount(ListingController(), Listing(items=["a"]), template=SPLIT_TEMPLATE)
    async with LiveClient(app) as client, client.websocket("/") as ws:
        await ws.receive_json()
        ops = await ws.action("add", {"item": "b", "note": "Added b"})
        assert ops == {"tree": {"1": [["a", [{"0": "b", "1": "b", "_k": "b"}]]]}}
        rest = await ws.receive_json()
        assert rest["tree"] == {"0": {"s": ["<output>", "</output>"], "0": "Added b"}, "2": "2"}
        assert rest["meta"] == {"success": True, "errors": {}, "action": "add"}
        assert ws.html() == '<output>Added b</output><ul><li data-key="a">a</li><li data-key="b">b</li></ul><p>2</p>'
        # only text changes beside the operations: one frame
        reply = await ws.action("add", {"item": "c", "note": "Added c"})
        assert reply["tree"] == {"0": {"0": "Added c"}, "1": [["a", [{"0": "c", "1": "c", "_k": "c"}]]], "2": "3"}


# -- paths, lifespan and bugs ---------------------------------------------------------------------------


async def test_a_websocket_to_another_path_is_refused() -> None:
    async with LiveClient(make()) as client, client.websocket("/elsewhere") as ws:
        assert not ws.accepted and ws.close_code == 1008


async def test_a_first_message_other_than_connect_ends_the_connection() -> None:
    app = make()
    messages = iter([{"type": "websocket.disconnect", "code": 1000}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/", "headers": []}, receive, send)
    assert sent == []
    await app.shutdown()


async def test_lifespan_shutdown_closes_the_app() -> None:
    app = make()
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert app.runtime.closing
    async with LiveClient(app, shutdown=False) as client, client.websocket("/") as ws:
        assert not ws.accepted  # a closing app takes no new connections


async def test_a_bug_while_handling_a_message_keeps_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault no input can produce (a bug in the runtime itself), so it is injected."""
    real = LiveView.handle

    async def broken(self: LiveView, incoming: Any, subscribe: Any = None) -> Any:
        if incoming.action == "explode":
            raise RuntimeError("a bug")
        return await real(self, incoming, subscribe)

    monkeypatch.setattr(LiveView, "handle", broken)
    async with LiveClient(make()) as client, client.connect("/") as ws:
        reply = await ws.action("explode")
        assert reply == {
            "tree": {},
            "meta": {"success": False, "errors": {"_general": "the server failed to handle the message"}},
        }
        assert (await ws.action("increment"))["meta"]["success"] is True
