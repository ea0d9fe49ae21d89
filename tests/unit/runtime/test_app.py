"""A live app mounted under a prefix inside Starlette and FastAPI: the page, the client's
script under the prefix, JSON posts, plain forms and the WebSocket, all through the outer app."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import livetemplate
from examples.todos.app import create_app
from livetemplate.testing import LiveClient

pytestmark = pytest.mark.anyio

ASSET = "/todos/_livetemplate/livetemplate-client-0.25.1.js"
CSRF = re.compile(r'name="_csrf" value="([^"]*)"')


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


def starlette_app(live: livetemplate.LiveApp) -> Any:
    return Starlette(routes=[Route("/", home), Mount("/todos", app=live)])


def fastapi_app(live: livetemplate.LiveApp) -> Any:
    api = FastAPI()

    @api.get("/")
    async def index() -> PlainTextResponse:
        return PlainTextResponse("home")

    api.mount("/todos", live)
    return api


FRAMEWORKS = [pytest.param(starlette_app, id="starlette"), pytest.param(fastapi_app, id="fastapi")]


@pytest.fixture(params=FRAMEWORKS)
def outer(request: pytest.FixtureRequest) -> Callable[[livetemplate.LiveApp], Any]:
    """Wraps the live app in the outer framework, mounted at ``/todos``."""
    return request.param  # type: ignore[no-any-return]


async def test_page_and_asset_under_the_prefix(outer: Callable[[livetemplate.LiveApp], Any]) -> None:
    live = create_app()
    async with LiveClient(outer(live), shutdown=False) as client:
        assert (await client.get("/")).text == "home"
        page = await client.get("/todos/")
        asset = await client.get(ASSET)
        head = await client.head("/todos/")
        elsewhere = await client.get("/todos/nope")
        unprefixed = await client.get("/_livetemplate/livetemplate-client-0.25.1.js")
    await live.shutdown()
    assert page.status_code == 200
    assert page.headers["x-livetemplate-websocket"] == "enabled"
    assert f'<script src="{ASSET}"></script></body>' in page.text
    assert page.text.count("data-lvt-id=") == 1
    assert "livetemplate-id" in page.headers["set-cookie"]
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert b"LiveTemplateClient" in asset.content
    assert head.status_code == 200
    assert head.headers["x-livetemplate-websocket"] == "enabled"
    assert elsewhere.status_code == 404
    assert unprefixed.status_code == 404


async def test_json_post_through_the_outer_app(outer: Callable[[livetemplate.LiveApp], Any]) -> None:
    live = create_app()
    async with LiveClient(outer(live), shutdown=False) as client:
        await client.get("/todos/")
        added = await client.post_action("add", {"title": "Mounted"}, url="/todos/")
        invalid = await client.post_action("add", {"title": ""}, url="/todos/")
        initial = await client.get_json("/todos/")
        pong = await client.post_action("__ping__", url="/todos/")
        foreign = await client.post_action("add", {"title": "x"}, url="/todos/", headers={"origin": "http://evil"})
    await live.shutdown()
    assert added.status_code == 200
    assert added.json()["meta"] == {"success": True, "errors": {}, "action": "add"}
    assert invalid.json()["meta"]["errors"] == {"title": "Please enter a title."}
    assert "Mounted" in str(initial.json()["tree"])
    assert pong.json() == {"pong": True}
    assert foreign.status_code == 403


async def test_form_post_redirects_under_the_prefix(outer: Callable[[livetemplate.LiveApp], Any]) -> None:
    live = create_app()
    async with LiveClient(outer(live), shutdown=False) as client:
        page = await client.get("/todos/?filter=active")
        token = CSRF.search(page.text)
        assert token is not None
        posted = await client.post("/todos/?filter=active", data={"_csrf": token.group(1), "title": "Form", "add": ""})
        after = await client.get(posted.headers["location"])
    await live.shutdown()
    assert posted.status_code == 303
    assert posted.headers["location"] == "/todos/?filter=active"
    assert "Added “Form”." in after.text
    assert '<span class="title">Form</span>' in after.text


async def test_websocket_through_the_outer_app(outer: Callable[[livetemplate.LiveApp], Any]) -> None:
    live = create_app()
    async with LiveClient(outer(live), shutdown=False) as client:
        page = await client.get("/todos/")
        async with client.websocket("/todos/") as ws:
            assert ws.accepted
            first = await ws.receive_json()
            assert "s" in first["tree"]
            # the list's operations come first, apart from the flash message the add inserts
            operations = await ws.action("add", {"title": "Live"})
            assert "meta" not in operations
            assert all(isinstance(ops, list) for ops in operations["tree"].values())
            added = await ws.receive_json()
            assert added["meta"] == {"success": True, "errors": {}, "action": "add"}
            await ws.send_json({"action": "__ping__"})
            assert await ws.receive_json() == {"pong": True}
            navigated = await ws.action("__navigate__", {"filter": "done"})
            if "meta" not in navigated:  # range operations sent ahead of a restructuring update
                navigated = await ws.receive_json()
            assert navigated["meta"] == {"success": True, "errors": {}}
        async with client.websocket("/todos/", headers={"origin": "http://evil.example"}) as refused:
            assert not refused.accepted
        after = await client.get("/todos/")
    await live.shutdown()
    assert "1 left of 1" in ws.html()  # added (the flash saying so stayed with the unfiltered view)
    assert "Nothing here." in ws.html()  # filtered to done
    assert '<span class="title">Live</span>' in after.text
    assert "data-lvt-id" in page.text
