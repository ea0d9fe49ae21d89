"""Where the chat keeps what belongs to a room rather than to a browser: its recent messages
and who is in it.

Session state belongs to one browser (its session group); a room's history and its members
are shared by everyone in it, on every instance, so they live beside the sessions: in memory
for one instance (:class:`MemoryRooms`), in the same Redis as the sessions for several
(:class:`RedisRooms`). Messages themselves travel as topic publishes; the history is what a
tab that joins later reads.

Presence in Redis is a sorted set per room (member -> expiry time). Each instance renews its
own members every ``presence_ttl / 3`` seconds, so the members of an instance that died
without saying goodbye expire within ``presence_ttl``; the renewal then announces the
corrected count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

__all__ = ["HISTORY", "MemoryRooms", "Message", "RedisRooms", "Rooms"]

logger = logging.getLogger(__name__)

#: Messages a room keeps for the tabs that join later.
HISTORY = 50


class Message(msgspec.Struct, frozen=True):
    id: str
    author: str
    text: str
    time: str  # "HH:MM", as the sending instance's clock said


#: Called with a room and its member count when the count changed without anyone joining or
#: leaving here (members of another instance expired).
CountChanged = Callable[[str, int], Awaitable[None]]


class Rooms(Protocol):
    async def recent(self, room: str) -> list[Message]: ...

    async def append(self, room: str, message: Message) -> None: ...

    async def join(self, room: str, member: str) -> int:
        """Add ``member`` (a tab) to the room; the room's member count."""

    async def leave(self, room: str, member: str) -> int: ...

    async def count(self, room: str) -> int: ...


class MemoryRooms:
    """Rooms of one instance."""

    def __init__(self, history: int = HISTORY) -> None:
        self._messages: defaultdict[str, deque[Message]] = defaultdict(lambda: deque(maxlen=history))
        self._members: defaultdict[str, set[str]] = defaultdict(set)

    async def recent(self, room: str) -> list[Message]:
        return list(self._messages[room])

    async def append(self, room: str, message: Message) -> None:
        self._messages[room].append(message)

    async def join(self, room: str, member: str) -> int:
        self._members[room].add(member)
        return len(self._members[room])

    async def leave(self, room: str, member: str) -> int:
        self._members[room].discard(member)
        return len(self._members[room])

    async def count(self, room: str) -> int:
        return len(self._members[room])


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Message).decode


class RedisRooms:
    """Rooms shared by every instance, in Redis (``client``: the session store's own client,
    standalone, Sentinel-managed or Cluster). Keys: ``{prefix}{room}:messages`` (a list)
    and ``{prefix}{room}:members`` (a sorted set), the room in a hash tag so that both fall in
    one cluster slot."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "chat:",
        history: int = HISTORY,
        presence_ttl: float = 30.0,
        on_count: CountChanged | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.history = history
        self.presence_ttl = presence_ttl
        self.on_count = on_count
        self._here: defaultdict[str, set[str]] = defaultdict(set)  # members of this instance
        self._counts: dict[str, int] = {}  # the last count seen, per room with members here
        self._renewal: asyncio.Task[None] | None = None

    def _key(self, room: str, kind: str) -> str:
        return f"{self.prefix}{{{room}}}:{kind}"

    async def recent(self, room: str) -> list[Message]:
        messages = []
        for raw in await self.client.lrange(self._key(room, "messages"), -self.history, -1):
            try:
                messages.append(_decode(raw))
            except msgspec.DecodeError:
                logger.warning("skipped a message of room %r that does not decode", room)
        return messages

    async def append(self, room: str, message: Message) -> None:
        key = self._key(room, "messages")
        await self.client.rpush(key, _encode(message))
        await self.client.ltrim(key, -self.history, -1)

    async def join(self, room: str, member: str) -> int:
        self._here[room].add(member)
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.get_running_loop().create_task(self._renew_forever())
        await self.client.zadd(self._key(room, "members"), {member: time.time() + self.presence_ttl})
        return await self.count(room)

    async def leave(self, room: str, member: str) -> int:
        self._here[room].discard(member)
        if not self._here[room]:
            del self._here[room]
        await self.client.zrem(self._key(room, "members"), member)
        return await self.count(room)

    async def count(self, room: str) -> int:
        key = self._key(room, "members")
        await self.client.zremrangebyscore(key, "-inf", time.time())
        count = int(await self.client.zcard(key))
        if room in self._here:
            self._counts[room] = count
        return count

    async def renew(self) -> None:
        """Renew this instance's members; announce the rooms whose count changed meanwhile."""
        expiry = time.time() + self.presence_ttl
        for room, members in list(self._here.items()):
            await self.client.zadd(self._key(room, "members"), dict.fromkeys(members, expiry))
            before = self._counts.get(room)
            count = await self.count(room)
            if count != before and self.on_count is not None:
                await self.on_count(room, count)
        for room in set(self._counts) - set(self._here):
            del self._counts[room]

    async def _renew_forever(self) -> None:
        while self._here:
            await asyncio.sleep(self.presence_ttl / 3)
            try:
                await self.renew()
            except Exception:  # Redis unreachable for now: try again next time
                logger.warning("renewing the chat's presence failed", exc_info=True)

    async def close(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
