"""Bad input never crashes the app or changes the state; each gets a clear error, and a
WebSocket stays open unless the message is too big."""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, Persist
from livetemplate.testing import LiveClient, LiveSocket

pytestmark = pytest.mark.anyio

TEMPLATE = "<p>{{ count }}</p><p>{{ 100 // divisor }}</p>"


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0
    divisor: int = 1


class Item(msgspec.Struct):
    title: str
    qty: int
    due: datetime.date | None = None


class Controller:
    def increment(self, state: State, ctx: Context) -> State:
        state.count += 1
        return state

    def add(self, state: State, ctx: Context) -> State:
        state.count += ctx.get_int("n", 1)
        return state

    def order(self, state: State, ctx: Context) -> State:
        item = ctx.bind(Item)
        state.count += item.qty
        return state

    def boom(self, state: State, ctx: Context) -> State:
        state.count = 999
        raise RuntimeError("kaboom")

    def wrong_return(self, state: State, ctx: Context) -> str:
        return "not a state"

    def divide_by(self, state: State, ctx: Context) -> State:
        state.divisor = ctx.get_int("d")
        return state


def make(**options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(Controller(), State(), template=TEMPLATE, **options)


async def connected(client: LiveClient) -> LiveSocket:
    """A WebSocket after its first push, with the count at 1."""
    ws = client.websocket("/")
    await ws.__aenter__()
    await ws.receive_json()
    reply = await ws.action("increment")
    assert reply["tree"] == {"0": "1"}
    return ws


async def still_fine(ws: LiveSocket, count: int = 1) -> None:
    """The connection is open and the count is what it was."""
    await ws.send_json({"action": "__ping__"})
    assert await ws.receive_json() == {"pong": True}
    assert f"<p>{count}</p>" in ws.html()
    reply = await ws.action("add", {"n": 0})
    assert reply["meta"]["success"] is True
    assert reply["tree"] == {}


def general_error(reply: dict[str, Any]) -> str:
    assert reply["tree"] == {}
    assert reply["meta"]["success"] is False
    message = reply["meta"]["errors"]["_general"]
    assert isinstance(message, str) and message
    return message


# -- WebSocket frames ---------------------------------------------------------------------------


async def test_binary_frame() -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        await ws.send_bytes(b'{"action":"increment"}')
        assert "binary frames are not supported" in general_error(await ws.receive_json())
        await still_fine(ws)


@pytest.mark.parametrize("text", ["{", "not json", "", '{"action": "increment"', "\x00", '{"action":"increment"}x'])
async def test_malformed_json(text: str) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        await ws.send_text(text)
        assert "malformed message" in general_error(await ws.receive_json())
        await still_fine(ws)


@pytest.mark.parametrize("payload", [[1, 2], "increment", 42, None, True, {}, {"data": {}}])
async def test_messages_that_are_not_an_action_object(payload: Any) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        await ws.send_json(payload)
        assert "malformed message" in general_error(await ws.receive_json())
        await still_fine(ws)


@pytest.mark.parametrize(
    "payload",
    [
        {"action": 5},
        {"action": None},
        {"action": ["increment"]},
        {"action": "increment", "data": [1]},
        {"action": "increment", "data": "n=1"},
        {"action": "increment", "data": 3},
        {"action": "increment", "submitter": 7},
    ],
)
async def test_wrong_envelope_types(payload: Any) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        await ws.send_json(payload)
        assert "malformed message" in general_error(await ws.receive_json())
        await still_fine(ws)


async def test_missing_or_null_data_is_empty_data() -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        no_data = await ws.action("add")
        await ws.send_json({"action": "add", "data": None})
        null_data = await ws.receive_json()
        extra = await ws.action("add", {"n": 2}, submitter="add", upload_name="x", entries=[])
    assert no_data["tree"] == {"0": "2"}
    assert null_data["tree"] == {"0": "3"}
    assert extra["tree"] == {"0": "5"}


@pytest.mark.parametrize("name", ["", " ", "../etc/passwd", "__class__", "__init__", "a" * 5000, "increment!", "💥"])
async def test_odd_action_names_are_unknown(name: str) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        reply = await ws.action(name, {})
        assert "unknown action" in general_error(reply)
        assert reply["meta"]["action"] == name[:128]  # echoed as sent, cut past any action name's length
        await still_fine(ws)


@pytest.mark.parametrize("action", ["upload_start", "upload_chunk", "upload_complete", "cancel_upload"])
async def test_upload_messages_get_a_clear_error(action: str) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        await ws.send_json({"action": action, "upload_name": "avatar", "files": []})
        reply = await ws.receive_json()
        assert "this page declares no uploads" in general_error(reply)
        assert reply["meta"]["action"] == action
        await still_fine(ws)


# -- data of the wrong type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": "Pen", "qty": "many"}, "qty"),
        ({"title": "Pen", "qty": 1.5}, "qty"),
        ({"title": ["Pen"], "qty": 1}, "title"),
        ({"title": "Pen", "qty": 1, "due": "next week"}, "due"),
        ({"title": "Pen", "qty": {"n": 1}}, "qty"),
    ],
)
async def test_bind_with_wrong_types_is_a_field_error(data: dict[str, Any], field: str) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        reply = await ws.action("order", data)
        assert reply["tree"] == {}
        assert reply["meta"]["success"] is False
        assert list(reply["meta"]["errors"]) == [field]
        assert reply["meta"]["errors"][field]
        await still_fine(ws)


async def test_bind_converts_form_strings() -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        reply = await ws.action("order", {"title": "Pen", "qty": "4", "due": "2030-01-02"})
    assert reply["meta"] == {"success": True, "errors": {}, "action": "order"}
    assert reply["tree"] == {"0": "5"}


@pytest.mark.parametrize("value", ["lots", "1.5", 2.5, True, [1], {"n": 1}])
async def test_get_int_with_wrong_types_is_a_field_error(value: Any) -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        reply = await ws.action("add", {"n": value})
        assert reply["meta"]["success"] is False
        assert reply["meta"]["errors"] == {"n": "must be a whole number"}
        await still_fine(ws)


# -- failing actions and renders ---------------------------------------------------------------------


async def test_an_action_that_raises() -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        reply = await ws.action("boom")
        assert general_error(reply) == "Something went wrong."
        await still_fine(ws)
        http = await client.post_action("boom")
        assert http.status_code == 200
        assert http.json()["meta"]["errors"] == {"_general": "Something went wrong."}
        assert http.json()["tree"]["0"] == "1"


async def test_an_action_that_raises_in_dev_mode_shows_the_error() -> None:
    async with LiveClient(make(dev_mode=True)) as client:
        ws = await connected(client)
        assert general_error(await ws.action("boom")) == "RuntimeError: kaboom"
        await still_fine(ws)


async def test_an_action_returning_the_wrong_type() -> None:
    async with LiveClient(make(dev_mode=True)) as client:
        ws = await connected(client)
        message = general_error(await ws.action("wrong_return"))
        assert "must return a State (or None), not str" in message
        await still_fine(ws)


async def test_a_state_that_cannot_be_rendered() -> None:
    async with LiveClient(make()) as client:
        ws = await connected(client)
        reply = await ws.action("divide_by", {"d": 0})
        assert general_error(reply) == "The page could not be rendered."
        recovered = await ws.action("divide_by", {"d": 4})
        assert "s" in recovered["tree"]  # the client's view was unknown: a complete tree again
        assert ws.html() == "<p>1</p><p>25</p>"
        await still_fine(ws)


# -- message size ------------------------------------------------------------------------------------


async def test_message_over_the_limit_closes_with_1009() -> None:
    async with LiveClient(make(max_message_size=1024)) as client:
        ws = await connected(client)
        await ws.send_json({"action": "add", "data": {"n": 1, "pad": "x" * 1024}})
        assert await ws.receive_close() == 1009
    assert ws.finished


async def test_message_at_the_limit_is_fine() -> None:
    async with LiveClient(make(max_message_size=1024)) as client:
        ws = await connected(client)
        text = json.dumps({"action": "add", "data": {"n": 1, "pad": ""}})
        text = text.replace('"pad": ""', '"pad": "' + "x" * (1024 - len(text)) + '"')
        assert len(text.encode()) == 1024
        await ws.send_text(text)
        assert (await ws.receive_json())["tree"] == {"0": "2"}


async def test_message_over_the_limit_in_bytes_closes_with_1009() -> None:
    """The limit is in bytes: 400 characters of three bytes each are 1200 bytes."""
    async with LiveClient(make(max_message_size=1024)) as client:
        ws = await connected(client)
        text = json.dumps({"action": "add", "data": {"pad": "€" * 400}}, ensure_ascii=False)
        assert len(text) < 1024 < len(text.encode())
        await ws.send_text(text)
        assert await ws.receive_close() == 1009


async def test_binary_message_over_the_limit_closes_with_1009() -> None:
    async with LiveClient(make(max_message_size=1024)) as client:
        ws = await connected(client)
        await ws.send_bytes(b"x" * 2048)
        message = await ws.receive()
        assert (message["type"], message.get("code")) == ("websocket.close", 1009), message


# -- HTTP -----------------------------------------------------------------------------------------------


async def http_count(client: LiveClient) -> str:
    return str((await client.get_json("/")).json()["tree"]["0"])


@pytest.mark.parametrize(
    "body",
    [b"{", b"[1]", b'"increment"', b"null", b'{"action": 5}', b'{"action":"add","data":[1]}', b"\xff\xfe", b""],
)
async def test_malformed_json_posts(body: bytes) -> None:
    async with LiveClient(make()) as client:
        await client.post_action("increment")
        response = await client.post("/", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400
        reply = response.json()
        assert reply["tree"] == {}
        assert reply["meta"]["success"] is False
        assert reply["meta"]["errors"]["_general"].startswith("malformed message")
        assert await http_count(client) == "1"


async def test_post_body_over_the_limit() -> None:
    async with LiveClient(make(max_message_size=1024)) as client:
        await client.post_action("increment")
        response = await client.post_action("add", {"n": 1, "pad": "x" * 2048})
        assert response.status_code == 413
        assert await http_count(client) == "1"


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=x", "application/xml"])
async def test_unsupported_post_bodies(content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with LiveClient(make()) as client:
        response = await client.post("/", content=b'{"action":"increment"}', headers=headers)
        assert response.status_code == 415
        assert "Unsupported Media Type" in response.text
        assert await http_count(client) == "0"


async def test_form_post_that_is_not_utf8() -> None:
    async with LiveClient(make()) as client:
        await client.get("/")
        response = await client.post(
            "/", content=b"n=\xff\xfe&increment=", headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code in (400, 403)
        assert await http_count(client) == "0"


async def test_garbled_query_and_cookies() -> None:
    async with LiveClient(make()) as client:
        response = await client.get("/?%zz=%%&&=x&n", headers={"cookie": 'livetemplate-id="; ;;=; lvt-flash=%'})
    assert response.status_code == 200
    assert "set-cookie" in response.headers
