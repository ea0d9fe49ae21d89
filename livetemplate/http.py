"""HTTP: the page, the HEAD probe, the JSON transport of the client's HTTP mode, plain
form posts without JavaScript (post/redirect/get), and the client's script."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

import msgspec

from .app import GENERAL, Exchange, Outcome
from .errors import TemplateError
from .helpers import CSRF_FIELD
from .page import wrap
from .template import encode_frame
from .types import Receive, Scope, Send
from .wire import META_ACTION, META_CAPABILITIES, META_ERRORS, META_SUCCESS

if TYPE_CHECKING:
    from .app import LiveApp, Options

__all__ = ["Request", "group_cookie", "handle_http", "origin_allowed"]

logger = logging.getLogger("livetemplate.http")

COOKIE = "livetemplate-id"
FLASH_COOKIE = "lvt-flash"
ASSET_PREFIX = "/_livetemplate/"
WS_HEADER = b"x-livetemplate-websocket"
_GROUP_ID = re.compile(r"[A-Za-z0-9_-]{43}\Z")
#: Fields a form post may name its action with (written by the client or a template).
_ACTION_FIELDS = ("lvt-action", "lvt-submitter")


class Request:
    """The parts of an HTTP or WebSocket request the runtime reads."""

    def __init__(self, scope: Scope, trust_forwarded: bool) -> None:
        self.scope = scope
        headers: dict[str, str] = {}
        cookie_headers = []
        for name, value in scope.get("headers", ()):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            if key == "cookie":
                cookie_headers.append(text)
            else:
                headers[key] = text
        self.headers = headers
        self.cookies = _parse_cookies("; ".join(cookie_headers))
        self.path: str = scope.get("path", "/")
        self.root_path: str = scope.get("root_path", "")
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")
        # the client sends query parameters as strings, the last of duplicates winning
        self.query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        scheme = scope.get("scheme", "http")
        if trust_forwarded:
            scheme = _forwarded_proto(headers) or scheme
        self.secure = scheme in ("https", "wss")
        self.host = headers.get("host", "")

    @property
    def relative_path(self) -> str:
        path = self.path
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]
        return path or "/"

    @property
    def url(self) -> str:
        """Path and query of the request, as the browser addressed it."""
        return self.path + (f"?{self.query_string}" if self.query_string else "")

    def origin(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}".lower()


def _forwarded_proto(headers: Mapping[str, str]) -> str | None:
    proto = headers.get("x-forwarded-proto")
    if proto:
        return proto.split(",")[0].strip().lower()
    forwarded = headers.get("forwarded")
    if forwarded:
        match = re.search(r"proto=([A-Za-z]+)", forwarded.split(",")[0])
        if match:
            return match.group(1).lower()
    return None


def _parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        if "=" in part:
            name, _, value = part.strip().partition("=")
            cookies.setdefault(name.strip(), value.strip().strip('"'))
    return cookies


def origin_allowed(request: Request, options: Options) -> bool:
    """The framework's CSRF defence for WebSockets and fetches: the ``Origin`` header
    (when present) must be the page's own origin, or one of ``allowed_origins``."""
    origin = request.headers.get("origin")
    if origin is None or options.dev_mode:
        return True
    if options.allowed_origins:
        return origin in options.allowed_origins
    return origin.lower() == request.origin()


def group_cookie(request: Request, options: Options) -> tuple[str, str | None]:
    """The session group of the request, and the Set-Cookie value when it is new."""
    group_id = request.cookies.get(COOKIE, "")
    if _GROUP_ID.match(group_id):
        return group_id, None
    group_id = secrets.token_urlsafe(32)
    return group_id, _cookie(COOKIE, group_id, options.cookie_max_age, request.secure)


def _cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    cookie = f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie


class HttpExchange(Exchange):
    is_http = True

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request
        self.secure = request.secure
        self.cookies = request.cookies


class _Response:
    def __init__(self, app: LiveApp, send: Send) -> None:
        self.app = app
        self._send = send
        self.headers: list[tuple[bytes, bytes]] = [
            (WS_HEADER, b"disabled" if app.options.websocket_disabled else b"enabled"),
        ]

    def cookie(self, value: str | None) -> None:
        if value:
            self.headers.append((b"set-cookie", value.encode("latin-1")))

    async def __call__(self, status: int, body: bytes = b"", content_type: str | None = None, **extra: str) -> None:
        headers = list(self.headers)
        if content_type is not None:
            headers.append((b"content-type", content_type.encode("latin-1")))
        for name, value in extra.items():
            headers.append((name.replace("_", "-").encode("latin-1"), value.encode("latin-1")))
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def json(self, status: int, payload: bytes) -> None:
        await self(status, payload, "application/json")

    async def text(self, status: int, message: str) -> None:
        await self(status, message.encode(), "text/plain; charset=utf-8")


class BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyTooLarge("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def handle_http(app: LiveApp, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, app.options.trust_forwarded_headers)
    respond = _Response(app, send)
    method = scope["method"]
    path = request.relative_path
    if path.startswith(ASSET_PREFIX):
        await _asset(path[len(ASSET_PREFIX) :], method, respond)
        return
    if path != "/":
        await respond.text(404, "Not Found")
        return
    if method == "HEAD":
        await respond(200)
        return
    if method == "GET":
        await _get(app, request, respond)
        return
    if method != "POST":
        await respond(405, b"Method Not Allowed", "text/plain", allow="GET, HEAD, POST")
        return
    if not origin_allowed(request, app.options):
        await respond.text(403, "Forbidden: cross-origin request")
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        body = await _read_body(receive, app.options.max_message_size)
    except BodyTooLarge as exc:
        await respond.text(413, f"Payload Too Large: {exc}")
        return
    if content_type == "application/json" or content_type.endswith("+json"):
        await _post_json(app, request, body, respond)
    elif content_type == "application/x-www-form-urlencoded" and app.options.progressive_enhancement:
        await _post_form(app, request, body, respond)
    elif content_type == "application/x-www-form-urlencoded":
        await respond.text(415, "Unsupported Media Type: plain form posts are disabled (progressive_enhancement)")
    else:
        await respond.text(415, f"Unsupported Media Type: {content_type or 'none'}; send JSON or a form")


def _wants_json(request: Request) -> bool:
    for part in request.headers.get("accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media and media != "*/*":
            return media == "application/json" or media.endswith("+json")
    return False


async def _get(app: LiveApp, request: Request, respond: _Response) -> None:
    group_id, new_cookie = group_cookie(request, app.options)
    respond.cookie(new_cookie)
    exchange = HttpExchange(request)
    flash = _read_flash(request)
    if flash is not None:
        exchange.flash.update(flash)
        respond.cookie(_cookie(FLASH_COOKIE, "", 0, request.secure))
    group = await app.group(group_id)
    outcome = await app.run(group, exchange, app.new_state(group), hooks=("mount",), query=request.query)
    if await _answered(exchange, respond):
        return
    if _wants_json(request):
        meta: dict[str, Any] = {META_SUCCESS: outcome.success, META_ERRORS: outcome.errors}
        if app.capabilities:
            meta[META_CAPABILITIES] = app.capabilities
        await _send_tree(app, group_id, outcome, exchange, meta, respond)
        return
    await _send_page(app, request, group_id, outcome, exchange, respond, 200)


async def _send_tree(
    app: LiveApp, group_id: str, outcome: Outcome, exchange: Exchange, meta: dict[str, Any], respond: _Response
) -> None:
    """A complete tree: HTTP responses cannot know what each tab holds, so they send all
    of it (the client accepts a complete tree over its current state)."""
    helpers = app.helpers(group_id, outcome.errors, exchange.flash)
    try:
        tree = app.template.renderer().render(outcome.state, {"lvt": helpers})
    except TemplateError as exc:
        logger.error("rendering failed: %s", exc)
        await respond.json(500, encode_frame({}, {META_SUCCESS: False, META_ERRORS: {GENERAL: "render failed"}}))
        return
    if app.region is not None:
        tree = app.region.tree(tree)
    await respond.json(200, encode_frame(tree, meta))


async def _send_page(
    app: LiveApp,
    request: Request,
    group_id: str,
    outcome: Outcome,
    exchange: Exchange,
    respond: _Response,
    status: int,
) -> None:
    helpers = app.helpers(group_id, outcome.errors, exchange.flash)
    try:
        html = app.template.render(outcome.state, {"lvt": helpers})
    except TemplateError as exc:
        logger.error("rendering failed: %s", exc)
        detail = str(exc) if app.options.dev_mode else "The page could not be rendered."
        await respond.text(500, f"Internal Server Error: {detail}")
        return
    options = app.options
    attributes = {"data-lvt-id": f"lvt-{secrets.token_hex(8)}"}
    if options.loading_indicator:
        attributes["data-lvt-loading"] = "true"
    if options.heartbeat_ms is not None:
        attributes["data-lvt-heartbeat-ms"] = str(options.heartbeat_ms)
    script = ""
    if "livetemplate-client" not in html:
        script = f'<script src="{client_script_url(app, request)}"></script>'
    page = wrap(html, app.region, attributes, script)
    await respond(status, page.encode(), "text/html; charset=utf-8", cache_control="no-store")


def client_script_url(app: LiveApp, request: Request) -> str:
    return app.options.client_script_url or f"{request.root_path}{ASSET_PREFIX}{client_asset_name()}"


async def _post_json(app: LiveApp, request: Request, body: bytes, respond: _Response) -> None:
    from .connection import NAVIGATE, PING, PONG, Incoming

    try:
        incoming = msgspec.json.decode(body, type=Incoming)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        meta = {META_SUCCESS: False, META_ERRORS: {GENERAL: f"malformed message: {exc}"}}
        await respond.json(400, encode_frame({}, meta))
        return
    if incoming.action == PING:
        await respond.json(200, PONG)
        return
    if incoming.action == NAVIGATE:
        meta = {META_SUCCESS: False, META_ERRORS: {GENERAL: "__navigate__ needs a WebSocket; load the page instead"}}
        await respond.json(400, encode_frame({}, meta))
        return
    group_id, new_cookie = group_cookie(request, app.options)
    respond.cookie(new_cookie)
    exchange = HttpExchange(request)
    exchange.submitter = incoming.submitter
    group = await app.group(group_id)
    outcome = await app.run(
        group,
        exchange,
        app.new_state(group),
        hooks=("mount",),
        action=incoming.action,
        data=incoming.data or {},
        query=request.query,
    )
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    meta = {META_SUCCESS: outcome.success, META_ERRORS: outcome.errors, META_ACTION: incoming.action}
    await _send_tree(app, group_id, outcome, exchange, meta, respond)


async def _post_form(app: LiveApp, request: Request, body: bytes, respond: _Response) -> None:
    """A form posted without JavaScript: the action is the clicked button's name (else
    ``submit``); success answers 303 to the same URL, a validation error the page with
    the errors in it."""
    group_id, new_cookie = group_cookie(request, app.options)
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
    if new_cookie is not None or not secrets.compare_digest(str(fields.pop(CSRF_FIELD, "")), app.csrf_token(group_id)):
        await respond.text(403, "Forbidden: missing or wrong CSRF token; put {{ lvt.csrf_field() }} in the form")
        return
    action, value = _form_action(app, fields)
    data = {**request.query, **fields}
    if value:
        data["value"] = value
    exchange = HttpExchange(request)
    exchange.submitter = action
    group = await app.group(group_id)
    outcome = await app.run(
        group, exchange, app.new_state(group), hooks=("mount",), action=action, data=data, query=request.query
    )
    if await _answered(exchange, respond):
        return
    if outcome.success:
        if exchange.flash:
            flash = quote(json.dumps(exchange.flash, separators=(",", ":")))
            respond.cookie(_cookie(FLASH_COOKIE, flash, 10, request.secure))
        await respond(303, location=request.url)
        return
    await _send_page(app, request, group_id, outcome, exchange, respond, 200)


async def _answered(exchange: HttpExchange, respond: _Response) -> bool:
    """Pass on the cookies the hooks and actions set; answer their redirect, if any."""
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    if exchange.redirect is None:
        return False
    url, status = exchange.redirect
    await respond(status, location=url)
    return True


def _form_action(app: LiveApp, fields: dict[str, Any]) -> tuple[str, str]:
    """The action a form names and the value of the button that named it."""
    for name in _ACTION_FIELDS:
        chosen = fields.pop(name, None)
        if isinstance(chosen, str) and chosen:
            value = fields.pop(chosen, "")
            return chosen, value if isinstance(value, str) else ""
    for name in list(fields):
        if app.actions.find(name) is not None:
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


@cache
def client_version() -> str:
    return _static("client-version.txt").decode().strip()


@cache
def client_asset_name() -> str:
    return f"livetemplate-client-{client_version()}.js"


@cache
def _static(name: str) -> bytes:
    return resources.files("livetemplate").joinpath("static", name).read_bytes()


async def _asset(name: str, method: str, respond: _Response) -> None:
    """The client's bundle under a versioned name, cached for a year."""
    files = {client_asset_name(): "livetemplate-client.browser.js", client_asset_name() + ".map": None}
    if name not in files or method not in ("GET", "HEAD"):
        await respond.text(404, "Not Found")
        return
    source = files[name] or "livetemplate-client.browser.js.map"
    body = _static(source) if method == "GET" else b""
    content_type = "application/javascript; charset=utf-8" if name.endswith(".js") else "application/json"
    await respond(200, body, content_type, cache_control="public, max-age=31536000, immutable")


def check_client_asset() -> None:
    """Fail early (at mount) when the client bundle was not built into the package."""
    try:
        client_asset_name()
    except (FileNotFoundError, OSError) as exc:
        raise RuntimeError(
            "the @livetemplate/client bundle is missing from livetemplate/static/: run scripts/fetch-client "
            "(make does), or pass client_script_url= to mount()"
        ) from exc
