"""The public test client: a real app (the todos example) driven by clicks and form submits
found by CSS selector, as a browser with the official client would."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from examples.todos.app import create_app
from livetemplate.testing import ElementNotFound, LiveClient, WebSocketClosed

pytestmark = pytest.mark.anyio


def titles(html: str) -> list[str]:
    return [span.get_text() for span in BeautifulSoup(html, "html.parser").select("#todos .title")]


async def test_add_toggle_reorder_and_delete_by_selector() -> None:
    async with LiveClient(create_app()) as client:
        page = await client.get("/")
        assert page.status_code == 200
        async with client.connect("/") as view:
            assert "Nothing here." in view.html()
            reply = await view.submit("form.add", {"title": "Milk"})
            assert reply["meta"] == {"success": True, "errors": {}, "action": "add"}
            await view.submit("form.add", {"title": "Bread"})
            assert titles(view.html()) == ["Milk", "Bread"]
            assert "Added “Bread”." in view.html()
            await view.click('li[data-key="2"] button[name=move_up]')
            assert titles(view.html()) == ["Bread", "Milk"]
            await view.click('button[aria-label="Toggle Milk"]')
            assert 'class="done"' in view.html() and "1 left of 2" in view.html()
            await view.click('button[aria-label="Delete Bread"]')
            assert titles(view.html()) == ["Milk"]
            failed = await view.submit("form.add", {"title": "  "})
            assert failed["meta"]["errors"] == {"title": "Please enter a title."}
            assert "Please enter a title." in view.html()
            await view.send("__navigate__", {"filter": "active"})
            assert titles(view.html()) == []


async def test_what_cannot_be_clicked_fails_clearly() -> None:
    async with LiveClient(create_app()) as client, client.connect("/") as view:
        with pytest.raises(ElementNotFound, match="no element matches"):
            await view.click("button[name=missing]")
        with pytest.raises(ElementNotFound, match="neither in an lvt-on:click element nor a named"):
            await view.click("h1")
        with pytest.raises(ElementNotFound, match="is a <nav>, not a form"):
            await view.submit("nav")


async def test_connect_to_a_refused_socket_raises() -> None:
    async with LiveClient(create_app(websocket_disabled=True)) as client:
        socket = client.connect("/")
        with pytest.raises(WebSocketClosed) as refused:
            async with socket:
                pass
        assert refused.value.code == 1006  # refused with an HTTP answer: no WebSocket at all
        assert socket.socket.refused_status == 403
        assert socket.socket.refused_body == b"WebSockets are disabled; use HTTP."


async def test_the_readme_example() -> None:
    """The example the README shows, verbatim in spirit."""
    async with LiveClient(create_app()) as client:
        page = await client.get("/")
        assert page.status_code == 200
        async with client.connect("/") as view:
            await view.submit("form.add", {"title": "Milk"})
            await view.click('button[aria-label="Toggle Milk"]')
            assert "0 left of 1" in view.html()
            reply = await view.send("toggle", {"id": 1})
            assert reply["meta"]["success"] and "1 left of 1" in view.html()
