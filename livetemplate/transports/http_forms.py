"""Forms posted without JavaScript (post/redirect/get): the CSRF field, the action the
clicked button names, the redirect on success with its one-time flash cookie, the page with
the errors in it otherwise."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from ..request import Request, cookie_header
from ..runtime import Runtime
from ..uploads.entries import errors_by_upload
from ..wire import ACTION_FIELDS, CSRF_FIELD, FLASH_COOKIE
from .http_exchange import HttpExchange, answered, run_request, send_page
from .response import Responder

__all__ = ["post_form", "read_flash", "run_form"]


async def post_form(rt: Runtime, request: Request, body: bytes, respond: Responder) -> None:
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
    await run_form(rt, request, group_id, new_cookie, fields, HttpExchange(request), respond)


async def run_form(
    rt: Runtime,
    request: Request,
    group_id: str,
    new_cookie: str | None,
    fields: dict[str, Any],
    exchange: HttpExchange,
    respond: Responder,
) -> None:
    """Run the action a form posted without JavaScript names (see :func:`post_form`)."""
    token = fields.pop(CSRF_FIELD, "")
    if new_cookie is not None or not _same_token(token, rt.ids.csrf_token(group_id)):
        await respond.text(403, "Forbidden: missing or wrong CSRF token; put {{ lvt.csrf_field() }} in the form")
        return
    action, value = _form_action(rt, fields)
    data = {**request.query, **fields}
    if value:
        data["value"] = value
    exchange.submitter = action
    refused = errors_by_upload(exchange.entries)
    outcome = await run_request(rt, request, exchange, group_id, action=None if refused else action, data=data)
    if refused:
        outcome.success, outcome.errors = False, refused
    if await answered(exchange, respond):
        return
    if outcome.success:
        if exchange.flash:
            flash = quote(json.dumps(exchange.flash, separators=(",", ":")))
            respond.cookie(cookie_header(FLASH_COOKIE, flash, 10, request.secure))
        await respond(303, location=request.url)
        return
    await send_page(rt, request, group_id, outcome, exchange, respond)


def _same_token(given: Any, expected: str) -> bool:
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


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


def read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
