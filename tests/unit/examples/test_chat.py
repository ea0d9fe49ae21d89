"""The chat example on one instance (memory rooms), in process: presence, history, messages
shown once, validation, rooms kept apart, a tab changing rooms, and a form posted without
JavaScript. Across instances over Redis: tests/integration/test_chat.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from examples.chat.app import Chat, create_app
from examples.chat.rooms import MemoryRooms, Message
from livetemplate import LiveApp
from livetemplate.testing import LiveClient, LiveSocket

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="_csrf" value="([^"]*)"')


@pytest.fixture
async def app() -> AsyncIterator[LiveApp]:
    chat = create_app(secret_key="test")
    yield chat
    await chat.shutdown()


async def until(ws: LiveSocket, text: str) -> None:
    while text not in ws.html():
        await ws.receive_json()


async def quiet(ws: LiveSocket) -> None:
    """Apply the frames the app sends until it has been quiet for a moment (pushes, such as
    the tab's own arrival in the room, come as frames of their own)."""
    while True:
        try:
            await ws.receive_json(timeout=0.1)
        except AssertionError:
            return


async def join(client: LiveClient, room: str, name: str | None = None) -> LiveSocket:
    ws = client.websocket(f"/?room={room}")
    await ws.__aenter__()
    await quiet(ws)
    if name is not None:
        assert (await ws.send("set_name", {"name": name}))["meta"]["success"]
    return ws


async def test_presence_history_and_messages_in_a_room(app: LiveApp) -> None:
    async with LiveClient(app, shutdown=False) as one, LiveClient(app, shutdown=False) as two:
        alice = await join(one, "python", "alice")
        assert "1 online" in alice.html()
        bob = await join(two, "python", "bob")
        assert "2 online" in bob.html()
        await until(alice, "2 online")
        reply = await alice.send("send", {"text": "hi <b>all</b>"})
        assert reply["meta"]["success"]
        await until(bob, "hi &lt;b&gt;all&lt;/b&gt;")
        await quiet(alice)  # the topic's copy of her own message is not shown twice
        assert alice.html().count("hi &lt;b&gt;all") == 1
        async with LiveClient(app, shutdown=False) as three:
            carol = await join(three, "python")
            assert "hi &lt;b&gt;all" in carol.html() and "3 online" in carol.html()
            await carol.close()
        await until(alice, "2 online")
        await bob.close()
        await until(alice, "1 online")
        await alice.close()


class SlowHistory(MemoryRooms):
    """Memory rooms whose history read takes until ``read`` is set, and holds what the
    room held as it began (as a database's read would)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading, self.read = asyncio.Event(), asyncio.Event()

    async def recent(self, room: str) -> list[Message]:
        messages = await super().recent(room)
        self.reading.set()
        await self.read.wait()
        return messages


async def test_a_message_sent_while_a_tab_reads_the_history_reaches_it_once(app: LiveApp) -> None:
    """The tab subscribes to its room before it reads the history: a message sent during the
    read reaches it (after its page), and is shown once whether the read got it or not."""
    async with LiveClient(app, shutdown=False) as one, LiveClient(app, shutdown=False) as two:
        alice = await join(one, "python", "alice")
        history = chat_of(app).rooms = SlowHistory()
        bob = two.websocket("/?room=python")
        await bob.__aenter__()
        await asyncio.wait_for(history.reading.wait(), 3)
        assert (await alice.send("send", {"text": "during the read"}))["meta"]["success"]
        history.read.set()
        await until(bob, "during the read")
        await quiet(bob)
        assert bob.html().count("during the read") == 1
        await alice.close()
        await bob.close()


def chat_of(app: LiveApp) -> Chat:
    controller = app.runtime.runner.actions.controller
    assert isinstance(controller, Chat)
    return controller


async def test_a_message_needs_a_name_and_some_text(app: LiveApp) -> None:
    async with LiveClient(app, shutdown=False) as client:
        ws = await join(client, "lobby")
        reply = await ws.send("send", {"text": "hello"})
        assert reply["meta"]["errors"] == {"name": "Please choose a name first."}
        assert (await ws.send("set_name", {"name": " "}))["meta"]["errors"] == {"name": "Please choose a name."}
        assert (await ws.send("set_name", {"name": "dan"}))["meta"]["success"]
        assert (await ws.send("send", {"text": "  "}))["meta"]["errors"] == {"text": "Write something first."}
        too_long = await ws.send("send", {"text": "x" * 501})
        assert too_long["meta"]["errors"] == {"text": "Keep it under 500 characters."}
        await ws.close()


async def test_rooms_keep_apart_and_a_tab_can_change_rooms(app: LiveApp) -> None:
    async with LiveClient(app, shutdown=False) as one, LiveClient(app, shutdown=False) as two:
        alice = await join(one, "python", "alice")
        bob = await join(two, "random", "bob")
        await alice.send("send", {"text": "only for python"})
        await quiet(bob)
        await alice.send_json({"action": "__navigate__", "data": {"room": "random"}})
        await until(alice, "<h1>#random</h1>")
        await until(alice, "2 online")
        await until(bob, "2 online")
        await bob.send("send", {"text": "welcome"})
        await until(alice, "welcome")
        assert "only for python" not in alice.html()
        await alice.close()
        await bob.close()


async def test_a_room_name_that_is_not_one_falls_back_to_the_lobby(app: LiveApp) -> None:
    async with LiveClient(app, shutdown=False) as client:
        page = await client.get("/?room=../../etc")
        assert "<h1>#lobby</h1>" in page.text


async def test_without_javascript_a_message_is_a_form_post(app: LiveApp) -> None:
    async with LiveClient(app, shutdown=False) as client:
        csrf = CSRF.findall((await client.get("/?room=lobby")).text)[0]
        form = {"_csrf": csrf, "name": "eve", "set_name": ""}
        assert (await client.http.post("/?room=lobby", data=form)).status_code == 303
        form = {"_csrf": csrf, "text": "posted", "send": ""}
        assert (await client.http.post("/?room=lobby", data=form)).status_code == 303
        page = (await client.get("/?room=lobby")).text
        assert "<b>eve</b>: <span>posted</span>" in page and "0 online" in page
