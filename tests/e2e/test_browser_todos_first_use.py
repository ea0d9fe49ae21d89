"""The todos example as a new user first tries it: the add form empties after a successful
add (so pressing Add again does not add a duplicate), and a flash does not follow the user to
another filter."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import Browsing, Server
from tests.e2e.todos_page import add, expect_titles

pytestmark = pytest.mark.e2e

TODOS = "examples.todos.app:app"


def test_the_add_form_empties_after_an_add(serve: Callable[..., Server], browsing: Browsing) -> None:
    tab = browsing.tab()
    tab.open(serve(TODOS).url)
    page = tab.page
    title = page.get_by_role("textbox", name="New todo")
    add(tab, "milk")
    expect(title).to_have_value("")
    page.get_by_role("button", name="Add", exact=True).click()  # again, without typing
    expect(page.locator("#title-error")).to_have_text("Please enter a title.")
    expect_titles(tab, ["milk"])
    assert [m["data"]["title"] for m in tab.sent("add")] == ["milk", ""]


def test_a_flash_does_not_follow_to_another_filter(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(TODOS)
    tab = browsing.tab()
    tab.open(server.url)
    page = tab.page
    flash = page.locator("output[data-flash]")
    add(tab, "milk")
    expect(flash).to_have_text("Added “milk”.")
    page.get_by_role("link", name="Active").click()
    expect(page).to_have_url(f"{server.url}?filter=active")
    expect(flash).to_have_count(0)
    add(tab, "eggs")  # a new flash shows in the new view
    expect(flash).to_have_text("Added “eggs”.")
    page.get_by_role("link", name="All").click()
    expect(flash).to_have_count(0)
    expect_titles(tab, ["milk", "eggs"])
