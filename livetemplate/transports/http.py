"""HTTP on the app's path: the page (GET), the HEAD probe, the client's HTTP mode (a JSON
GET for the initial tree, JSON POSTs for actions) and plain form posts without JavaScript
(post/redirect/get)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from ..context import Exchange
from ..ops.logs import get_logger
from ..page import wrap
from ..rendering import RenderFailed, error_frame
from ..request import Request, cookie_header, origin_allowed
from ..runner import Outcome
from ..runtime import Runtime
from ..sessions import StoreUnavailable
from ..types import Receive
from ..wire import (
    ACTION_FIELDS,
    CSRF_FIELD,
    FLASH_COOKIE,
    HOOK_MOUNT,
    NAVIGATE,
    PING,
    PONG,
    MalformedMessage,
    decode_incoming,
    meta,
)
from .assets import client_asset_name
from .response import Responder

__all__ = ["HttpExchange", "serve_page"]

logger = get_logger(__name__)


class HttpExchange(Exchange):
    """An HTTP request, as the context of the action it runs sees it."""

    is_http = True

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request
        self.secure = request.secure
        self.cookies = request.cookies


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def serve_page(rt: Runtime, request: Request, method: str, receive: Receive, respond: Responder) -> None:
    """Everything the client asks of the app's path over HTTP."""
    try:
        await _serve(rt, request, method, receive, respond)
    except StoreUnavailable as exc:
        logger.error("session store unavailable: %s", exc)
        rt.metrics.session_store_errors.labels("get").inc()
        await respond(503, b"Service Unavailable: sessions cannot be read right now", "text/plain", retry_after="5")


async def _serve(rt: Runtime, request: Request, method: str, receive: Receive, respond: Responder) -> None:
    if method == "HEAD":
        await respond(200)
    elif method == "GET":
        await _get(rt, request, respond)
    elif method != "POST":
        await respond(405, b"Method Not Allowed", "text/plain", allow="GET, HEAD, POST")
    elif not origin_allowed(request, rt.options.allowed_origins, dev_mode=rt.options.dev_mode):
        await respond.text(403, "Forbidden: cross-origin request")
    else:
        await _post(rt, request, receive, respond)


async def _post(rt: Runtime, request: Request, receive: Receive, respond: Responder) -> None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        body = await _read_body(receive, rt.options.max_message_size)
    except ClientGone:
        return  # nobody is left to answer
    except BodyTooLarge as exc:
        await respond.text(413, f"Payload Too Large: {exc}")
        return
    if content_type == "application/json" or content_type.endswith("+json"):
        await _post_json(rt, request, body, respond)
    elif content_type == "application/x-www-form-urlencoded" and rt.options.progressive_enhancement:
        await _post_form(rt, request, body, respond)
    elif content_type == "application/x-www-form-urlencoded":
        await respond.text(415, "Unsupported Media Type: plain form posts are disabled (progressive_enhancement)")
    else:
        await respond.text(415, f"Unsupported Media Type: {content_type or 'none'}; send JSON or a form")


async def _run(
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


def _wants_json(request: Request) -> bool:
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media and media != "*/*":
            return media == "application/json" or media.endswith("+json")
    return False


async def _get(rt: Runtime, request: Request, respond: Responder) -> None:
    group_id, new_cookie = rt.ids.of(request, rt.options.cookie_max_age)
    respond.cookie(new_cookie)
    exchange = HttpExchange(request)
    flash = _read_flash(request)
    if flash is not None:
        exchange.flash.update(flash)
        respond.cookie(cookie_header(FLASH_COOKIE, "", 0, request.secure))
    outcome = await _run(rt, request, exchange, group_id)
    if await _answered(exchange, respond):
        return
    if _wants_json(request):
        await _send_tree(
            rt,
            group_id,
            outcome,
            exchange,
            meta(outcome.success, outcome.errors, capabilities=rt.capabilities),
            respond,
        )
    else:
        await _send_page(rt, request, group_id, outcome, exchange, respond)


async def _send_tree(
    rt: Runtime, group_id: str, outcome: Outcome, exchange: Exchange, frame_meta: dict[str, Any], respond: Responder
) -> None:
    """A complete tree: HTTP requests cannot say which tab they come from, so they get all
    of it (the client accepts a complete tree over what it holds)."""
    helpers = rt.pipeline.helpers(rt.ids.csrf_token(group_id), outcome.errors, exchange.flash)
    try:
        await respond.json(200, rt.pipeline.tree_frame(outcome.state, helpers, frame_meta))
    except RenderFailed as exc:
        await respond.json(500, error_frame(exc.detail))


async def _send_page(
    rt: Runtime, request: Request, group_id: str, outcome: Outcome, exchange: Exchange, respond: Responder
) -> None:
    helpers = rt.pipeline.helpers(rt.ids.csrf_token(group_id), outcome.errors, exchange.flash)
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


async def _post_json(rt: Runtime, request: Request, body: bytes, respond: Responder) -> None:
    try:
        incoming = decode_incoming(body)
    except MalformedMessage as exc:
        await respond.json(400, error_frame(str(exc)))
        return
    if incoming.action == PING:
        await respond.json(200, PONG)
        return
    if incoming.action == NAVIGATE:
        await respond.json(400, error_frame("__navigate__ needs a WebSocket; load the page instead"))
        return
    group_id, new_cookie = rt.ids.of(request, rt.options.cookie_max_age)
    respond.cookie(new_cookie)
    exchange = HttpExchange(request)
    exchange.submitter = incoming.submitter
    outcome = await _run(rt, request, exchange, group_id, action=incoming.action, data=incoming.data or {})
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    frame_meta = meta(outcome.success, outcome.errors, action=incoming.action)
    await _send_tree(rt, group_id, outcome, exchange, frame_meta, respond)


async def _post_form(rt: Runtime, request: Request, body: bytes, respond: Responder) -> None:
    """A form posted without JavaScript: the action is the clicked button's name (else
    ``submit``); success answers 303 to the same URL, a validation error the page with
    the errors in it."""
    group_id, new_cookie = rt.ids.of(request, rt.options.cookie_max_age)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        await respond.text(400, "Bad Request: the form is not UTF-8")
        return
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            previous = fields[name]
            fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[name] = value
    token = fields.pop(CSRF_FIELD, "")
    if new_cookie is not None or not _same_token(token, rt.ids.csrf_token(group_id)):
        await respond.text(403, "Forbidden: missing or wrong CSRF token; put {{ lvt.csrf_field() }} in the form")
        return
    action, value = _form_action(rt, fields)
    data = {**request.query, **fields}
    if value:
        data["value"] = value
    exchange = HttpExchange(request)
    exchange.submitter = action
    outcome = await _run(rt, request, exchange, group_id, action=action, data=data)
    if await _answered(exchange, respond):
        return
    if outcome.success:
        if exchange.flash:
            flash = quote(json.dumps(exchange.flash, separators=(",", ":")))
            respond.cookie(cookie_header(FLASH_COOKIE, flash, 10, request.secure))
        await respond(303, location=request.url)
        return
    await _send_page(rt, request, group_id, outcome, exchange, respond)


def _same_token(given: Any, expected: str) -> bool:
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


async def _answered(exchange: HttpExchange, respond: Responder) -> bool:
    """Pass on the cookies the hooks and actions set; answer their redirect, if any."""
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    if exchange.redirect is None:
        return False
    url, status = exchange.redirect
    await respond(status, location=url)
    return True


def _form_action(rt: Runtime, fields: dict[str, Any]) -> tuple[str, str]:
    """The action a form names and the value of the button that named it."""
    for name in ACTION_FIELDS:
        chosen = fields.pop(name, None)
        if isinstance(chosen, str) and chosen:
            value = fields.pop(chosen, "")
            return chosen, value if isinstance(value, str) else ""
    for name in list(fields):
        if rt.runner.actions.find(name) is not None:
            value = fields.pop(name)
            return name, value if isinstance(value, str) else ""
    return "submit", ""


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
