"""The counter example in a real browser: clicks update the number, the count survives a reload."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import Browsing, Server

pytestmark = pytest.mark.e2e

COUNTER = "examples.counter.app:app"


def test_clicks_update_the_count(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(COUNTER)
    tab = browsing.tab()
    tab.open(server.url)
    count = tab.page.locator("h1 output")
    expect(count).to_have_text("0")
    plus = tab.page.get_by_role("button", name="+")
    for expected in range(1, 4):
        plus.click()
        expect(count).to_have_text(str(expected))
    tab.page.get_by_role("button", name="-").click()
    expect(count).to_have_text("2")
    assert [m["action"] for m in tab.sent() if m["action"] != "__ping__"] == [
        "increment",
        "increment",
        "increment",
        "decrement",
    ]
    assert len(tab.sockets) == 1
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/", tab.sockets[0].url)


def test_reload_keeps_the_count(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(COUNTER)
    tab = browsing.tab()
    tab.open(server.url)
    plus = tab.page.get_by_role("button", name="+")
    count = tab.page.locator("h1 output")
    for expected in range(1, 4):
        plus.click()
        expect(count).to_have_text(str(expected))
    tab.reload()
    expect(count).to_have_text("3")
    plus.click()
    expect(count).to_have_text("4")
