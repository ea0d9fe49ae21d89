"""A chat: rooms as topics, how many are in each room, messages that reach every instance.

    python -m examples.chat                                  # one instance, in memory
    LIVETEMPLATE_REDIS_URL=redis://localhost:6379 LIVETEMPLATE_SECRET_KEY=... \\
        python -m examples.chat --port 8001                  # one of several instances

What lives where:

* the browser's name is persisted session state (``Persist``): every tab of the browser, on
  any instance, signs with it;
* the room (from the query, ``?room=python``), the messages shown and the member count
  belong to the tab: ``mount`` reads them and subscribes the tab to the room's topic
  (``chat/<room>``); a new message is published there (``ctx.publish``), and every tab of
  the room, on every instance, runs ``receive`` with it;
* a room's recent messages and its members belong to the room, not to any browser: they are
  kept in :mod:`examples.chat.rooms` (in memory, or in the sessions' Redis), so a tab that
  joins later reads the history and the count is the same everywhere.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec

import livetemplate
from livetemplate import Context, FieldError, Persist

from .rooms import HISTORY, MemoryRooms, Message, RedisRooms, Rooms

__all__ = ["Chat", "ChatState", "create_app"]

ROOMS = ("lobby", "python", "random")
MAX_TEXT = 500
MAX_NAME = 40
_ROOM = re.compile(r"[a-z0-9][a-z0-9-]{0,31}\Z")


def topic_of(room: str) -> str:
    return f"chat/{room}"


class ChatState(msgspec.Struct):
    name: Annotated[str, Persist] = ""
    room: str = "lobby"
    messages: list[Message] = []
    members: int = 0
    member: str = ""  # this tab's presence in its room ("" over HTTP: a page load is no member)


class Chat:
    """The controller; ``rooms`` is set once the app (and so its session store) exists."""

    def __init__(self) -> None:
        self.rooms: Rooms = MemoryRooms()

    async def mount(self, state: ChatState, ctx: Context) -> None:
        chosen = ctx.get_str("room", "lobby")
        room = chosen if _ROOM.match(chosen) else "lobby"
        if room != state.room:
            ctx.unsubscribe(topic_of(state.room))
            if state.member:  # a tab moving to another room (a same-page link: __navigate__)
                await self._announce(ctx, state.room, await self.rooms.leave(state.room, state.member))
                await self._announce(ctx, room, await self.rooms.join(room, state.member))
        state.room = room
        # Subscribed before the room is read: a message sent meanwhile runs once mount is
        # over (``receive`` skips one the read already got). Awaited: with Redis it then holds.
        await ctx.subscribe(topic_of(room))
        state.messages = await self.rooms.recent(room)
        state.members = await self.rooms.count(room)

    async def on_connect(self, state: ChatState, ctx: Context) -> None:
        state.member = secrets.token_hex(8)
        state.members = await self.rooms.join(state.room, state.member)
        await self._announce(ctx, state.room, state.members)

    async def on_disconnect(self, state: ChatState, ctx: Context) -> None:
        if state.member:
            await self._announce(ctx, state.room, await self.rooms.leave(state.room, state.member))

    def set_name(self, state: ChatState, ctx: Context) -> None:
        name = ctx.get_str("name").strip()
        if not name:
            raise FieldError("name", "Please choose a name.")
        if len(name) > MAX_NAME:
            raise FieldError("name", f"Keep it under {MAX_NAME} characters.")
        state.name = name  # persisted: every tab of this browser, on every instance, shows it

    async def send(self, state: ChatState, ctx: Context) -> None:
        # NOTE: send changes no persisted field, so it never runs twice (a run is repeated
        # only when its commit meets another instance's): the message is stored once.
        text = ctx.get_str("text").strip()
        if not state.name:
            raise FieldError("name", "Please choose a name first.")
        if not text:
            raise FieldError("text", "Write something first.")
        if len(text) > MAX_TEXT:
            raise FieldError("text", f"Keep it under {MAX_TEXT} characters.")
        message = Message(secrets.token_hex(8), state.name, text, time.strftime("%H:%M"))
        await self.rooms.append(state.room, message)
        _add(state, message)  # shown at once; every other tab gets it from the topic
        ctx.publish(topic_of(state.room), "receive", msgspec.to_builtins(message))

    def receive(self, state: ChatState, ctx: Context) -> None:
        _add(state, ctx.bind(Message))

    def presence(self, state: ChatState, ctx: Context) -> None:
        state.members = ctx.get_int("count")

    @staticmethod
    async def _announce(ctx: Context, room: str, count: int) -> None:
        ctx.publish(topic_of(room), "presence", {"count": count})


def _add(state: ChatState, message: Message) -> None:
    if all(shown.id != message.id for shown in state.messages):
        state.messages = [*state.messages, message][-HISTORY:]


def _rooms_for(app: livetemplate.LiveApp, prefix: str) -> Rooms:
    """Rooms beside the app's sessions: in their Redis when they are in Redis."""
    client = getattr(app.store, "client", None)
    if client is None:
        return MemoryRooms()

    async def count_changed(room: str, count: int) -> None:
        await app.publish(topic_of(room), "presence", {"count": count})

    return RedisRooms(client, prefix=prefix, on_count=count_changed)


def create_app(*, rooms_prefix: str = "chat:", **options: Any) -> livetemplate.LiveApp:
    """The chat, mounted with ``options`` (``backend=``, ``secret_key=``, ...; or from the
    environment: ``LIVETEMPLATE_REDIS_URL``, ``LIVETEMPLATE_SECRET_KEY``)."""
    chat = Chat()
    app = livetemplate.mount(
        chat,
        ChatState(),
        template=Path(__file__).parent / "templates" / "chat.html",
        name="chat",  # the same on every instance: the sessions' namespace
        topic_acl=lambda topic, ctx: topic.startswith("chat/"),
        **options,
    )
    chat.rooms = _rooms_for(app, rooms_prefix)
    return app
