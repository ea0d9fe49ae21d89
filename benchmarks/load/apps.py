"""The counter app the load harness serves: ``examples/counter`` with every connection
subscribed to the topic ``counter``, so that a publish fans out to all of them. Admission
limits are lifted (the harness opens thousands of connections from a few addresses)."""

from __future__ import annotations

from typing import Any

import livetemplate
from examples.counter.app import TEMPLATE, Counter, CounterController
from livetemplate import Context

TOPIC = "counter"


class BroadcastCounter(CounterController):
    """The counter, listening to the topic that the harness publishes on."""

    def mount(self, state: Counter, ctx: Context) -> Counter:
        ctx.subscribe(TOPIC)
        return state


def create_app(**options: Any) -> livetemplate.LiveApp:
    settings: dict[str, Any] = {
        "open_topics": True,
        "max_connections": None,
        "max_connections_per_group": None,
        "message_rate_limit": None,
    }
    settings.update(options)
    return livetemplate.mount(BroadcastCounter(), Counter(), template=TEMPLATE, **settings)


class EchoApp:
    """uvicorn's own cost: an ASGI app with no state that answers the page, the probe and the
    upgrade, then sends the counter's frames (first render, replies, pushes through each
    connection's ``send``), with the same uvicorn settings as this project."""

    def __init__(self) -> None:
        from .floor import PAGE, PUSH, REPLY, TREE

        self.page, self.tree, self.reply, self.push = PAGE, TREE.decode(), REPLY.decode(), PUSH.decode()
        self.sends: set[Any] = set()

    async def publish(self) -> None:
        message = {"type": "websocket.send", "text": self.push}
        for send in list(self.sends):
            await send(message)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            body = b"" if scope["method"] == "HEAD" else self.page
            headers = [
                (b"content-type", b"text/html"),
                (b"content-length", str(len(self.page)).encode()),
                (b"x-livetemplate-websocket", b"enabled"),
                (b"set-cookie", b"livetemplate-id=echo; Path=/"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": self.tree})
            self.sends.add(send)
            try:
                while (await receive())["type"] == "websocket.receive":
                    await send({"type": "websocket.send", "text": self.reply})
            finally:
                self.sends.discard(send)
