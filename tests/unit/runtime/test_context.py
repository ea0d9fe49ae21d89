"""The context an action receives: data conversions, bind, identity, flash, the HTTP-only
features (redirects and cookies), topics."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

import msgspec
import pytest

import livetemplate
from livetemplate import Context, FieldError, Persist
from livetemplate.testing import LiveClient, LiveSocket

pytestmark = pytest.mark.anyio

TEMPLATE = "<p>{{ count }}</p><output>{{ lvt.flash('info') }}</output>"


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0


class Point(TypedDict):
    x: int
    y: int


@dataclasses.dataclass
class Person:
    name: str
    age: int = 0


class Probe:
    """Runs ``self.probe(ctx)`` in an action and keeps what it returned."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.probe: Any = None

    def check(self, state: State, ctx: Context) -> State:
        self.results.append(self.probe(ctx))
        state.count += 1
        return state

    def flash(self, state: State, ctx: Context) -> State:
        ctx.set_flash("info", ctx.get_str("text"))
        return state

    def unflash(self, state: State, ctx: Context) -> State:
        ctx.clear_flash(ctx.get("key"))
        return state

    def redirect(self, state: State, ctx: Context) -> State:
        state.count += 1
        ctx.redirect("/next")
        return state

    def set_cookie(self, state: State, ctx: Context) -> State:
        state.count += 1
        ctx.set_cookie("theme", "dark", max_age=60)
        return state

    def get_cookie(self, state: State, ctx: Context) -> State:
        self.results.append(ctx.get_cookie("theme", "none"))
        return state

    def delete_cookie(self, state: State, ctx: Context) -> State:
        ctx.delete_cookie("theme")
        return state


def make(**options: Any) -> tuple[livetemplate.LiveApp, Probe]:
    probe = Probe()
    return livetemplate.mount(probe, State(), template=TEMPLATE, **options), probe


async def probe_over_http(data: dict[str, Any], probe: Any) -> tuple[dict[str, Any], Any]:
    """Run ``probe(ctx)`` in an action posted with ``data``; the meta and its result."""
    app, controller = make()
    controller.probe = probe
    async with LiveClient(app) as client:
        response = await client.post_action("check", data)
    meta = response.json()["meta"]
    return meta, controller.results[0] if controller.results else None


async def connected(client: LiveClient, url: str = "/") -> LiveSocket:
    ws = client.websocket(url)
    await ws.__aenter__()
    await ws.receive_json()
    return ws


# -- conversions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "call", "expected"),
    [
        ({"s": "text"}, lambda c: c.get_str("s"), "text"),
        ({"s": 7}, lambda c: c.get_str("s"), "7"),
        ({"s": True}, lambda c: c.get_str("s"), "true"),  # as the client typed it
        ({"s": 2.5}, lambda c: c.get_str("s"), "2.5"),
        ({}, lambda c: c.get_str("s"), ""),
        ({}, lambda c: c.get_str("s", "fallback"), "fallback"),
        ({"s": None}, lambda c: c.get_str("s", "d"), "d"),
        ({"n": 7}, lambda c: c.get_int("n"), 7),
        ({"n": "42"}, lambda c: c.get_int("n"), 42),
        ({"n": " -3 "}, lambda c: c.get_int("n"), -3),
        ({"n": ""}, lambda c: c.get_int("n", 5), 5),
        ({}, lambda c: c.get_int("n", 9), 9),
        ({"f": 1.5}, lambda c: c.get_float("f"), 1.5),
        ({"f": "2.25"}, lambda c: c.get_float("f"), 2.25),
        ({"f": 3}, lambda c: c.get_float("f"), 3.0),
        ({}, lambda c: c.get_float("f", 0.5), 0.5),
        ({"b": True}, lambda c: c.get_bool("b"), True),
        ({"b": False}, lambda c: c.get_bool("b", True), False),
        ({"b": "on"}, lambda c: c.get_bool("b"), True),
        ({"b": "true"}, lambda c: c.get_bool("b"), True),
        ({"b": "1"}, lambda c: c.get_bool("b"), True),
        ({"b": 1}, lambda c: c.get_bool("b"), True),
        ({"b": "off"}, lambda c: c.get_bool("b"), False),
        ({"b": ""}, lambda c: c.get_bool("b"), False),
        ({"b": "No"}, lambda c: c.get_bool("b"), False),
        ({}, lambda c: c.get_bool("b", True), True),
        ({"x": [1, 2]}, lambda c: c.get("x"), [1, 2]),
        ({}, lambda c: c.get("x", "d"), "d"),
        ({"x": None}, lambda c: c.has("x"), True),
        ({}, lambda c: c.has("x"), False),
        ({"a": 1}, lambda c: c.data, {"a": 1}),
    ],
)
async def test_conversions(data: dict[str, Any], call: Any, expected: Any) -> None:
    meta, result = await probe_over_http(data, call)
    assert meta["success"] is True
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("data", "call", "errors"),
    [
        ({"n": "seven"}, lambda c: c.get_int("n"), {"n": "must be a whole number"}),
        ({"n": 7.5}, lambda c: c.get_int("n"), {"n": "must be a whole number"}),
        ({"n": False}, lambda c: c.get_int("n"), {"n": "must be a whole number"}),
        ({"f": "abc"}, lambda c: c.get_float("f"), {"f": "must be a number"}),
        ({"f": True}, lambda c: c.get_float("f"), {"f": "must be a number"}),
        ({"f": [1]}, lambda c: c.get_float("f"), {"f": "must be a number"}),
        ({"b": "maybe"}, lambda c: c.get_bool("b"), {"b": "must be true or false"}),
    ],
)
async def test_conversion_errors_are_field_errors(data: dict[str, Any], call: Any, errors: dict[str, str]) -> None:
    meta, result = await probe_over_http(data, call)
    assert meta["success"] is False
    assert meta["errors"] == errors
    assert result is None


async def test_conversions_over_websocket() -> None:
    app, controller = make()
    controller.probe = lambda c: (c.get_int("n"), c.get_bool("b"), c.get_str("s"))
    async with LiveClient(app) as client:
        ws = await connected(client)
        reply = await ws.action("check", {"n": "3", "b": "on", "s": 5})
        bad = await ws.action("check", {"n": "x"})
    assert reply["meta"]["success"] is True
    assert controller.results == [(3, True, "5")]
    assert bad["meta"]["errors"] == {"n": "must be a whole number"}
    assert ws.html() == "<p>1</p><output></output>"


# -- bind --------------------------------------------------------------------------------------------


class Signup(msgspec.Struct):
    email: str
    age: int
    newsletter: bool = False


async def test_bind_struct() -> None:
    meta, result = await probe_over_http(
        {"email": "a@b.c", "age": "30", "newsletter": "true"}, lambda c: c.bind(Signup)
    )
    assert meta["success"] is True
    assert result == Signup("a@b.c", 30, True)


async def test_bind_dataclass_and_typeddict() -> None:
    _, person = await probe_over_http({"name": "Ada", "age": 36}, lambda c: c.bind(Person))
    assert person == Person("Ada", 36)
    _, point = await probe_over_http({"x": "1", "y": 2}, lambda c: c.bind(Point))
    assert point == {"x": 1, "y": 2}


async def test_bind_errors_are_field_errors() -> None:
    meta, _ = await probe_over_http({"email": "a@b.c", "age": "old"}, lambda c: c.bind(Signup))
    assert meta["success"] is False
    assert list(meta["errors"]) == ["age"]
    assert "int" in meta["errors"]["age"]


async def test_bind_missing_field_is_an_error_of_that_field() -> None:
    meta, _ = await probe_over_http({"age": 3}, lambda c: c.bind(Signup))
    assert meta["success"] is False
    assert list(meta["errors"]) == ["email"]


# -- identity --------------------------------------------------------------------------------------


async def test_identity_over_http_and_websocket() -> None:
    app, controller = make()
    controller.probe = lambda c: (c.action, c.group_id, c.is_http, c.submitter, c.self_topic, c.session.group_id)
    async with LiveClient(app) as client:
        await client.post("/", json={"action": "Check", "data": {}, "submitter": "go"})
        group_id = client.group_id
        ws = await connected(client)
        await ws.send_json({"action": "check", "data": {}, "submitter": "btn"})
        await ws.receive_json()
        await ws.action("check")
    topic = f"lvt:session:{group_id}"
    assert controller.results == [
        ("Check", group_id, True, "go", topic, group_id),
        ("check", group_id, False, "btn", topic, group_id),
        ("check", group_id, False, None, topic, group_id),
    ]


async def test_query_is_the_connections() -> None:
    app, controller = make()
    controller.probe = lambda c: (c.query, c.get_str("page"))
    async with LiveClient(app) as client:
        await client.post_action("check", {}, url="/?page=3")
        ws = await connected(client, "/?page=4")
        await ws.action("check")
        await ws.action("__navigate__", {"page": "5"})
        await ws.action("check", {"page": "x"})
    assert controller.results == [({"page": "3"}, ""), ({"page": "4"}, ""), ({"page": "5"}, "x")]


# -- flash ------------------------------------------------------------------------------------------


async def test_flash_set_and_clear_over_websocket() -> None:
    app, _ = make()
    async with LiveClient(app) as client:
        ws = await connected(client)
        await ws.action("flash", {"text": "Hello"})
        assert ws.html().endswith("<output>Hello</output>")
        await ws.action("unflash", {"key": "info"})
        assert ws.html().endswith("<output></output>")
        await ws.action("flash", {"text": "Again"})
        await ws.action("unflash", {})  # clears all
        assert ws.html().endswith("<output></output>")


async def test_flash_over_json_post_is_in_the_answer() -> None:
    app, _ = make()
    async with LiveClient(app) as client:
        response = await client.post_action("flash", {"text": "Posted"})
    assert response.json()["tree"]["1"] == "Posted"


@pytest.mark.parametrize("key", ["", "a:b", "with space", "ü"])
async def test_flash_keys_are_checked(key: str) -> None:
    meta, _ = await probe_over_http({}, lambda c: c.set_flash(key, "x"))
    assert meta["success"] is False


# -- HTTP only ----------------------------------------------------------------------------------------


async def test_cookies_over_http() -> None:
    app, controller = make()
    async with LiveClient(app) as client:
        response = await client.post_action("set_cookie")
        assert "theme=dark; HttpOnly; Max-Age=60; Path=/; SameSite=Lax" in response.headers.get_list("set-cookie")
        await client.post_action("get_cookie")
        deleted = await client.post_action("delete_cookie")
        assert any(c.startswith('theme=""') and "Max-Age=0" in c for c in deleted.headers.get_list("set-cookie"))
        await client.post_action("get_cookie")
    assert controller.results == ["dark", "none"]


async def test_redirect_over_json_post_is_ignored_by_the_tree() -> None:
    app, _ = make()
    async with LiveClient(app) as client:
        response = await client.post_action("redirect")
    assert response.json()["meta"]["success"] is True


@pytest.mark.parametrize("action", ["redirect", "set_cookie", "get_cookie", "delete_cookie"])
async def test_http_features_over_websocket_fail_clearly(action: str) -> None:
    app, _ = make()
    async with LiveClient(app) as client:
        ws = await connected(client)
        reply = await ws.action(action)
        assert reply["meta"]["success"] is False
        assert reply["tree"] == {}  # nothing committed
        message = reply["meta"]["errors"]["_general"]
        assert action in message
        assert "WebSocket" in message
        await ws.send_json({"action": "__ping__"})
        assert await ws.receive_json() == {"pong": True}


async def test_http_features_over_websocket_in_dev_mode() -> None:
    app, _ = make(dev_mode=True)
    async with LiveClient(app) as client:
        ws = await connected(client)
        reply = await ws.action("redirect")
    assert reply["meta"]["errors"]["_general"].startswith("ctx.redirect() is only available")


def test_field_error_shapes() -> None:
    assert FieldError("a", "b").errors == {"a": "b"}
    assert FieldError({"a": 1, "b": "c"}).errors == {"a": "1", "b": "c"}
    with pytest.raises(TypeError):
        FieldError("a")
    with pytest.raises(TypeError):
        FieldError({"a": "b"}, "c")
