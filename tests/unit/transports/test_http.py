"""HTTP paths of a live app: the page, the HEAD probe, the JSON transport of the client's
HTTP mode, the Origin check, the client's script."""

from __future__ import annotations

import base64
import re
from importlib import resources
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, FieldError, Persist
from livetemplate.request import SessionIds
from livetemplate.testing import ClientTree, LiveClient

pytestmark = pytest.mark.anyio

FRAGMENT = (
    "<p>Count: <output>{{ count }}</output></p>"
    '{% if lvt.has_error("n") %}<small>{{ lvt.error("n") }}</small>{% endif %}'
)
DOCUMENT = """<!doctype html>
<html>
<head><title>Counter {{ count }}</title></head>
<body class="page">
  <h1>Count: {{ count }}</h1>
</body>
</html>"""
WITH_SCRIPT = '<p>{{ count }}</p><script src="/static/livetemplate-client.js" defer></script>'
ASSET = "/_livetemplate/livetemplate-client-0.25.1.js"
WRAPPER = re.compile(r'<div data-lvt-id="(lvt-[0-9a-f]+)"([^>]*)>(.*)</div>', re.DOTALL)
ID_COOKIE = re.compile(
    r"livetemplate-id=([A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}); Path=/; Max-Age=(\d+); HttpOnly; SameSite=Lax"
    r"(; Secure)?\Z"
)


class Count(msgspec.Struct):
    count: Annotated[int, Persist] = 0


class Counter:
    def increment(self, state: Count, ctx: Context) -> Count:
        state.count += 1
        return state

    async def add(self, state: Count, ctx: Context) -> Count:
        n = ctx.get_int("n")
        if n < 0:
            raise FieldError("n", "must not be negative")
        state.count += n
        return state


class Changing(Counter):
    def change(self, state: Count, ctx: Context) -> Count:
        return state


def counter(template: str = FRAGMENT, controller: Any = None, **options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(controller or Counter(), Count(), template=template, **options)


def wrapper(page: str) -> tuple[str, str, str]:
    """The wrapper's id, its other attributes and its content."""
    found = WRAPPER.search(page)
    assert found is not None, page
    return found.group(1), found.group(2), found.group(3)


# -- GET: the page ---------------------------------------------------------------------------


async def test_get_fragment_is_wrapped_whole_with_the_client_script() -> None:
    async with LiveClient(counter()) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-livetemplate-websocket"] == "enabled"
    page = response.text
    assert page.count("data-lvt-id=") == 1
    assert page.startswith('<div data-lvt-id="lvt-')
    _, _, content = wrapper(page)
    assert content == "<p>Count: <output>0</output></p>"
    assert page.endswith(f'</div><script src="{ASSET}"></script>')


async def test_get_document_wraps_the_body_content_only() -> None:
    async with LiveClient(counter(DOCUMENT)) as client:
        page = (await client.get("/")).text
    head, _, rest = page.partition("<body")
    assert "<title>Counter 0</title>" in head
    assert "data-lvt-id" not in head
    assert rest.startswith(' class="page"><div data-lvt-id="lvt-')
    _, _, content = wrapper(rest)
    assert content == "\n  <h1>Count: 0</h1>\n"
    assert rest.endswith(f'</div><script src="{ASSET}"></script></body>\n</html>')
    assert page.count("data-lvt-id=") == 1


async def test_get_keeps_a_client_script_the_template_has() -> None:
    async with LiveClient(counter(WITH_SCRIPT)) as client:
        page = (await client.get("/")).text
    assert page.count("<script") == 1
    assert "/_livetemplate/" not in page
    assert 'src="/static/livetemplate-client.js"' in page


async def test_client_script_url_option() -> None:
    async with LiveClient(counter(client_script_url="https://cdn.example/lvt.js")) as client:
        page = (await client.get("/")).text
    assert page.endswith('</div><script src="https://cdn.example/lvt.js"></script>')


async def test_wrapper_ids_are_unique_per_page() -> None:
    async with LiveClient(counter()) as client:
        first = wrapper((await client.get("/")).text)[0]
        second = wrapper((await client.get("/")).text)[0]
    assert re.fullmatch(r"lvt-[0-9a-f]{16}", first)
    assert first != second


async def test_loading_attribute_and_heartbeat_option() -> None:
    async with LiveClient(counter()) as client:
        _, attributes, _ = wrapper((await client.get("/")).text)
    assert attributes == ' data-lvt-loading="true"'
    async with LiveClient(counter(heartbeat_ms=5000)) as client:
        _, attributes, _ = wrapper((await client.get("/")).text)
    assert attributes == ' data-lvt-loading="true" data-lvt-heartbeat-ms="5000"'
    async with LiveClient(counter(heartbeat_ms=0, loading_indicator=False)) as client:
        _, attributes, _ = wrapper((await client.get("/")).text)
    assert attributes == ' data-lvt-heartbeat-ms="0"'


# -- the session cookie ----------------------------------------------------------------------


async def test_first_get_sets_the_session_cookie() -> None:
    async with LiveClient(counter()) as client:
        response = await client.get("/")
        again = await client.get("/")
    match = ID_COOKIE.fullmatch(response.headers["set-cookie"])
    assert match is not None, response.headers["set-cookie"]
    value, max_age, secure = match.groups()
    group_id, _, signature = value.partition(".")
    assert len(base64.urlsafe_b64decode(group_id + "=")) == 32
    assert len(base64.urlsafe_b64decode(signature + "==")) == 16
    assert int(max_age) == 365 * 24 * 3600
    assert secure is None
    assert "set-cookie" not in again.headers  # the browser has it now
    assert client.group_id == group_id


async def test_session_cookies_are_random() -> None:
    app = counter()
    async with LiveClient(app) as one, LiveClient(app, shutdown=False) as two:
        await one.get("/")
        await two.get("/")
        assert one.group_id != two.group_id


async def test_a_malformed_session_cookie_is_replaced() -> None:
    async with LiveClient(counter()) as client:
        response = await client.get("/", headers={"cookie": "livetemplate-id=short"})
    match = ID_COOKIE.fullmatch(response.headers["set-cookie"])
    assert match is not None
    assert match.group(1) != "short"


async def test_cookie_max_age_option() -> None:
    async with LiveClient(counter(cookie_max_age=60)) as client:
        response = await client.get("/")
    assert "; Max-Age=60;" in response.headers["set-cookie"]


async def test_cookie_is_secure_over_https() -> None:
    async with LiveClient(counter(), base_url="https://testserver") as client:
        response = await client.get("/")
    match = ID_COOKIE.fullmatch(response.headers["set-cookie"])
    assert match is not None and match.group(3) == "; Secure"


@pytest.mark.parametrize(
    ("header", "secure"),
    [
        ({"x-forwarded-proto": "https"}, True),
        ({"x-forwarded-proto": "https, http"}, True),
        ({"x-forwarded-proto": "http"}, False),
        ({"forwarded": "for=1.2.3.4;proto=https"}, True),
    ],
)
async def test_cookie_is_secure_behind_a_tls_proxy(header: dict[str, str], secure: bool) -> None:
    async with LiveClient(counter(trust_forwarded_headers=True)) as client:
        response = await client.get("/", headers=header)
    assert response.headers["set-cookie"].endswith("; Secure") is secure


async def test_forwarded_headers_are_distrusted_by_default() -> None:
    async with LiveClient(counter()) as client:
        response = await client.get("/", headers={"x-forwarded-proto": "https"})
    assert not response.headers["set-cookie"].endswith("; Secure")


# -- HEAD and the transport header -------------------------------------------------------------


async def test_head_probe() -> None:
    async with LiveClient(counter()) as client:
        response = await client.head("/")
    assert response.status_code == 200
    assert response.headers["x-livetemplate-websocket"] == "enabled"
    assert response.content == b""


async def test_head_probe_with_websocket_disabled() -> None:
    async with LiveClient(counter(websocket_disabled=True)) as client:
        head = await client.head("/")
        page = await client.get("/")
        posted = await client.post_action("increment")
    for response in (head, page, posted):
        assert response.headers["x-livetemplate-websocket"] == "disabled"


async def test_every_response_carries_the_transport_header() -> None:
    async with LiveClient(counter()) as client:
        responses = [
            await client.get("/"),
            await client.get_json("/"),
            await client.post_action("increment"),
            await client.post_action("__ping__"),
            await client.post("/", content=b"{", headers={"content-type": "application/json"}),
            await client.post_action("increment", headers={"origin": "http://evil.example"}),
            await client.post("/", content=b"x", headers={"content-type": "text/plain"}),
            await client.post("/", data={"title": "no csrf"}),
            await client.request("PUT", "/"),
            await client.get("/elsewhere"),
            await client.get(ASSET),
            await client.get("/_livetemplate/nothing.js"),
        ]
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 400, 403, 415, 403, 405, 404, 200, 404]
    assert all(r.headers["x-livetemplate-websocket"] == "enabled" for r in responses)


async def test_other_methods_and_paths() -> None:
    async with LiveClient(counter()) as client:
        put = await client.request("PUT", "/")
        delete = await client.request("DELETE", "/")
        other = await client.get("/other")
    assert put.status_code == delete.status_code == 405
    assert put.headers["allow"] == "GET, HEAD, POST"
    assert other.status_code == 404


# -- GET with Accept: application/json ----------------------------------------------------------


async def test_get_json_is_the_complete_initial_tree() -> None:
    async with LiveClient(counter()) as client:
        response = await client.get_json("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"tree", "meta"}
    assert body["meta"] == {"success": True, "errors": {}}
    assert body["tree"]["s"] == ["<p>Count: <output>", "</output></p>", ""]
    assert body["tree"]["0"] == "0"


async def test_get_json_advertises_change() -> None:
    async with LiveClient(counter(controller=Changing())) as client:
        body = (await client.get_json("/")).json()
    assert body["meta"] == {"success": True, "errors": {}, "capabilities": ["change"]}


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        ("application/json", True),
        ("application/vnd.api+json", True),
        ("*/*, application/json", True),
        ("text/html, application/json", False),
        ("*/*", False),
        ("", False),
    ],
)
async def test_accept_header_picks_json_or_html(accept: str, json_wanted: bool) -> None:
    async with LiveClient(counter()) as client:
        response = await client.get("/", headers={"accept": accept})
    wants = response.headers["content-type"] == "application/json"
    assert wants is json_wanted


async def test_get_json_of_a_document_is_the_body_region() -> None:
    async with LiveClient(counter(DOCUMENT)) as client:
        page = (await client.get("/")).text
        body = (await client.get_json("/")).json()
    view = ClientTree()
    view.apply(body["tree"])
    assert view.html() == wrapper(page)[2]
    assert "<title>" not in view.html()


# -- POST JSON (the client's HTTP mode) ---------------------------------------------------------


async def test_post_json_runs_the_action() -> None:
    async with LiveClient(counter()) as client:
        await client.get("/")
        first = await client.post_action("increment", {})
        second = await client.post_action("add", {"n": 5})
        page = (await client.get("/")).text
    assert first.status_code == second.status_code == 200
    assert first.json()["meta"] == {"success": True, "errors": {}, "action": "increment"}
    assert first.json()["tree"]["0"] == "1"
    assert "s" in second.json()["tree"]  # HTTP answers are complete trees
    assert second.json()["tree"]["0"] == "6"
    assert second.json()["meta"]["action"] == "add"
    assert "<output>6</output>" in page


async def test_post_json_without_data() -> None:
    async with LiveClient(counter()) as client:
        response = await client.post("/", json={"action": "increment"}, headers={"accept": "application/json"})
    assert response.json()["meta"]["success"] is True
    assert response.json()["tree"]["0"] == "1"


async def test_post_json_sets_the_cookie_when_missing() -> None:
    async with LiveClient(counter()) as client:
        response = await client.post_action("increment")
    assert ID_COOKIE.fullmatch(response.headers["set-cookie"]) is not None


async def test_post_json_validation_error() -> None:
    async with LiveClient(counter()) as client:
        await client.post_action("add", {"n": 2})
        response = await client.post_action("add", {"n": -1})
        bad = await client.post_action("add", {"n": "lots"})
        after = await client.get_json("/")
    body = response.json()
    assert response.status_code == 200
    assert body["meta"] == {"success": False, "errors": {"n": "must not be negative"}, "action": "add"}
    view = ClientTree()
    view.apply(body["tree"])
    assert view.html() == "<p>Count: <output>2</output></p><small>must not be negative</small>"
    assert bad.json()["meta"]["errors"] == {"n": "must be a whole number"}
    assert after.json()["tree"]["0"] == "2"


async def test_post_json_unknown_action() -> None:
    async with LiveClient(counter()) as client:
        await client.post_action("increment")
        response = await client.post_action("explode", {"x": 1})
        after = await client.get_json("/")
    meta = response.json()["meta"]
    assert meta["success"] is False
    assert meta["action"] == "explode"
    assert "unknown action 'explode'" in meta["errors"]["_general"]
    assert after.json()["tree"]["0"] == "1"


async def test_post_json_ping() -> None:
    async with LiveClient(counter()) as client:
        response = await client.post_action("__ping__")
    assert response.status_code == 200
    assert response.json() == {"pong": True}


async def test_post_json_navigate_is_refused() -> None:
    async with LiveClient(counter()) as client:
        response = await client.post_action("__navigate__", {"filter": "done"})
    assert response.status_code == 400
    body = response.json()
    assert body["tree"] == {}
    assert body["meta"]["success"] is False
    assert "WebSocket" in body["meta"]["errors"]["_general"]


async def test_post_json_content_type_with_charset() -> None:
    async with LiveClient(counter()) as client:
        response = await client.post(
            "/", content=b'{"action":"increment"}', headers={"content-type": "application/json; charset=utf-8"}
        )
    assert response.json()["tree"]["0"] == "1"


# -- Origin (the CSRF defence of fetches) -----------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        ("http://testserver", 200),
        ("HTTP://TestServer", 200),
        ("http://evil.example", 403),
        ("https://testserver", 403),
        ("http://testserver:8080", 403),
        ("null", 403),
    ],
)
async def test_post_origin_check(origin: str | None, status: int) -> None:
    headers = {"origin": origin} if origin is not None else {}
    async with LiveClient(counter()) as client:
        response = await client.post_action("increment", headers=headers)
        after = await client.get_json("/")
    assert response.status_code == status
    assert after.json()["tree"]["0"] == ("1" if status == 200 else "0")


async def test_post_origin_behind_a_tls_proxy() -> None:
    headers = {"origin": "https://testserver", "x-forwarded-proto": "https"}
    async with LiveClient(counter(trust_forwarded_headers=True)) as client:
        response = await client.post_action("increment", headers=headers)
    assert response.status_code == 200


async def test_allowed_origins_and_dev_mode() -> None:
    async with LiveClient(counter(allowed_origins=["https://app.example"])) as client:
        allowed = await client.post_action("increment", headers={"origin": "https://app.example"})
        own = await client.post_action("increment", headers={"origin": "http://testserver"})
    assert allowed.status_code == 200
    assert own.status_code == 403  # an explicit list replaces the same-origin rule
    async with LiveClient(counter(dev_mode=True)) as client:
        anything = await client.post_action("increment", headers={"origin": "http://localhost:5173"})
    assert anything.status_code == 200


# -- the client's script ----------------------------------------------------------------------


async def test_client_asset_is_served_for_a_year() -> None:
    expected = resources.files("livetemplate").joinpath("static", "livetemplate-client.browser.js").read_bytes()
    async with LiveClient(counter()) as client:
        response = await client.get(ASSET)
        head = await client.head(ASSET)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.content == expected
    assert head.status_code == 200
    assert head.content == b""
    assert "set-cookie" not in response.headers


async def test_client_asset_source_map_and_unknown_names() -> None:
    async with LiveClient(counter()) as client:
        source_map = await client.get(ASSET + ".map")
        old = await client.get("/_livetemplate/livetemplate-client-0.20.0.js")
        post = await client.post(ASSET, content=b"")
    assert source_map.status_code == 200
    assert source_map.headers["content-type"] == "application/json"
    assert old.status_code == 404
    assert post.status_code == 404


# -- a client that goes away ------------------------------------------------------------------


async def test_a_client_gone_during_the_body_gets_no_answer_and_runs_nothing() -> None:
    """It used to be answered "413 too large"; nobody is left to answer, and nothing runs."""
    app = counter()
    messages = iter(
        [{"type": "http.request", "body": b'{"action": "incr', "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
    }
    await app(scope, receive, send)
    assert sent == []
    assert len(app.groups) == 0
    await app.shutdown()


async def test_the_csrf_token_is_computed_once_per_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    app = counter()
    calls = []
    token = SessionIds.csrf_token

    def counted(self: SessionIds, group_id: str) -> str:
        calls.append(group_id)
        return token(self, group_id)

    monkeypatch.setattr(SessionIds, "csrf_token", counted)
    async with LiveClient(app) as client, client.connect("/") as ws:
        for _ in range(5):
            await ws.action("increment")
    assert len(calls) == 1


# -- a template that fails --------------------------------------------------------------------


BROKEN = "<p>{{ count }}</p>{% if count > 0 %}{{ 1 // 0 }}{% endif %}"


@pytest.mark.parametrize("dev_mode", [False, True])
async def test_a_failing_template_answers_500_and_says_why_in_dev_mode(dev_mode: bool) -> None:
    async with LiveClient(counter(BROKEN, dev_mode=dev_mode)) as client:
        await client.get("/")
        reply = await client.post_action("increment")
        page = await client.get("/")
        initial = await client.get_json("/")
    detail = "ZeroDivisionError" if dev_mode else "The page could not be rendered."
    assert reply.status_code == 500 and detail in reply.json()["meta"]["errors"]["_general"]
    assert reply.json()["tree"] == {}
    assert page.status_code == 500 and page.text.startswith("Internal Server Error: ") and detail in page.text
    assert initial.status_code == 500 and detail in initial.json()["meta"]["errors"]["_general"]
