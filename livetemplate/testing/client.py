"""Drive a mounted app in-process, as a browser with the official client would.

HTTP goes through ``httpx.AsyncClient`` over ``httpx.ASGITransport`` (one cookie jar for the
whole client); a WebSocket runs the app as a task fed from one queue (connect, frames,
disconnect) and drained into another (accept, frames, close). Frames are applied to a model
of the client's tree, so tests assert on the HTML a browser would show. Every wait has a
timeout, so no test can hang::

    async with LiveClient(app) as client:
        page = await client.get("/")                      # the HTML page (an httpx.Response)
        async with client.connect("/") as view:           # WebSocket, first tree received
            await view.click("button[name=increment]")    # the action the client would send
            await view.submit("form#add", {"title": "Milk"})
            assert "Milk" in view.html()
            update = await view.receive_json()            # a push
            result = await view.upload("avatar", [("me.png", png_bytes, "image/png")])
        await client.post_files("/", {"avatar": [("me.png", png_bytes, "image/png")]}, upload=True)
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..types import ASGIApp, Message
from ..wire import (
    CANCEL_UPLOAD,
    PING,
    SESSION_COOKIE,
    UPLOAD_CHUNK,
    UPLOAD_COMPLETE,
    UPLOAD_HEADER,
    UPLOAD_START,
)
from .dom import click_message, submit_message
from .tree import ClientTree

__all__ = ["TIMEOUT", "LiveClient", "LiveSocket", "UploadResult", "WebSocketClosed", "settle"]

#: Seconds any single wait may take before the test fails.
TIMEOUT = 3.0
#: The chunk size of the official client's WebSocket uploads.
CHUNK_SIZE = 256 * 1024
#: A file to upload: (name, content, declared type).
File = tuple[str, bytes, str]


class UploadResult:
    """What an upload over the WebSocket got back: the reply to ``upload_start`` (``entries``),
    the reply to ``upload_complete`` (None when nothing was uploaded), and every frame."""

    def __init__(self) -> None:
        self.start: dict[str, Any] = {}
        self.complete: dict[str, Any] | None = None
        self.frames: list[Any] = []

    @property
    def entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.start.get("entries", [])
        return entries

    @property
    def progress(self) -> list[dict[str, Any]]:
        """The ``upload_progress`` messages."""
        return [f for f in self.frames if isinstance(f, dict) and f.get("type") == "upload_progress"]

    def __repr__(self) -> str:
        return f"<UploadResult {len(self.entries)} entries, complete={self.complete}>"


class WebSocketClosed(AssertionError):
    """The app closed the socket while the test waited for a message."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"the app closed the WebSocket (code {code}, reason {reason!r})")


class LiveSocket:
    """One WebSocket to the app. ``async with`` performs the handshake: afterwards
    ``accepted`` tells whether the app accepted (``accept_headers`` holds its headers) or
    closed before accepting (``close_code``). Tree frames received through
    :meth:`receive_json` are applied to ``view``, the client's tree state."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], client: LiveClient | None = None) -> None:
        self.app = app
        self.scope = scope
        self.client = client
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.accepted = False
        self.accept_headers: dict[str, str] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        self.refused_status: int | None = None
        self.refused_headers: dict[str, str] = {}
        self.refused_body = b""
        self._reading = asyncio.Event()
        self._reading.set()
        self.disconnected = False
        self.sent_after_close = 0
        self.view = ClientTree()

    # -- the app's side ------------------------------------------------------------------

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        if self.disconnected or self.close_code is not None:
            self.sent_after_close += 1
            raise OSError("the WebSocket is closed")
        kind = message["type"]
        if kind == "websocket.send":
            await self._reading.wait()  # a client that stopped reading holds the app's writes
        if kind == "websocket.http.response.start":  # the upgrade refused with an HTTP response
            self.refused_status = message["status"]
            self.refused_headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])
            }
        elif kind == "websocket.http.response.body":
            self.refused_body = bytes(message.get("body", b""))
            if not message.get("more_body", False):
                self.close_code = 1006  # no WebSocket: the browser sees the connection fail
        elif kind == "websocket.accept":
            self.accepted = True
            self.accept_headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])
            }
        elif kind == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason") or ""
        await self._from_app.put(dict(message))

    async def _run_app(self) -> None:
        await self.app(self.scope, self._receive, self._send)

    # -- the test's side -----------------------------------------------------------------

    async def __aenter__(self) -> LiveSocket:
        self._task = asyncio.get_running_loop().create_task(self._run_app())
        await self._to_app.put({"type": "websocket.connect"})
        message = await self._next("the accept or close of the handshake")
        if message["type"] == "websocket.http.response.start":
            message = await self._next("the body of the refusal")
        if message["type"] not in ("websocket.accept", "websocket.close", "websocket.http.response.body"):
            raise AssertionError(f"expected websocket.accept or websocket.close first, got {message!r}")
        if self.accepted and self.client is not None:
            self.client.take_cookies(self.accept_headers.get("set-cookie"), self.scope["path"])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _next(self, what: str, timeout: float = TIMEOUT) -> Message:
        if self._from_app.empty() and self._task is not None and self._task.done():
            self._task.result()  # the app crashed: raise its exception
            raise AssertionError(f"the app returned while the test waited for {what}")
        getter = asyncio.ensure_future(self._from_app.get())
        waiting: set[asyncio.Future[Any]] = {getter}
        if self._task is not None:
            waiting.add(self._task)
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        if self._task is not None and self._task in done:
            self._task.result()
            raise AssertionError(f"the app returned while the test waited for {what}")
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    async def receive(self, timeout: float = TIMEOUT) -> Message:
        """The next raw ASGI message the app sent."""
        return await self._next("a message", timeout)

    async def receive_text(self, timeout: float = TIMEOUT) -> str:
        message = await self._next("a text frame", timeout)
        if message["type"] == "websocket.close":
            raise WebSocketClosed(message.get("code", 1000), message.get("reason") or "")
        assert message["type"] == "websocket.send", message
        text = message.get("text")
        assert text is not None, f"expected a text frame, got {message!r}"
        return str(text)

    async def receive_json(self, timeout: float = TIMEOUT) -> Any:
        """The next frame, decoded; a ``{"tree": ...}`` frame is applied to ``view``."""
        payload = json.loads(await self.receive_text(timeout))
        if isinstance(payload, dict) and isinstance(payload.get("tree"), dict):
            self.view.apply(payload["tree"])
        return payload

    async def receive_close(self, timeout: float = TIMEOUT) -> int:
        """Wait until the app closes the socket (skipping frames); the close code."""
        while True:
            message = await self._next("the close", timeout)
            if message["type"] == "websocket.close":
                return int(message.get("code", 1000))

    async def expect_nothing(self, wait: float = 0.05) -> None:
        """Fail if the app sends anything within ``wait`` seconds."""
        await asyncio.sleep(wait)
        assert self._from_app.empty(), f"unexpected message: {self._from_app.get_nowait()!r}"

    def stop_reading(self) -> None:
        """Behave as a client that stopped reading: the app's writes wait (as they would on
        a full socket) until :meth:`resume_reading`."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def send_text(self, text: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def send_json(self, payload: Any) -> None:
        await self.send_text(json.dumps(payload))

    async def action(self, action: str, data: Mapping[str, Any] | None = None, **extra: Any) -> Any:
        """Send ``{"action": action, "data": data}`` and return the next frame."""
        message: dict[str, Any] = {"action": action, **extra}
        if data is not None:
            message["data"] = dict(data)
        await self.send_json(message)
        return await self.receive_json()

    async def send(self, action: str, data: Mapping[str, Any] | None = None, **extra: Any) -> Any:
        """Send an action by name; the frame that answers it (see :meth:`send_json_and_receive`)."""
        message: dict[str, Any] = {"action": action, **extra}
        if data is not None:
            message["data"] = dict(data)
        return await self.send_json_and_receive(message)

    async def click(self, selector: str) -> Any:
        """Click the element ``selector`` finds in the page shown now, as the official client
        would (an ``lvt-on:click`` element, a named button, a form's submit button); the
        frame that answers it."""
        return await self.send_json_and_receive(click_message(self.html(), selector))

    async def submit(self, selector: str, values: Mapping[str, Any] | None = None, *, button: str | None = None) -> Any:
        """Fill in ``values`` (field name -> value) and submit the form ``selector`` finds, with
        its ``button`` (a selector within the form; by default the first submit button, as
        pressing Enter does); the frame that answers it."""
        return await self.send_json_and_receive(submit_message(self.html(), selector, values or {}, button))

    async def send_json_and_receive(self, message: Mapping[str, Any]) -> Any:
        """Send ``message`` and return the frame that answers it (the next with ``meta``;
        frames before it, such as range operations sent apart, are applied too)."""
        await self.send_json(message)
        while True:
            frame = await self.receive_json()
            if isinstance(frame, dict) and "meta" in frame:
                return frame

    def html(self) -> str:
        """The HTML the client shows for the frames received so far."""
        return self.view.html()

    # -- uploads (protocol 1.9) -------------------------------------------------------------

    async def sync(self) -> list[Any]:
        """Every frame the app sends before it answers a ``__ping__`` sent now: what it sent
        for the messages before (they are handled in order)."""
        await self.send_json({"action": PING})
        frames: list[Any] = []
        while True:
            frame = await self.receive_json()
            if frame == {"pong": True}:
                return frames
            frames.append(frame)

    async def start_upload(self, name: str, files: Iterable[File]) -> UploadResult:
        """Send ``upload_start`` for ``files``, as the official client does on selection."""
        result = UploadResult()
        described = [{"name": n, "type": t or "application/octet-stream", "size": len(c)} for n, c, t in files]
        await self.send_json({"action": UPLOAD_START, "upload_name": name, "files": described})
        while True:
            frame = await self.receive_json()
            result.frames.append(frame)
            if isinstance(frame, dict) and frame.get("upload_name") == name and "entries" in frame:
                result.start = frame
                result.frames += await self.sync()
                return result

    async def send_chunks(
        self, entry_id: str, content: bytes, *, chunk_size: int = CHUNK_SIZE, stop_after: int | None = None
    ) -> None:
        """Send ``content`` as the official client does: base64 chunks, one after the other
        without waiting (the first ``stop_after`` bytes' chunks only, when given)."""
        end = len(content) if stop_after is None else min(stop_after, len(content))
        for offset in range(0, end, chunk_size):
            piece = content[offset : min(offset + chunk_size, end)]
            await self.send_json(
                {
                    "action": UPLOAD_CHUNK,
                    "entry_id": entry_id,
                    "chunk_base64": base64.b64encode(piece).decode(),
                    "offset": offset,
                    "total": len(content),
                }
            )

    async def upload(self, name: str, files: Iterable[File], *, chunk_size: int = CHUNK_SIZE) -> UploadResult:
        """Upload ``files`` as the official client does over a WebSocket: ``upload_start``,
        then for each valid volume entry its chunks and ``upload_complete``; returns after
        every frame the app sent in answer has been received (and applied)."""
        files = list(files)
        result = await self.start_upload(name, files)
        contents = {n: c for n, c, _ in files}
        for entry in result.entries:
            if not entry["valid"] or entry.get("mode", "volume") != "volume":
                continue
            await self.send_chunks(entry["entry_id"], contents[entry["client_name"]], chunk_size=chunk_size)
            await self.send_json({"action": UPLOAD_COMPLETE, "upload_name": name, "entry_ids": [entry["entry_id"]]})
        result.frames += await self.sync()
        for frame in result.frames:
            if isinstance(frame, dict) and frame.get("upload_name") == name and "success" in frame:
                result.complete = frame
        return result

    async def cancel_upload(self, entry_id: str) -> list[Any]:
        """Send ``cancel_upload``; the frames that answer it."""
        await self.send_json({"action": CANCEL_UPLOAD, "entry_id": entry_id})
        return await self.sync()

    async def close(self, code: int = 1000) -> None:
        """Disconnect (if the app has not closed already) and wait for the app to end."""
        if self._task is None:
            return
        if not self.disconnected:
            self.disconnected = True
            await self._to_app.put({"type": "websocket.disconnect", "code": code})
        try:
            await asyncio.wait_for(asyncio.shield(self._task), TIMEOUT)
        except TimeoutError:
            self._task.cancel()
            raise AssertionError("the app did not finish after the WebSocket closed") from None

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()


class LiveClient:
    """HTTP and WebSocket access to one ASGI app, sharing one cookie jar."""

    def __init__(self, app: ASGIApp, base_url: str = "http://testserver", *, shutdown: bool = True) -> None:
        self.app = app
        self.base_url = base_url
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=base_url,
            follow_redirects=False,
        )
        self._shutdown = shutdown
        self._sockets: list[LiveSocket] = []

    async def __aenter__(self) -> LiveClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for ws in self._sockets:
            if not ws.disconnected:
                await ws.close()
        await self.http.aclose()
        shutdown = getattr(self.app, "shutdown", None)
        if self._shutdown and shutdown is not None:
            await shutdown()

    # -- HTTP --------------------------------------------------------------------------------

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, url, **kwargs)

    async def get(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        return await self.http.get(url, **kwargs)

    async def head(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        return await self.http.head(url, **kwargs)

    async def post(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        return await self.http.post(url, **kwargs)

    async def get_json(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        """The initial state as the client's HTTP mode asks for it."""
        return await self.http.get(url, headers={"accept": "application/json"}, **kwargs)

    async def post_files(
        self,
        url: str = "/",
        files: Mapping[str, Iterable[File]] | None = None,
        fields: Mapping[str, str] | None = None,
        *,
        upload: bool = False,
        json_reply: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST a multipart form: ``fields`` then ``files`` (field name -> files). With
        ``upload``, as the client's upload POST (``X-Lvt-Upload: proxied``); with
        ``json_reply`` asking for JSON as the client does, else as a browser without
        JavaScript."""
        parts = [(name, (n, c, t)) for name, items in (files or {}).items() for n, c, t in items]
        extra = {"accept": "application/json"} if json_reply else {"accept": "text/html"}
        if upload:
            extra[UPLOAD_HEADER] = "proxied"
        return await self.http.post(
            url, data=dict(fields or {}), files=parts or None, headers={**extra, **(headers or {})}
        )

    async def post_action(
        self, action: str, data: Mapping[str, Any] | None = None, url: str = "/", **kwargs: Any
    ) -> httpx.Response:
        """POST the client's JSON envelope, as its HTTP mode does."""
        message: dict[str, Any] = {"action": action}
        if data is not None:
            message["data"] = dict(data)
        headers = {"accept": "application/json", **kwargs.pop("headers", {})}
        return await self.http.post(url, json=message, headers=headers, **kwargs)

    @property
    def group_id(self) -> str:
        """The id of this browser's session group (its ``livetemplate-id`` cookie, signature
        left out)."""
        return self.http.cookies[SESSION_COOKIE].partition(".")[0]

    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.http.cookies.jar)

    def take_cookies(self, set_cookie: str | None, path: str) -> None:
        """Store a ``Set-Cookie`` value as if a response to ``path`` had carried it."""
        if not set_cookie:
            return
        request = httpx.Request("GET", self.base_url.rstrip("/") + path)
        self.http.cookies.extract_cookies(httpx.Response(200, headers={"set-cookie": set_cookie}, request=request))

    # -- WebSocket ---------------------------------------------------------------------------

    def connect(self, url: str = "/", **kwargs: Any) -> _Connect:
        """A WebSocket to ``url`` whose first tree has been received; use with ``async with``."""
        return _Connect(self.websocket(url, **kwargs))

    def websocket(
        self,
        url: str = "/",
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        cookies: bool = True,
        root_path: str = "",
    ) -> LiveSocket:
        """A WebSocket to ``url`` (path and query) carrying the jar's cookies; use it with
        ``async with``."""
        parts = urlsplit(url)
        base = urlsplit(self.base_url)
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        names = {name.lower() for name, _ in items}
        raw = [(b"host", base.netloc.encode())] if "host" not in names else []
        raw += [
            (b"connection", b"Upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        if cookies and self.http.cookies.jar and "cookie" not in names:
            raw.append((b"cookie", self.cookie_header().encode("latin-1")))
        raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items]
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if base.scheme == "https" else "ws",
            "server": (base.hostname or "testserver", base.port or (443 if base.scheme == "https" else 80)),
            "client": ("127.0.0.1", 50000),
            "root_path": root_path,
            "path": parts.path or "/",
            "raw_path": (parts.path or "/").encode(),
            "query_string": parts.query.encode(),
            "headers": raw,
            "subprotocols": [],
            "state": {},
            "extensions": {"websocket.http.response": {}},
        }
        ws = LiveSocket(self.app, scope, self)
        self._sockets = [*(s for s in self._sockets if not s.disconnected), ws]  # closed ones are let go
        return ws


async def settle(rounds: int = 5) -> None:
    """Let background tasks the app started run."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)


class _Connect:
    def __init__(self, socket: LiveSocket) -> None:
        self.socket = socket

    async def __aenter__(self) -> LiveSocket:
        await self.socket.__aenter__()
        if not self.socket.accepted:
            raise WebSocketClosed(self.socket.close_code, self.socket.close_reason)
        await self.socket.receive_json()
        return self.socket

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.socket.close()
