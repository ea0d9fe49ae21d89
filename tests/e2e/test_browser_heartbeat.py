"""The client's heartbeat keeps one WebSocket alive: with ``heartbeat_ms=1000`` the page pings
every second for a minute, every ping gets a pong, and the client never reconnects."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import Browsing, Server

pytestmark = pytest.mark.e2e

COUNTER = "tests.e2e.apps:counter"
MINUTE_MS = 60_000


def test_heartbeat_keeps_the_socket_alive_for_a_minute(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(COUNTER, heartbeat_ms=1000)
    offset = server.log_size()
    tab = browsing.tab()
    tab.open(server.url)
    page = tab.page
    expect(page.locator("[data-lvt-id]")).to_have_attribute("data-lvt-heartbeat-ms", "1000")
    assert page.evaluate("document.visibilityState") == "visible", "hidden tabs do not ping"

    page.wait_for_timeout(MINUTE_MS)  # the one fixed wait of the suite: the minute is the test

    pings = tab.sent("__ping__")
    pongs = [m for m in tab.received() if m == {"pong": True}]
    assert len(pings) >= 50, f"only {len(pings)} pings in a minute at a 1 s interval"
    assert all(m == {"action": "__ping__"} for m in pings)
    assert len(pongs) >= len(pings) - 1, f"{len(pings)} pings, {len(pongs)} pongs"
    assert len(tab.sockets) == 1, f"the client reconnected: {[ws.url for ws in tab.sockets]}"
    assert tab.closed_sockets == []
    assert [e["type"] for e in tab.lvt_events() if e["type"] != "lvt:updated"] == ["lvt:connected"]
    assert server.log(offset).count('"WebSocket /" [accepted]') == 1

    page.get_by_role("button", name="+").click()  # still live
    expect(page.locator("h1 output")).to_have_text("1")
