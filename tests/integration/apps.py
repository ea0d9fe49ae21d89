"""The app the multi-instance tests serve (through ``tests.e2e.serve``, one uvicorn process per
instance): a board of items that belongs to the browser (persisted), and a line of news that
belongs to the tab (a topic's latest message)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

import livetemplate
from livetemplate import Context, FieldError, Persist

TEMPLATE = """
<main>
  <ul id="items">{% for item in items %}<li data-key="{{ item }}">{{ item }}</li>{% endfor %}</ul>
  <p id="count">{{ items|length }} items</p>
  <p id="news">{{ news }}</p>
  <form name="add"><input name="item"><button type="submit">Add</button></form>
</main>
"""


class Board(msgspec.Struct):
    items: Annotated[list[str], Persist] = []
    news: str = ""


class BoardController:
    """``add`` appends an item (no de-duplication: an item twice is a change applied twice);
    ``announce`` publishes news on a topic, which ``mount`` subscribes from the query;
    ``share`` publishes an ``add`` on a topic (a topic action that changes persisted fields)."""

    def mount(self, state: Board, ctx: Context) -> None:
        topic = ctx.get_str("topic")
        if topic:
            ctx.subscribe(topic)

    def add(self, state: Board, ctx: Context) -> Board:
        item = ctx.get_str("item").strip()
        if not item:
            raise FieldError("item", "is required")
        state.items.append(item)
        return state

    def announce(self, state: Board, ctx: Context) -> None:
        ctx.publish(ctx.get_str("topic"), "news", {"text": ctx.get_str("text")})

    def share(self, state: Board, ctx: Context) -> None:
        ctx.publish(ctx.get_str("topic"), "add", {"item": ctx.get_str("item")})

    def news(self, state: Board, ctx: Context) -> Board:
        state.news = ctx.get_str("text")
        return state


def board(**options: Any) -> livetemplate.LiveApp:
    """The board, mounted with ``options`` (the backend, the shared secret, ...)."""
    return livetemplate.mount(BoardController(), Board(), template=TEMPLATE, name="board", open_topics=True, **options)
