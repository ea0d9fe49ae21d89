"""The todos example in a real browser over WebSocket: add, toggle, delete, reorder, filter
links (``__navigate__``), validation errors, reloads and two tabs of one browser."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import Browsing, Server
from tests.e2e.todos_page import add, expect_titles, press

pytestmark = pytest.mark.e2e

TODOS = "examples.todos.app:app"


def test_add_toggle_delete(serve: Callable[..., Server], browsing: Browsing) -> None:
    tab = browsing.tab()
    tab.open(serve(TODOS).url)
    page = tab.page
    expect(page.locator("#todos li.empty")).to_have_text("Nothing here.")

    add(tab, "milk")
    add(tab, "eggs")
    expect_titles(tab, ["milk", "eggs"])
    expect(page.locator("output[data-flash]")).to_have_text("Added “eggs”.")
    expect(page.locator("p.count")).to_have_text("2 left of 2")
    expect(page.locator("#todos li.empty")).to_have_count(0)

    press(tab, "Toggle milk")
    milk = page.locator("#todos li", has_text="milk")
    expect(milk).to_have_class("done")
    expect(page.get_by_role("button", name="Toggle milk")).to_have_text("☑")
    expect(page.locator("p.count")).to_have_text("1 left of 2")
    press(tab, "Toggle milk")
    expect(milk).not_to_have_class("done")
    expect(page.locator("p.count")).to_have_text("2 left of 2")

    press(tab, "Delete eggs")
    expect_titles(tab, ["milk"])
    expect(page.locator("output[data-flash]")).to_have_text("Deleted “eggs”.")
    expect(page.locator("p.count")).to_have_text("1 left of 1")

    adds = tab.sent("add")
    assert [m["data"]["title"] for m in adds] == ["milk", "eggs"]
    assert all(m.get("submitter") == "add" for m in adds)
    assert [m["data"]["id"] for m in tab.sent("toggle")] == [1, 1]
    assert [m["data"]["id"] for m in tab.sent("delete")] == [2]
    assert len(tab.sockets) == 1, "everything went over the one WebSocket"


def test_reorder(serve: Callable[..., Server], browsing: Browsing) -> None:
    tab = browsing.tab()
    tab.open(serve(TODOS).url)
    for title in ("a", "b", "c"):
        add(tab, title)
    expect_titles(tab, ["a", "b", "c"])

    press(tab, "Move c up")
    expect_titles(tab, ["a", "c", "b"])
    press(tab, "Move a down")
    expect_titles(tab, ["c", "a", "b"])
    press(tab, "Move b down")  # already last: nothing moves
    press(tab, "Move c up")  # already first
    press(tab, "Move b up")
    expect_titles(tab, ["c", "b", "a"])
    # rows keep their keys in the new order
    keys = tab.page.locator("#todos li").evaluate_all("rows => rows.map(row => row.dataset.key)")
    assert keys == ["3", "2", "1"]

    tab.reload()
    expect_titles(tab, ["c", "b", "a"])


def test_filter_links_navigate_over_the_websocket(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(TODOS)
    tab = browsing.tab()
    tab.open(server.url)
    page = tab.page
    for title in ("a", "b", "c"):
        add(tab, title)
    press(tab, "Toggle b")
    expect(page.locator("#todos li.done")).to_have_count(1)

    page.get_by_role("link", name="Active").click()
    expect(page).to_have_url(f"{server.url}?filter=active")
    expect_titles(tab, ["a", "c"])
    expect(page.get_by_role("link", name="Active")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("link", name="All")).not_to_have_attribute("aria-current", "page")

    page.get_by_role("link", name="Done").click()
    expect(page).to_have_url(f"{server.url}?filter=done")
    expect_titles(tab, ["b"])

    # toggling in a filtered view: the todo leaves the view
    press(tab, "Toggle b")
    expect(page.locator("#todos li.empty")).to_have_text("Nothing here.")

    page.get_by_role("link", name="All").click()
    expect(page).to_have_url(f"{server.url}?filter=all")
    expect_titles(tab, ["a", "b", "c"])
    expect(page.locator("#todos li.done")).to_have_count(0)

    navigations = tab.sent("__navigate__")
    assert [m["data"] for m in navigations] == [{"filter": "active"}, {"filter": "done"}, {"filter": "all"}]
    documents = [r for r in tab.requests if r.resource_type == "document"]
    assert len(documents) == 1, f"the filter links loaded pages: {[r.url for r in documents]}"
    assert len(tab.sockets) == 1, "the filter links opened new WebSockets"

    # the filter is in the URL: a reload renders the same view
    page.get_by_role("link", name="Active").click()
    expect(page).to_have_url(f"{server.url}?filter=active")
    expect_titles(tab, ["a", "b", "c"])
    tab.reload()
    expect_titles(tab, ["a", "b", "c"])
    expect(page.get_by_role("link", name="Active")).to_have_attribute("aria-current", "page")


def test_back_button_after_filter_links(serve: Callable[..., Server], browsing: Browsing) -> None:
    """Back/forward is not ``__navigate__``: client 0.25.1 fetches the page of the history
    entry and opens a new WebSocket for it (its popstate handler never sends navigate)."""
    server = serve(TODOS)
    tab = browsing.tab()
    tab.open(server.url)
    page = tab.page
    add(tab, "a")
    add(tab, "b")
    press(tab, "Toggle a")
    expect(page.locator("#todos li.done")).to_have_count(1)
    page.get_by_role("link", name="Done").click()
    expect_titles(tab, ["a"])
    page.get_by_role("link", name="Active").click()
    expect_titles(tab, ["b"])

    page.go_back()
    expect(page).to_have_url(f"{server.url}?filter=done")
    expect_titles(tab, ["a"])
    expect(page.get_by_role("link", name="Done")).to_have_attribute("aria-current", "page")
    page.go_back()
    expect(page).to_have_url(server.url)
    expect_titles(tab, ["a", "b"])
    page.go_forward()
    expect(page).to_have_url(f"{server.url}?filter=done")
    expect_titles(tab, ["a"])
    press(tab, "Toggle a")  # live on the socket opened for the history entry
    expect(page.locator("#todos li.empty")).to_have_count(1)
    assert [m["data"] for m in tab.sent("__navigate__")] == [{"filter": "done"}, {"filter": "active"}]


def test_validation_error_for_an_empty_title(serve: Callable[..., Server], browsing: Browsing) -> None:
    tab = browsing.tab()
    tab.open(serve(TODOS).url)
    page = tab.page
    title = page.get_by_role("textbox", name="New todo")
    error = page.locator("#title-error")
    expect(error).to_have_count(0)
    expect(title).to_have_attribute("aria-invalid", "false")

    page.get_by_role("button", name="Add", exact=True).click()
    expect(error).to_have_text("Please enter a title.")
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#todos li.empty")).to_have_count(1)
    assert tab.sent("add")[-1]["data"]["title"] == ""
    failed = [m for m in tab.received() if m.get("meta", {}).get("action") == "add"]
    assert failed[-1]["meta"]["success"] is False
    assert failed[-1]["meta"]["errors"] == {"title": "Please enter a title."}

    title.fill("   ")  # blank is empty too
    page.get_by_role("button", name="Add", exact=True).click()
    expect(error).to_have_text("Please enter a title.")

    add(tab, "milk")
    expect(error).to_have_count(0)
    expect(title).to_have_attribute("aria-invalid", "false")
    expect_titles(tab, ["milk"])


def test_reload_keeps_the_todos(serve: Callable[..., Server], browsing: Browsing) -> None:
    tab = browsing.tab()
    tab.open(serve(TODOS).url)
    for title in ("milk", "eggs", "bread"):
        add(tab, title)
    press(tab, "Toggle eggs")
    press(tab, "Delete milk")
    expect_titles(tab, ["eggs", "bread"])

    for _ in range(2):
        tab.reload()
        expect_titles(tab, ["eggs", "bread"])
        expect(tab.page.locator("#todos li.done .title")).to_have_text(["eggs"])
        expect(tab.page.locator("p.count")).to_have_text("1 left of 2")
    press(tab, "Toggle bread")  # the reloaded page is live
    expect(tab.page.locator("#todos li.done .title")).to_have_text(["eggs", "bread"])
    tab.reload()
    expect(tab.page.locator("p.count")).to_have_text("0 left of 2")


@pytest.mark.parametrize("change", ["add", "delete"])
def test_first_change_after_a_reload_keeps_the_other_rows(
    serve: Callable[..., Server], browsing: Browsing, change: str
) -> None:
    """After a (re)load with todos listed, the first add or delete inserts the flash message
    above the list in the same update as a range operation on the list."""
    tab = browsing.tab()
    tab.open(serve(TODOS).url)
    add(tab, "milk")
    add(tab, "eggs")
    tab.reload()
    expect_titles(tab, ["milk", "eggs"])
    if change == "add":
        add(tab, "jam")
        expect_titles(tab, ["milk", "eggs", "jam"])
        expect(tab.page.locator("output[data-flash]")).to_have_text("Added “jam”.")
    else:
        press(tab, "Delete milk")
        expect(tab.page.locator("output[data-flash]")).to_have_text("Deleted “milk”.")
        expect_titles(tab, ["eggs"])


def test_two_tabs_share_the_persisted_state(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(TODOS)
    context = browsing.context()
    first = browsing.tab(context)
    first.open(server.url)
    add(first, "milk")
    second = browsing.tab(context)  # same context: same livetemplate-id cookie
    second.open(server.url)
    expect_titles(second, ["milk"])

    add(second, "eggs")
    press(first, "Toggle milk")
    for tab in (first, second):
        tab.reload()
        expect_titles(tab, ["milk", "eggs"])
        expect(tab.page.locator("#todos li.done .title")).to_have_text(["milk"])

    cookies = {c["name"]: c["value"] for c in context.cookies()}
    assert "livetemplate-id" in cookies
    other = browsing.tab()  # another browser: its own list
    other.open(server.url)
    expect(other.page.locator("#todos li.empty")).to_have_count(1)


def test_a_change_in_one_tab_reaches_the_other_live(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(TODOS)
    context = browsing.context()
    first = browsing.tab(context)
    first.open(server.url)
    second = browsing.tab(context)
    second.open(server.url)

    add(first, "milk")
    expect_titles(second, ["milk"])
    press(second, "Toggle milk")
    expect(first.page.locator("#todos li.done .title")).to_have_text(["milk"])
    press(first, "Delete milk")
    expect(second.page.locator("#todos li.empty")).to_have_count(1)
    # the other tab's own (not persisted) filter stays its own
    second.page.get_by_role("link", name="Done").click()
    expect(second.page).to_have_url(f"{server.url}?filter=done")
    add(first, "eggs")
    expect_titles(first, ["eggs"])
    expect(second.page.locator("#todos li.empty")).to_have_count(1)
    expect(second.page.locator("p.count")).to_have_text("1 left of 1")
