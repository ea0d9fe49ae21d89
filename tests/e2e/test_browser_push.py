"""A server push: an action leaves a background task behind that, after the action returned,
runs ``finish`` through ``ctx.session.trigger_action``; the page shows it without user input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import Browsing, Server

pytestmark = pytest.mark.e2e

PUSH = "tests.e2e.apps:push"


def test_a_push_from_a_background_task_reaches_the_page(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(PUSH, factory=True)
    tab = browsing.tab()
    tab.open(server.url)
    status = tab.page.locator("#status")
    expect(status).to_have_text("idle")

    tab.page.get_by_role("button", name="Start").click()
    expect(status).to_have_text("working")  # the action's own answer
    expect(status).to_have_text("run 1 finished")  # the push, about half a second later
    expect(tab.page.locator("#runs")).to_have_text("Runs: 1")

    assert [m["action"] for m in tab.sent() if m["action"] != "__ping__"] == ["start"]
    updates = [m for m in tab.received() if "tree" in m]
    answer = next(i for i, m in enumerate(updates) if m["meta"].get("action") == "start")
    pushed = updates[answer + 1 :]
    assert len(pushed) == 1, f"expected one pushed update after the action's answer, got {pushed}"
    assert pushed[0]["meta"]["success"] is True
    assert "action" not in pushed[0]["meta"], "server-initiated renders carry no meta.action"
    assert "run 1 finished" in str(pushed[0]["tree"])

    tab.page.get_by_role("button", name="Start").click()  # and again, on the same connection
    expect(status).to_have_text("run 2 finished")


def test_a_push_reaches_every_tab_of_the_session(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(PUSH, factory=True)
    context = browsing.context()
    first = browsing.tab(context)
    first.open(server.url)
    second = browsing.tab(context)
    second.open(server.url)
    other = browsing.tab()  # another browser: another session group
    other.open(server.url)

    first.page.get_by_role("button", name="Start").click()
    expect(first.page.locator("#status")).to_have_text("run 1 finished")
    expect(second.page.locator("#status")).to_have_text("run 1 finished")
    for tab in (first, second):
        expect(tab.page.locator("#runs")).to_have_text("Runs: 1")
    expect(other.page.locator("#status")).to_have_text("idle")
    expect(other.page.locator("#runs")).to_have_text("Runs: 0")
    assert second.sent("start") == []
