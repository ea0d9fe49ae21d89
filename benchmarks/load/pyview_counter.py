"""The same counter on pyview-web (installed from PyPI for the benchmark only), subscribed to
the same topic. Its template is ``pyview_counter.html`` beside this file (pyview's lookup)."""

from __future__ import annotations

from typing import Any

from pyview import LiveView, PyView  # type: ignore[import-untyped]
from pyview.live_socket import is_connected, pub_sub_hub  # type: ignore[import-untyped]

TOPIC = "counter"


class CounterLiveView(LiveView[dict[str, int]]):  # type: ignore[misc]
    """Two buttons, one number; a message on the topic increments it."""

    async def mount(self, socket: Any, session: dict[str, Any]) -> None:
        socket.context = {"count": 0}
        if is_connected(socket):
            await socket.subscribe(TOPIC)

    async def handle_event(self, event: str, payload: Any, socket: Any) -> None:
        socket.context["count"] += 1 if event == "increment" else -1

    async def handle_info(self, event: Any, socket: Any) -> None:
        socket.context["count"] += 1


def create_app() -> PyView:
    app = PyView()
    app.add_live_view("/", CounterLiveView)
    return app


async def publish() -> None:
    await pub_sub_hub.send_all_on_topic_async(TOPIC, "increment")
