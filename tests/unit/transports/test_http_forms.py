"""Plain form posts without JavaScript: CSRF field, action routing, post/redirect/get with
the flash carried in a cookie, validation errors rendered inline, redirects."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec
import pytest

import livetemplate
from examples.todos.app import create_app
from livetemplate import Context, FieldError, Persist
from livetemplate.testing import LiveClient

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="_csrf" value="([^"]*)"')
FORM = """<form method="post">{{ lvt.csrf_field() }}<input name="title"><button>Go</button></form>
<p class="error">{{ lvt.error("title") }}{{ lvt.error("_general") }}</p>
<output>{{ lvt.flash("done") }}</output>
<ul>{% for entry in log %}<li>{{ entry }}</li>{% endfor %}</ul>"""


class Log(msgspec.Struct):
    log: Annotated[list[str], Persist] = []


class Recorder:
    """Records what each action saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any], str | None, bool]] = []

    def _record(self, state: Log, ctx: Context) -> Log:
        self.seen.append((ctx.action, dict(ctx.data), ctx.submitter, ctx.is_http))
        state.log.append(ctx.action)
        return state

    def submit(self, state: Log, ctx: Context) -> Log:
        return self._record(state, ctx)

    def save(self, state: Log, ctx: Context) -> Log:
        ctx.set_flash("done", f"Saved {ctx.get_str('title')}")
        return self._record(state, ctx)

    def save_draft(self, state: Log, ctx: Context) -> Log:
        return self._record(state, ctx)

    def fail(self, state: Log, ctx: Context) -> Log:
        state.log.append("lost")
        raise FieldError("title", "Title is taken")

    def go(self, state: Log, ctx: Context) -> Log:
        self._record(state, ctx)
        ctx.set_flash("done", "lost in the redirect")
        ctx.redirect("/elsewhere?x=1")
        return state

    def go_found(self, state: Log, ctx: Context) -> Log:
        ctx.redirect("/found", 302)
        return state

    def go_away(self, state: Log, ctx: Context) -> Log:
        ctx.redirect("https://evil.example/")
        return state


def recorder(**options: Any) -> tuple[livetemplate.LiveApp, Recorder]:
    controller = Recorder()
    return livetemplate.mount(controller, Log(), template=FORM, **options), controller


async def token_of(client: LiveClient, url: str = "/") -> str:
    """Load the page (which sets the session cookie) and read its CSRF token."""
    page = await client.get(url)
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def form(**fields: Any) -> dict[str, Any]:
    return {"data": fields}


# -- the todos example, end to end ------------------------------------------------------------


async def test_todos_without_javascript() -> None:
    async with LiveClient(create_app()) as client:
        token = await token_of(client)
        added = await client.post("/", data={"_csrf": token, "title": "Buy milk", "add": ""})
        assert added.status_code == 303
        assert added.headers["location"] == "/"
        flash_cookie = added.headers["set-cookie"]
        assert flash_cookie.startswith("lvt-flash=")
        assert "; Max-Age=10; HttpOnly; SameSite=Lax" in flash_cookie
        assert json.loads(unquote(flash_cookie.split(";")[0].split("=", 1)[1])) == {"notice": "Added “Buy milk”."}

        shown = await client.get("/")
        assert '<output role="status" data-flash>Added “Buy milk”.</output>' in shown.text
        assert '<span class="title">Buy milk</span>' in shown.text
        assert "lvt-flash=; " in shown.headers["set-cookie"] and "Max-Age=0" in shown.headers["set-cookie"]

        again = await client.get("/")
        assert '<output role="status" data-flash>' not in again.text  # shown once
        assert "Buy milk" in again.text

        toggled = await client.post("/", data={"_csrf": token, "id": "1", "toggle": ""})
        assert toggled.status_code == 303
        assert 'class="done"' in (await client.get("/")).text

        deleted = await client.post("/", data={"_csrf": token, "id": "1", "delete": ""})
        assert deleted.status_code == 303
        page = (await client.get("/")).text
        assert "Nothing here." in page
        assert "Deleted “Buy milk”." in page


async def test_todos_validation_error_is_rendered_inline() -> None:
    async with LiveClient(create_app()) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "title": "   ", "add": ""})
        after = (await client.get("/")).text
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<small class="error" id="title-error">Please enter a title.</small>' in response.text
    assert 'aria-invalid="true"' in response.text
    assert response.text.count("data-lvt-id=") == 1
    assert "Nothing here." in after
    assert "Please enter a title." not in after


async def test_todos_form_keeps_the_query() -> None:
    async with LiveClient(create_app()) as client:
        token = await token_of(client, "/?filter=done")
        response = await client.post("/?filter=done", data={"_csrf": token, "title": "x", "add": ""})
        page = (await client.get("/?filter=done")).text
    assert response.status_code == 303
    assert response.headers["location"] == "/?filter=done"
    assert '<a href="?filter=done" aria-current="page">' in page


# -- CSRF ----------------------------------------------------------------------------------------


async def test_form_post_needs_the_csrf_field() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        missing = await client.post("/", data={"title": "a", "save": ""})
        wrong = await client.post("/", data={"_csrf": "0" * 32, "title": "a", "save": ""})
        empty = await client.post("/", data={"_csrf": "", "title": "a", "save": ""})
        right = await client.post("/", data={"_csrf": token, "title": "a", "save": ""})
    for response in (missing, wrong, empty):
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert right.status_code == 303
    assert [seen[0] for seen in controller.seen] == ["save"]


async def test_csrf_token_is_bound_to_the_session() -> None:
    app, controller = recorder()
    async with (
        LiveClient(app) as alice,
        LiveClient(app, shutdown=False) as mallory,
        LiveClient(app, shutdown=False) as stranger,
    ):
        token = await token_of(alice)
        await mallory.get("/")
        stolen = await mallory.post("/", data={"_csrf": token, "save": ""})
        no_cookie = await stranger.post("/", data={"_csrf": token, "save": ""})
    assert stolen.status_code == 403
    assert no_cookie.status_code == 403
    assert controller.seen == []


async def test_csrf_token_is_stable_per_session_and_secret() -> None:
    app = livetemplate.mount(Recorder(), Log(), template=FORM, secret_key="s3cret")
    async with LiveClient(app) as client:
        first = await token_of(client)
        second = await token_of(client)
    assert first == second
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", first)


async def test_form_post_checks_the_origin() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "save": ""}, headers={"origin": "http://evil.example"})
    assert response.status_code == 403
    assert controller.seen == []


# -- routing the action --------------------------------------------------------------------------


async def test_action_is_the_clicked_buttons_name() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "title": "Hello", "save": ""})
    assert response.status_code == 303
    assert controller.seen == [("save", {"title": "Hello"}, "save", True)]


async def test_action_names_are_normalised_for_buttons() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        await client.post("/", data={"_csrf": token, "save-draft": ""})
        await client.post("/", data={"_csrf": token, "saveDraft": ""})
    assert [seen[0] for seen in controller.seen] == ["save-draft", "saveDraft"]


async def test_without_a_named_button_the_action_is_submit() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "title": "Hi"})
    assert response.status_code == 303
    assert controller.seen == [("submit", {"title": "Hi"}, "submit", True)]


async def test_button_value_becomes_data_value() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        await client.post("/", data={"_csrf": token, "title": "T", "save": "42"})
    assert controller.seen[0][1] == {"title": "T", "value": "42"}


async def test_query_parameters_are_merged_and_the_form_wins() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client, "/?page=2&title=from-query")
        response = await client.post("/?page=2&title=from-query", data={"_csrf": token, "title": "form", "save": ""})
    assert response.headers["location"] == "/?page=2&title=from-query"
    assert controller.seen[0][1] == {"page": "2", "title": "form"}


async def test_repeated_fields_become_lists() -> None:
    app, controller = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        await client.post("/", content=f"_csrf={token}&tag=a&tag=b&save=", headers=_FORM_TYPE)
    assert controller.seen[0][1] == {"tag": ["a", "b"]}


_FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}


# -- outcomes ---------------------------------------------------------------------------------------


async def test_success_redirects_and_the_flash_shows_once() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "title": "Report", "save": ""})
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        assert response.content == b""
        shown = (await client.get("/")).text
        gone = (await client.get("/")).text
    assert "<output>Saved Report</output>" in shown
    assert "<li>save</li>" in shown
    assert "<output></output>" in gone


async def test_success_without_flash_sets_no_flash_cookie() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "submit": ""})
    assert response.status_code == 303
    assert "lvt-flash" not in response.headers.get("set-cookie", "")


async def test_validation_error_renders_the_page_with_errors() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "title": "dup", "fail": ""})
        after = (await client.get("/")).text
    assert response.status_code == 200
    assert '<p class="error">Title is taken</p>' in response.text
    assert "<li>lost</li>" not in response.text
    assert "<li>lost</li>" not in after
    assert '<p class="error"></p>' in after


async def test_unknown_action_in_a_form_is_an_error_page() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        # no button names an action: the action is "submit"; a controller without it fails cleanly
        bare = livetemplate.mount(object(), Log(), template=FORM)
        async with LiveClient(bare) as other:
            other_token = await token_of(other)
            response = await other.post("/", data={"_csrf": other_token, "title": "x"})
        ok = await client.post("/", data={"_csrf": token, "save": ""})
    assert response.status_code == 200
    assert "unknown action &#39;submit&#39;" in response.text
    assert ok.status_code == 303


async def test_redirect_from_an_action() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "go": ""})
        found = await client.post("/", data={"_csrf": token, "go_found": ""})
        page = (await client.get("/")).text
    assert response.status_code == 303
    assert response.headers["location"] == "/elsewhere?x=1"
    assert found.status_code == 302
    assert found.headers["location"] == "/found"
    assert "<li>go</li>" in page  # the action committed


async def test_redirect_off_site_is_refused() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "go_away": ""})
    assert response.status_code == 200
    assert "location" not in response.headers


async def test_redirect_from_mount_on_get() -> None:
    class Guarded(Recorder):
        def mount(self, state: Log, ctx: Context) -> Log:
            if ctx.get_str("private"):
                ctx.redirect("/login")
            return state

    app = livetemplate.mount(Guarded(), Log(), template=FORM)
    async with LiveClient(app) as client:
        response = await client.get("/?private=1")
        normal = await client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert normal.status_code == 200


async def test_form_posts_can_be_disabled() -> None:
    app, controller = recorder(progressive_enhancement=False)
    async with LiveClient(app) as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "save": ""})
    assert response.status_code == 415
    assert controller.seen == []


async def test_flash_cookie_over_https_is_secure() -> None:
    app, _ = recorder()
    async with LiveClient(app, base_url="https://testserver") as client:
        token = await token_of(client)
        response = await client.post("/", data={"_csrf": token, "title": "x", "save": ""})
        shown = (await client.get("/")).text
    assert response.headers["set-cookie"].endswith("; Secure")
    assert "<output>Saved x</output>" in shown


async def test_a_garbled_flash_cookie_is_ignored() -> None:
    app, _ = recorder()
    async with LiveClient(app) as client:
        await client.get("/")
        response = await client.get("/", headers={"cookie": client.cookie_header() + "; lvt-flash=%7Bnot-json"})
    assert response.status_code == 200
    assert "<output></output>" in response.text
