"""Shared renders end to end: the same random mix of broadcasts and tabs' own actions (items
persisted per session group, flash messages, field errors) played on two apps, one sharing
renders and one rendering each tab on its own; after every step each tab shows the same
HTML in both, as the official client's tree model applies the frames."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Annotated

import msgspec
import pytest

import livetemplate
from livetemplate import Context, FieldError, Persist
from livetemplate.testing import LiveClient, LiveSocket
from tests.support.metrics import renders

pytestmark = pytest.mark.anyio

TOPIC = "board"
TEMPLATE = (
    '<ul>{% for item in items %}<li data-key="{{ item }}">{{ item }}</li>{% else %}<li>none</li>{% endfor %}</ul>'
    '<p>{{ count }}</p><i>{{ note }}</i><b>{{ lvt.flash("done") }}</b><s>{{ lvt.error("note") }}</s>'
)
ITEMS = ("a", "b", "c")


class Board(msgspec.Struct):
    items: Annotated[list[str], Persist] = []
    count: int = 0
    note: str = ""


class Controller:
    def mount(self, state: Board, ctx: Context) -> Board:
        ctx.subscribe(TOPIC)
        return state

    def bump(self, state: Board, ctx: Context) -> Board:
        state.count += 1
        return state

    def add(self, state: Board, ctx: Context) -> Board:
        item = ctx.get_str("item")
        if item not in state.items:
            state.items.append(item)
        return state

    def drop(self, state: Board, ctx: Context) -> Board:
        state.items = state.items[1:]
        return state

    def note_it(self, state: Board, ctx: Context) -> Board:
        text = ctx.get_str("text")
        if not text:
            raise FieldError("note", "Say something.")
        state.note = text
        ctx.set_flash("done", f"noted {text}")
        return state


class Side:
    """One app and its tabs: five session groups, the first with two tabs."""

    def __init__(self, shared: bool) -> None:
        self.app = livetemplate.mount(Controller(), Board(), template=TEMPLATE, open_topics=True, shared_renders=shared)
        self.clients: list[LiveClient] = []
        self.tabs: list[LiveSocket] = []

    async def open(self) -> None:
        self.clients = [LiveClient(self.app, shutdown=index == 0) for index in range(5)]
        for client in self.clients:
            await client.__aenter__()
        for client in (self.clients[0], *self.clients):
            tab = client.websocket("/")
            await tab.__aenter__()
            await tab.receive_json()
            self.tabs.append(tab)

    async def settled(self, acting: LiveSocket | None) -> list[str]:
        """What every tab shows once the app has done everything the last step started: the
        acting tab's message answered (messages are handled in order), then the runs and
        refreshes it started, then whatever they sent."""
        if acting is not None:
            await acting.sync()
        hub = self.app.hub
        while hub.fan_out._worker or hub._tasks:
            await asyncio.sleep(0)
        for tab in self.tabs:
            await tab.sync()
        return [tab.html() for tab in self.tabs]

    async def close(self) -> None:
        for tab in self.tabs:
            await tab.close()
        for client in reversed(self.clients):
            await client.__aexit__(None, None, None)


@pytest.mark.parametrize("seed", range(4))
async def test_tabs_show_the_same_with_and_without_shared_renders(seed: int) -> None:
    shared, alone = Side(True), Side(False)
    steps = random.Random(seed)
    try:
        for side in (shared, alone):
            await side.open()
        for step in range(30):
            kind = steps.choice(("publish", "publish", "tab"))
            action = steps.choice(("bump", "add", "drop", "note_it"))
            data = {"item": steps.choice(ITEMS), "text": steps.choice(("", "x"))}
            tab = steps.randrange(len(shared.tabs))
            for side in (shared, alone):
                if kind == "publish":
                    await side.app.publish(TOPIC, action, data)
                else:
                    await side.tabs[tab].send_json({"action": action, "data": data})
            shown = await shared.settled(shared.tabs[tab] if kind == "tab" else None)
            expected = await alone.settled(alone.tabs[tab] if kind == "tab" else None)
            assert shown == expected, f"seed {seed}, step {step}: {kind} {action} {data} (tab {tab})"
        assert len(set(shown)) > 1  # the tabs did not all end alike: their own actions told them apart
        assert renders(shared.app.runtime.metrics) < renders(alone.app.runtime.metrics)  # and the shared side did share
    finally:
        for side in (shared, alone):
            await side.close()


# -- the lvt helpers: built only for a template that reads them ----------------------------------


def test_a_template_that_never_reads_lvt_is_given_the_same_empty_helpers() -> None:
    reading = livetemplate.mount(Controller(), Board(), template=TEMPLATE).runtime.pipeline
    blind = livetemplate.mount(Controller(), Board(), template="<p>{{ count }}</p>").runtime.pipeline
    assert blind.helpers("t", {"note": "bad"}, {}) is blind.helpers("u", {}, {"done": "yes"})
    assert blind.helpers("t", {"note": "bad"}, {}).errors == {}
    assert reading.helpers("t", {"note": "bad"}, {}).errors == {"note": "bad"}


async def test_lvt_read_only_by_an_included_template_shows_the_tab_s_errors(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text('<p>{{ note }}</p>{% include "part.html" %}')
    (tmp_path / "part.html").write_text('<s>{{ lvt.error("note") }}</s><b>{{ lvt.flash("done") }}</b>')
    app = livetemplate.mount(Controller(), Board(), template=tmp_path / "page.html")
    assert app.runtime.pipeline.reads_helpers
    async with LiveClient(app) as client, client.websocket("/") as tab:
        await tab.receive_json()
        await tab.send_json({"action": "note_it", "data": {"text": ""}})
        await tab.sync()
        assert "<s>Say something.</s>" in tab.html()
        await tab.send_json({"action": "note_it", "data": {"text": "x"}})
        await tab.sync()
        assert "<p>x</p><s></s><b>noted x</b>" in tab.html()
