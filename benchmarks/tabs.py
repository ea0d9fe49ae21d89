"""Tabs of an app opened in process (each its own session group, with a view in the hub and an
outbox whose writes are discarded), and broadcasts awaited to their end: the server's work per
broadcast without the kernel's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import livetemplate
from livetemplate.broadcast import BroadcastUnavailable
from livetemplate.outbox import Outbox
from livetemplate.session import LiveView


class _Discarding:
    """A connection whose socket takes every frame at once and drops it."""

    async def write(self, frame: bytes) -> None:
        """Nothing waits: the direct write takes every frame."""

    def stuck(self) -> None:
        """Never backed up."""

    def unsubscribed(self, exc: BroadcastUnavailable) -> None:
        """No run of the benchmarks subscribes."""

    def write_text(self, *frames: bytes) -> bool:
        return True

    def framed(self, frames: Sequence[bytes]) -> tuple[int, bytes] | None:
        """No socket for the send thread: the frames are discarded on the loop's thread."""
        return None

    def write_rest(self, data: bytes) -> None:
        """Never called: nothing goes to the send thread."""


_DISCARD = _Discarding()


async def open_tabs(app: livetemplate.LiveApp, count: int, *, at_once: bool = False) -> None:
    """Open ``count`` tabs of sessions ``tab-00000``, ... (the same sessions on every app),
    one after the other or all at once (a storm of reconnections)."""
    if at_once:
        await asyncio.gather(*(open_tab(app, index) for index in range(count)))
    else:
        for index in range(count):
            await open_tab(app, index)


async def open_tab(app: livetemplate.LiveApp, index: int) -> None:
    """Open a tab of session ``index`` as a connection would: its group read, the view
    attached to the hub, mounted (subscribed to its topics) and rendered."""
    runtime = app.runtime
    group = await runtime.groups.get(f"tab-{index:05d}")
    outbox = Outbox(_DISCARD, direct=_DISCARD)
    view = LiveView(runtime.runner, runtime.pipeline, group, query={}, outbox=outbox)
    await runtime.hub.attach(view)
    await runtime.hub.settle(view, (await view.open()).outcome)


async def broadcast(app: livetemplate.LiveApp, topic: str, action: str, data: dict[str, Any]) -> None:
    """Publish ``action`` on ``topic`` and wait until every run it started has ended (the
    fan-out's worker and the runs it hands to tasks are the hub's tasks), without polling."""
    hub = app.hub
    await app.publish(topic, action, data)
    while hub._tasks:
        await asyncio.wait(list(hub._tasks))
