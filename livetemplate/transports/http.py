"""HTTP on the app's path, routed by method and content type: the page (GET), the HEAD
probe, the client's HTTP mode (a JSON GET for the initial tree, JSON POSTs for actions),
forms without JavaScript (:mod:`.http_forms`) and uploads (:mod:`.http_uploads`)."""

from __future__ import annotations

from ..ops.logs import get_logger
from ..rendering import error_frame
from ..request import BodyTooLarge, ClientGone, Request, body_chunks, cookie_header, origin_allowed
from ..runtime import Runtime
from ..sessions import StoreUnavailable
from ..types import Receive
from ..wire import (
    FLASH_COOKIE,
    NAVIGATE,
    PING,
    PONG,
    MalformedMessage,
    UploadMessage,
    decode_incoming,
    meta,
)
from .http_exchange import HttpExchange, answered, run_request, send_page, send_tree, wants_json
from .http_forms import post_form, read_flash
from .http_uploads import post_multipart, post_upload
from .response import Responder

__all__ = ["serve_page"]

logger = get_logger(__name__)


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
    if content_type == "multipart/form-data":
        await post_multipart(rt, request, receive, respond)
        return
    try:
        body = b"".join([chunk async for chunk in body_chunks(receive, rt.options.max_message_size)])
    except ClientGone:
        return  # nobody is left to answer
    except BodyTooLarge as exc:
        await respond.text(413, f"Payload Too Large: {exc}")
        return
    if content_type == "application/json" or content_type.endswith("+json"):
        await _post_json(rt, request, body, respond)
    elif content_type == "application/x-www-form-urlencoded" and rt.options.progressive_enhancement:
        await post_form(rt, request, body, respond)
    elif content_type == "application/x-www-form-urlencoded":
        await respond.text(415, "Unsupported Media Type: plain form posts are disabled (progressive_enhancement)")
    else:
        await respond.text(415, f"Unsupported Media Type: {content_type or 'none'}; send JSON or a form")


async def _get(rt: Runtime, request: Request, respond: Responder) -> None:
    group_id, new_cookie = rt.ids.of(request, rt.options.cookie_max_age)
    respond.cookie(new_cookie)
    exchange = HttpExchange(request)
    flash = read_flash(request)
    if flash is not None:
        exchange.flash.update(flash)
        respond.cookie(cookie_header(FLASH_COOKIE, "", 0, request.secure))
    outcome = await run_request(rt, request, exchange, group_id)
    if await answered(exchange, respond):
        return
    if wants_json(request):
        await send_tree(
            rt,
            group_id,
            outcome,
            exchange,
            meta(outcome.success, outcome.errors, capabilities=rt.capabilities),
            respond,
        )
    else:
        await send_page(rt, request, group_id, outcome, exchange, respond)


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
    if isinstance(incoming, UploadMessage):
        await post_upload(rt, request, group_id, incoming, respond)
        return
    exchange = HttpExchange(request)
    exchange.submitter = incoming.submitter
    outcome = await run_request(rt, request, exchange, group_id, action=incoming.action, data=incoming.data or {})
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    frame_meta = meta(outcome.success, outcome.errors, action=incoming.action)
    await send_tree(rt, group_id, outcome, exchange, frame_meta, respond)
