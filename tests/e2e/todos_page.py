"""Driving the todos example's page: the steps the todos tests share."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.harness import Tab


def add(tab: Tab, title: str) -> None:
    """Add a todo through the form (live page) and wait until it is listed."""
    page = tab.page
    page.get_by_role("textbox", name="New todo").fill(title)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#todos li .title", has_text=title)).to_have_count(1)


def press(tab: Tab, label: str) -> None:
    """Click the button with this accessible name (``Toggle milk``, ``Move milk up``, ...)."""
    tab.page.get_by_role("button", name=label, exact=True).click()


def expect_titles(tab: Tab, expected: list[str]) -> None:
    """The listed todos are exactly ``expected``, in this order."""
    expect(tab.page.locator("#todos li .title")).to_have_text(expected)
