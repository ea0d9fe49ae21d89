"""One HTTP request of the app's path, run and answered: the exchange its hooks and action
see, the run on a fresh state of the session group, and the answers (a complete tree, the
page, a redirect)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from ..context import Exchange
from ..page import wrap
from ..rendering import RenderFailed, error_frame
from ..request import Request
from ..runner import Outcome
from ..runtime import Runtime
from ..uploads.entries import Entries
from ..wire import HOOK_MOUNT
from .assets import client_asset_name
from .response import Responder

__all__ = ["HttpExchange", "answered", "client_script_url", "run_request", "send_page", "send_tree", "wants_json"]


class HttpExchange(Exchange):
    """An HTTP request, as the context of the action it runs sees it."""

    is_http = True

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request
        self.secure = request.secure
        self.cookies = request.cookies
        self.set_cookies = []
        self.entries = Entries()  # the request's uploaded files

    def carry(self, entries: Entries) -> None:
        """Make ``entries`` the request's files (``ctx.uploads``, ``lvt.uploads``)."""
        self.uploads = self.entries = entries


async def run_request(
    rt: Runtime,
    request: Request,
    exchange: HttpExchange,
    group_id: str,
    *,
    action: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Outcome:
    """``mount`` (and an action) on a fresh state of the group, then what the hub must do."""
    group = await rt.groups.get(group_id)
    outcome = await rt.runner.run(
        group, exchange, rt.runner.new_state(group), hooks=(HOOK_MOUNT,), action=action, data=data, query=request.query
    )
    await rt.hub.settle(None, outcome, group_id=group_id)
    return outcome


def wants_json(request: Request) -> bool:
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media and media != "*/*":
            return media == "application/json" or media.endswith("+json")
    return False


async def answered(exchange: HttpExchange, respond: Responder) -> bool:
    """Pass on the cookies the hooks and actions set; answer their redirect, if any."""
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    if exchange.redirect is None:
        return False
    url, status = exchange.redirect
    await respond(status, location=url)
    return True


async def send_tree(
    rt: Runtime, group_id: str, outcome: Outcome, exchange: Exchange, frame_meta: dict[str, Any], respond: Responder
) -> None:
    """A complete tree: HTTP requests cannot say which tab they come from, so they get all
    of it (the client accepts a complete tree over what it holds)."""
    helpers = rt.pipeline.helpers(rt.ids.csrf_token(group_id), outcome.errors, exchange.flash, exchange.uploads)
    try:
        await respond.json(200, rt.pipeline.tree_frame(outcome.state, helpers, frame_meta))
    except RenderFailed as exc:
        await respond.json(500, error_frame(exc.detail))


async def send_page(
    rt: Runtime, request: Request, group_id: str, outcome: Outcome, exchange: Exchange, respond: Responder
) -> None:
    helpers = rt.pipeline.helpers(rt.ids.csrf_token(group_id), outcome.errors, exchange.flash, exchange.uploads)
    try:
        html = rt.pipeline.html(outcome.state, helpers)
    except RenderFailed as exc:
        await respond.text(500, f"Internal Server Error: {exc.detail}")
        return
    options = rt.options
    attributes = {"data-lvt-id": f"lvt-{secrets.token_hex(8)}"}
    if options.loading_indicator:
        attributes["data-lvt-loading"] = "true"
    if options.heartbeat_ms is not None:
        attributes["data-lvt-heartbeat-ms"] = str(options.heartbeat_ms)
    script = ""
    if "livetemplate-client" not in html:
        script = f'<script src="{client_script_url(rt, request)}"></script>'
    page = wrap(html, rt.pipeline.region, attributes, script)
    headers = {"cache_control": "no-store", "x_content_type_options": "nosniff", "referrer_policy": "same-origin"}
    if options.frame_ancestors is not None:  # who may frame the page: nobody by default
        ancestors = " ".join(options.frame_ancestors) or "'none'"
        headers["content_security_policy"] = f"frame-ancestors {ancestors}"
        if not options.frame_ancestors:
            headers["x_frame_options"] = "DENY"
    await respond(200, page.encode(), "text/html; charset=utf-8", **headers)


def client_script_url(rt: Runtime, request: Request) -> str:
    return rt.options.client_script_url or f"{request.root_path}/_livetemplate/{client_asset_name()}"
