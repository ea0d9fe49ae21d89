"""Tabs of an app opened in process (each its own session group, with a view in the hub and an
outbox whose writes are discarded), and broadcasts awaited to their end: the server's work per
broadcast without the kernel's."""

from __future__ import annotations

import asyncio
from typing import Any

import livetemplate
from livetemplate.outbox import Outbox
from livetemplate.session import LiveView


async def open_tabs(app: livetemplate.LiveApp, count: int) -> None:
    """Open ``count`` tabs, as connections would (mounted, subscribed, first render)."""
    runtime = app.runtime
    for index in range(count):
        group = await runtime.groups.get(f"tab-{index:05d}")
        outbox = Outbox(lambda frame: asyncio.sleep(0), write_now=lambda *frames: True)
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
