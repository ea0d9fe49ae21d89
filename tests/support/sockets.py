"""Where an outbox's frames go in tests: a connection's awaited write, and a server's direct
write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from livetemplate.broadcast import BroadcastUnavailable


class Socket:
    """A connection's awaited write: it waits while ``gate`` is clear, fails while ``fail`` is
    set, and records what it wrote (``written``) and whether it was told it is stuck. With
    ``awaited=False`` a write is a failure of the test (frames must go out directly)."""

    def __init__(self, *, awaited: bool = True) -> None:
        self.awaited = awaited
        self.written: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.stuck_calls = 0

    async def write(self, frame: bytes) -> None:
        assert self.awaited, "frames go out by the direct write"
        await self.gate.wait()
        if self.fail:
            raise OSError("gone")
        self.written.append(frame)

    def stuck(self) -> None:
        self.stuck_calls += 1

    def unsubscribed(self, exc: BroadcastUnavailable) -> None:
        """No view written to through it subscribes."""


class Direct:
    """A server's direct write, made of a function: ``write(*frames)`` returns whether the
    socket took them."""

    __slots__ = ("write_text",)

    def __init__(self, write: Callable[..., bool]) -> None:
        self.write_text = write

    def framed(self, frames: Sequence[bytes]) -> tuple[int, bytes] | None:
        """No socket: nothing goes to the send thread."""
        return None

    def write_rest(self, data: bytes) -> None:
        raise AssertionError("nothing was handed to the send thread")
