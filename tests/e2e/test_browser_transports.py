"""The todos example without WebSocket: the client's HTTP mode (``websocket_disabled=True``,
actions as JSON POSTs) and a browser without JavaScript (plain form posts, post/redirect/get)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urljoin

import pytest
from playwright.sync_api import Page, Request, Response, expect

from tests.e2e.harness import Browsing, Server, Tab
from tests.e2e.todos_page import add, expect_titles, press

pytestmark = pytest.mark.e2e

TODOS_FACTORY = "examples.todos.app:create_app"
TODOS = "examples.todos.app:app"


def _response(request: Request) -> Response:
    response = request.response()
    assert response is not None, f"no response to {request.method} {request.url}"
    return response


def _submit(page: Page, button: str) -> None:
    """Click a submit button of a plain form and wait for the page after the post."""
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


def _document_requests(tab: Tab) -> list[tuple[str, str]]:
    return [(r.method, r.url) for r in tab.requests if r.resource_type == "document"]


def test_websocket_disabled_works_over_fetch(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(TODOS_FACTORY, websocket_disabled=True)
    offset = server.log_size()
    tab = browsing.tab()
    tab.open(server.url)
    page = tab.page

    probes = [r for r in tab.responses if r.request.method == "HEAD"]
    assert probes, "the client sent no HEAD probe"
    assert probes[0].headers.get("x-livetemplate-websocket") == "disabled"
    initial = [r for r in tab.requests if r.method == "GET" and r.headers.get("accept") == "application/json"]
    assert len(initial) == 1, "the client fetches the initial tree as JSON once"

    add(tab, "milk")
    add(tab, "eggs")
    expect(page.locator("output[data-flash]")).to_have_text("Added “eggs”.")
    press(tab, "Toggle milk")
    expect(page.locator("#todos li.done .title")).to_have_text(["milk"])
    press(tab, "Move eggs up")
    expect_titles(tab, ["eggs", "milk"])
    press(tab, "Delete milk")
    expect_titles(tab, ["eggs"])
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#title-error")).to_have_text("Please enter a title.")

    posts = tab.posts()
    assert [p.post_data_json["action"] for p in posts] == ["add", "add", "toggle", "move_up", "delete", "add"]
    for post in posts:
        assert post.headers.get("content-type") == "application/json"
        assert post.url == server.url
    assert posts[0].post_data_json["data"]["title"] == "milk"
    assert posts[0].post_data_json.get("submitter") == "add"
    replies = [_response(post) for post in posts]
    assert [r.status for r in replies] == [200] * len(posts)
    last = replies[-1].json()
    assert last["meta"] == {"success": False, "errors": {"title": "Please enter a title."}, "action": "add"}

    # the filter links fetch the page of the new URL (no __navigate__ without a socket)
    page.get_by_role("link", name="Active").click()
    expect(page).to_have_url(f"{server.url}?filter=active")
    expect(page.get_by_role("link", name="Active")).to_have_attribute("aria-current", "page")
    expect_titles(tab, ["eggs"])

    tab.reload()
    expect_titles(tab, ["eggs"])
    assert tab.sockets == [], f"a WebSocket was opened: {[ws.url for ws in tab.sockets]}"
    assert "WebSocket" not in server.log(offset)


def test_without_javascript_plain_forms_post_redirect_get(serve: Callable[..., Server], browsing: Browsing) -> None:
    server = serve(TODOS)
    tab = browsing.tab(javascript=False)
    page = tab.page
    page.goto(server.url)
    expect(page.locator("#todos li.empty")).to_have_text("Nothing here.")
    expect(page.locator("output[data-flash]")).to_have_count(0)

    page.get_by_role("textbox", name="New todo").fill("milk")
    _submit(page, "Add")
    assert page.url == server.url
    expect_titles(tab, ["milk"])
    expect(page.locator("output[data-flash]")).to_have_text("Added “milk”.")
    page.get_by_role("textbox", name="New todo").fill("eggs")
    _submit(page, "Add")
    expect_titles(tab, ["milk", "eggs"])

    _submit(page, "Toggle milk")
    assert page.url == server.url
    expect(page.locator("#todos li.done .title")).to_have_text(["milk"])
    expect(page.get_by_role("button", name="Toggle milk")).to_have_text("☑")
    expect(page.locator("output[data-flash]")).to_have_count(0)  # a flash is shown once

    _submit(page, "Move eggs up")
    expect_titles(tab, ["eggs", "milk"])

    _submit(page, "Delete eggs")
    assert page.url == server.url
    expect_titles(tab, ["milk"])
    expect(page.locator("output[data-flash]")).to_have_text("Deleted “eggs”.")

    posts = [r for r in tab.requests if r.method == "POST"]
    assert len(posts) == 5
    for post in posts:
        assert post.headers.get("content-type") == "application/x-www-form-urlencoded"
        response = _response(post)
        assert response.status == 303
        assert urljoin(server.url, response.headers["location"]) == server.url
    assert _document_requests(tab)[-2:] == [("POST", server.url), ("GET", server.url)]

    # the reload after the redirect is a GET: nothing is posted twice, the flash is gone
    page.reload()
    expect_titles(tab, ["milk"])
    expect(page.locator("output[data-flash]")).to_have_count(0)
    assert len([r for r in tab.requests if r.method == "POST"]) == 5
    assert tab.sockets == []


def test_without_javascript_a_validation_error_renders_the_page(
    serve: Callable[..., Server], browsing: Browsing
) -> None:
    server = serve(TODOS)
    tab = browsing.tab(javascript=False)
    page = tab.page
    page.goto(f"{server.url}?filter=active")
    _submit(page, "Add")
    expect(page.locator("#title-error")).to_have_text("Please enter a title.")
    expect(page.get_by_role("textbox", name="New todo")).to_have_attribute("aria-invalid", "true")
    post = next(r for r in tab.requests if r.method == "POST")
    assert _response(post).status == 200  # no redirect: the page shows the error
    assert page.url == f"{server.url}?filter=active"

    page.get_by_role("textbox", name="New todo").fill("milk")
    _submit(page, "Add")
    assert page.url == f"{server.url}?filter=active"  # redirected back to the filtered view
    expect(page.locator("#title-error")).to_have_count(0)
    expect_titles(tab, ["milk"])
    expect(page.get_by_role("link", name="Active")).to_have_attribute("aria-current", "page")
