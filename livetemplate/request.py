"""What both transports read of a request: headers, cookies, the query, the scheme behind a
proxy, the origin check, the cookie naming the browser's session group, and an HTTP
request's body, read within a limit.

Session-group ids are issued by the server only: the cookie carries the id and its HMAC
under the app's secret, and a value the server did not sign is replaced by a new id (so
nobody can plant an id in a victim's browser and share its session). The CSRF token of
no-JavaScript forms is bound to the id the same way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from urllib.parse import parse_qsl

from .types import Receive, Scope
from .wire import SESSION_COOKIE

__all__ = ["BodyTooLarge", "ClientGone", "Request", "SessionIds", "body_chunks", "cookie_header", "origin_allowed"]

_COOKIE_VALUE = re.compile(r"([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})\Z")
_FORWARDED_PROTO = re.compile(r"proto=([A-Za-z]+)")


class Request:
    """The parts of an HTTP or WebSocket request the runtime reads."""

    __slots__ = ("cookies", "headers", "host", "path", "query", "query_string", "root_path", "scope", "secure")

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
        """The path below the app's mount point."""
        path = self.path
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]
        return path or "/"

    @property
    def url(self) -> str:
        """Path and query of the request, as the browser addressed it."""
        return self.path + (f"?{self.query_string}" if self.query_string else "")

    def origin(self) -> str:
        """This site's origin, as the browser sees it."""
        return f"{'https' if self.secure else 'http'}://{self.host}".lower()


def _forwarded_proto(headers: Mapping[str, str]) -> str | None:
    proto = headers.get("x-forwarded-proto")
    if proto:
        return proto.split(",")[0].strip().lower()
    forwarded = headers.get("forwarded")
    if forwarded:
        match = _FORWARDED_PROTO.search(forwarded.split(",")[0])
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


def origin_allowed(request: Request, allowed_origins: Sequence[str], *, dev_mode: bool = False) -> bool:
    """The framework's CSRF defence for WebSockets and fetches: the ``Origin`` header (when
    present) must be the page's own origin, or one of ``allowed_origins``."""
    origin = request.headers.get("origin")
    if origin is None or dev_mode:
        return True
    if allowed_origins:
        return origin in allowed_origins
    return origin.lower() == request.origin()


class SessionIds:
    """Issues session-group ids signed with ``secret``, recognizes them, and derives the
    CSRF token bound to each."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: bytes, group_id: str, size: int) -> str:
        digest = hmac.new(self._secret, purpose + group_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:size]).decode().rstrip("=")

    def issue(self) -> tuple[str, str]:
        """A new group id and its cookie value."""
        group_id = secrets.token_urlsafe(32)
        return group_id, f"{group_id}.{self._mac(b'group:', group_id, 16)}"

    def verify(self, value: str) -> str | None:
        """The group id in a cookie value this server signed, else None."""
        match = _COOKIE_VALUE.match(value)
        if match is None:
            return None
        group_id, signature = match.groups()
        return group_id if hmac.compare_digest(signature, self._mac(b"group:", group_id, 16)) else None

    def of(self, request: Request, max_age: int) -> tuple[str, str | None]:
        """The session group of the request, and the ``Set-Cookie`` value when it is new."""
        group_id = self.verify(request.cookies.get(SESSION_COOKIE, ""))
        if group_id is not None:
            return group_id, None
        group_id, value = self.issue()
        return group_id, cookie_header(SESSION_COOKIE, value, max_age, request.secure)

    def csrf_token(self, group_id: str) -> str:
        """The token no-JavaScript forms of a session group must carry."""
        return self._mac(b"csrf:", group_id, 24)


def cookie_header(name: str, value: str, max_age: int, secure: bool) -> str:
    """A ``Set-Cookie`` value for one of the runtime's own cookies."""
    cookie = f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie


class ClientGone(Exception):
    """The client disconnected before the request's body ended."""


class BodyTooLarge(Exception):
    """The request's body is longer than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


async def body_chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request's body as it arrives, at most ``limit`` bytes in all; raises
    :class:`ClientGone` or :class:`BodyTooLarge`."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        yield chunk
        if not message.get("more_body", False):
            return
