"""The WebSocket transport: admission (origin, limits), one live view per connection, its
messages read in order, rate-limited, and its frames written through its outbox."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ..broadcast import BroadcastUnavailable
from ..frames import encode_frame
from ..ops.logs import get_logger
from ..outbox import DirectWrite, Outbox
from ..primitives import Event
from ..rendering import error_frame
from ..request import Request, origin_allowed
from ..runner import Outcome
from ..runtime import Runtime
from ..session import LiveView, Phase, Reply
from ..sessions import StoreUnavailable
from ..types import Message, Receive, Scope, Send
from ..wire import PING, RATE_LIMIT_ERROR, MalformedMessage, decode_incoming, meta

__all__ = ["PARK", "WRITE_TEXT", "ParkingServer", "Resumable", "Server", "WebSocketConnection"]

#: The scope extension of a server that writes text frames directly
#: (:mod:`livetemplate.transports.uvicorn_protocol`): ``{"writer": writer}``, a
#: :class:`~livetemplate.outbox.DirectWrite`.
WRITE_TEXT = "livetemplate.write_text"
#: The scope extension of a server that lets an idle connection's task end (the same
#: protocol): ``{"server": server}``, a :class:`ParkingServer`.
PARK = "livetemplate.park"

logger = get_logger(__name__)

T = TypeVar("T")

#: Close codes (RFC 6455): policy violation (also refusing the handshake), message too big,
#: service restart (the server is shutting down), try again later (a backend is down).
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013
#: Seconds a client refused for a limit is asked to wait.
RETRY_AFTER = 5


class TokenBucket:
    """``rate`` messages per second on average, ``burst`` at once."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def give_back(self) -> None:
        """Undo the last :meth:`take` (the message was not handled after all)."""
        self.tokens = min(self.burst, self.tokens + 1)


class Server(Protocol):
    """The server's side of a connection: its ASGI ``receive`` and ``send``."""

    def receive(self) -> Awaitable[Message]: ...

    def send(self, message: Message) -> Awaitable[None]: ...


class Resumable(Protocol):
    """An app that parked its connection: the server offers it the next message with
    ``take(message)``, a plain call that handles it if that waits for nothing (True), and
    otherwise calls ``resume()`` in a new task, which reads it."""

    def take(self, message: Message) -> bool: ...

    def resume(self) -> Awaitable[None]: ...


class ParkingServer(Server, Protocol):
    """A server that lets an idle connection's task end. Its ``receive`` and ``send`` are
    those it called the app with; ``park(app)`` returns True when the server will offer the
    next message (a disconnect included) to ``app.take()`` and, unless it takes it, run
    ``app.resume()`` in a new task, and False when a message waits already."""

    def park(self, app: Resumable) -> bool: ...

    def wake(self, app: Resumable) -> None:
        """Run the parked ``app``'s ``resume()`` in a new task now, with no message: a
        message it took has work left that waits."""


def _isolated(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a copy of the current context, as a task would run it: what a
    user's action sets in a context variable stays in its own copy."""
    return contextvars.copy_context().run(call, *args)


class _Asgi:
    """The ``receive`` and ``send`` a server called the app with."""

    __slots__ = ("receive", "send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send


class WebSocketConnection:
    """One WebSocket of a mounted app."""

    #: Set once :meth:`close` is done, for the connection's task (an instance's own from the
    #: first close: an open connection holds none).
    _closing: Event | None = None
    #: What waits of a message taken at once (see :meth:`take`), until :meth:`resume` runs it
    #: (an instance's own meanwhile: an idle connection holds none).
    _rest: Awaitable[None] | None = None

    def __init__(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        options = runtime.options
        self.runtime = runtime
        self._scope = scope  # read while opening, then let go (see run)
        extensions = scope.get("extensions") or {}
        #: whether the server can refuse the upgrade with an HTTP response (else a close)
        self._answers_http = "websocket.http.response" in extensions
        direct = extensions.get(WRITE_TEXT)  # offered by the project's uvicorn protocol
        parking = extensions.get(PARK)  # the same
        # PERF: a parking server is held as itself, not by the bound methods it was called
        # with: an idle connection holds no method object (nor does its outbox).
        self._parking: ParkingServer | None = parking["server"] if parking else None
        self._server: Server = self._parking or _Asgi(receive, send)
        writer: DirectWrite | None = direct["writer"] if direct else None
        self.outbox = Outbox(self, direct=writer, budget=options.send_budget, stuck_after=options.slow_client_timeout)
        limit = options.message_rate_limit
        self.bucket = TokenBucket(*limit) if limit is not None else None
        self.view: LiveView | None = None
        self._handling = False  # a message is being handled (until its reply is queued)
        self._handled: Event | None = None  # set when it is, for a drain waiting on it
        self.group_id = ""
        self.accepted = False
        self.closed = False

    async def run(self) -> None:
        """Serve the connection until the client goes away or the app closes it."""
        rt = self.runtime
        if (await self._server.receive())["type"] != "websocket.connect":
            return
        request = Request(self._scope, rt.options.trust_forwarded_headers)
        refusal = self._refusal(request)
        if refusal is not None:
            await self._refuse(*refusal)
            return
        group_id, set_cookie = rt.ids.of(request, rt.options.cookie_max_age)
        query, secure = request.query, request.secure
        del request, self._scope  # an open connection keeps none of its request's headers and cookies
        if not rt.admit(self, group_id):
            await self._refuse("max_connections_per_group", 503, "Too many tabs of this session are open.")
            return
        self.group_id = group_id
        parked = False
        try:
            headers = [(b"set-cookie", set_cookie.encode("latin-1"))] if set_cookie else []
            await self._server.send({"type": "websocket.accept", "headers": headers})
            del headers, set_cookie  # this frame lasts as long as the connection: none of the handshake in it
            self.accepted = True
            parked = await self._serve(group_id, query, secure)
        finally:
            if not parked:
                self._release()

    def _release(self) -> None:
        """The connection is over: it no longer counts, and its outbox takes nothing more."""
        self.closed = True
        self.runtime.release(self, self.group_id)
        self.outbox.close()

    def _refusal(self, request: Request) -> tuple[str, int, str] | None:
        """Why the upgrade is refused before anything else happens, if it is."""
        rt, options = self.runtime, self.runtime.options
        if rt.closing:
            return "shutting_down", 503, "The server is shutting down."
        if options.websocket_disabled:
            return "websocket_disabled", 403, "WebSockets are disabled; use HTTP."
        if not origin_allowed(request, options.allowed_origins, dev_mode=options.dev_mode):
            return "origin", 403, "Cross-origin WebSocket refused."
        if options.max_connections is not None and len(rt.connections) >= options.max_connections:
            return "max_connections", 503, "Too many connections; try again shortly."
        return None

    async def _refuse(self, reason: str, status: int, message: str) -> None:
        """Answer the upgrade with an HTTP error (where the server can send one), else close."""
        self.runtime.metrics.connections_rejected.labels(reason).inc()
        if self._answers_http:
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            if status == 503:
                headers.append((b"retry-after", str(RETRY_AFTER).encode()))
            await self._server.send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await self._server.send({"type": "websocket.http.response.body", "body": message.encode()})
        else:
            await self._server.send({"type": "websocket.close", "code": POLICY_VIOLATION})  # a 403 to the client

    async def _serve(self, group_id: str, query: dict[str, str], secure: bool) -> bool:
        """Open the tab and handle its messages; True when the connection parked (it goes on
        in :meth:`resume`), False when it is over and cleaned up."""
        rt = self.runtime
        try:
            group = await rt.groups.get(group_id)
        except StoreUnavailable as exc:
            logger.error("session store unavailable: %s", exc)
            rt.metrics.session_store_errors.labels("get").inc()
            await self.outbox.send([error_frame("Your session cannot be read right now; reload in a moment.")])
            await self.close(TRY_AGAIN_LATER, "session store unavailable")
            return False
        view = self.view = LiveView(
            rt.runner,
            rt.pipeline,
            group,
            query=query,
            csrf=rt.ids.csrf_token(group_id),
            secure=secure,
            capabilities=rt.capabilities,
            outbox=self.outbox,
            uploads=rt.uploads.tab(group_id) if rt.uploads is not None else None,
        )
        parked = False
        try:
            await rt.hub.attach(view)
            if self.closed:  # the app closed it (a drain) while it was being set up: mount nothing
                return False
            await self._open(view)
            parked = await self._messages(view)
            return parked
        except BroadcastUnavailable as exc:
            await self._no_live_updates(exc)
            return False
        finally:
            if not parked:
                await self._leave(view)

    async def _messages(self, view: LiveView) -> bool:
        """Handle the client's messages in order until it goes (False). With a server that
        parks idle connections, return True instead once none waits: the server runs
        :meth:`resume` at the next, so that an idle connection holds no task."""
        while not self.closed:
            if self._parking is not None and self._parking.park(self):
                return True
            message = await self._server.receive()
            if message["type"] == "websocket.disconnect":
                break
            await self._handle(self._on_message(view, message))
            del message  # an idle connection keeps none of it
        return False

    def take(self, message: Message) -> bool:
        """The parked connection's next message, handled as plain calls when that waits for
        nothing: a client's action whose run does not wait (see
        :meth:`LiveView.handle_at_once`), with its reply written at once. What is left of it
        that waits (subscribing the run's topics, telling other instances of its commit) goes
        on in :meth:`resume`, and so does the write of a reply the socket did not take at
        once (nothing more is read until it did). False, having changed nothing, for any
        other message, and while the last reply is still going out: the
        server queues it and runs :meth:`resume`, which reads it. PERF: no task, no ASGI
        receive and none of the coroutines of :meth:`_on_message`: a quarter of an action's
        instructions (``python -m benchmarks.action``)."""
        view, text = self.view, message.get("text")
        if view is None or self.closed or text is None or not self.outbox.idle:
            return False  # the last reply is still going out: _reply waits for it
        if len(text) * 4 > self.runtime.options.max_message_size:
            return False  # one that may be too big is measured by _on_message
        try:
            incoming = decode_incoming(text)
        except MalformedMessage:
            return False
        bucket = self.bucket
        if bucket is not None and not bucket.take():
            return False  # refused by _on_message (a bucket that refuses takes no token)
        hub = self.runtime.hub
        try:
            answer = _isolated(view.handle_at_once, incoming, hub.sync_topics, hub.topics_synced)
            if answer is None:
                if bucket is not None:
                    bucket.give_back()
                return False
            if isinstance(answer, Reply):
                self.outbox.put(answer.frames)
                settled = hub.settle_at_once(view, answer.outcome)
                if settled and self.outbox.idle:
                    return True
                self._rest = self._replied(view, answer.outcome, settled)
            else:
                self._rest = self._answered(view, answer)
        except Exception:  # a bug must not take the connection down: report it and go on
            logger.exception("handling a message failed")
            self.outbox.put([error_frame("the server failed to handle the message")])
            return True
        assert self._parking is not None
        self._parking.wake(self)
        return True

    async def _answered(self, view: LiveView, answer: Awaitable[Reply]) -> None:
        await self._reply(view, await answer)

    async def _replied(self, view: LiveView, outcome: Outcome | None, settled: bool) -> None:
        """What waits of a message taken at once whose reply is in the outbox: what its run
        asks (unless that was carried out), then the reply's write. As in :meth:`_reply`,
        nothing more is read from a client until it took the reply to its last message."""
        if not settled:
            await self.runtime.hub.settle(view, outcome)
        await self.outbox.flush()

    async def resume(self) -> None:
        """The parked connection has a message, or work left of one it took: carry on."""
        view = self.view
        assert view is not None
        parked = False
        try:
            rest = self._rest
            if rest is not None:
                del self._rest
                await self._handle(rest)
            parked = await self._messages(view)
        finally:
            if not parked:
                try:
                    await self._leave(view)
                finally:
                    self._release()

    async def _leave(self, view: LiveView) -> None:
        """The tab is closed: its last change is carried out, and it leaves the hub. A close
        under way in another task (a drain's) is waited for: the server closes the socket
        once the connection's task ends, which must not come before the close frame."""
        if self._closing is not None:
            await self._closing.wait()
        outcome = await view.close()
        await self.runtime.hub.detach(view)
        if outcome is not None:
            await self.runtime.hub.settle(None, outcome, group_id=view.group.id)

    # What these two leave in their frames (the first reply, the last reply) goes with them:
    # an idle connection keeps none of it.

    async def _open(self, view: LiveView) -> None:
        reply = await view.open(self.runtime.hub.sync_topics)  # subscribed before the client sees its page
        await self._reply(view, reply)

    async def _reply(self, view: LiveView, reply: Reply) -> None:
        """Send the frames of a run of the client's, then carry out what it asks. Nothing is
        awaited between the run and the send: a push waiting on the view's lock must not get
        its frames out first. The tab is given up (``BroadcastUnavailable``) once that is done
        when its topics could not be subscribed."""
        await self.outbox.send(reply.frames)
        await self.runtime.hub.settle(view, reply.outcome)
        if reply.unsubscribed is not None:
            raise reply.unsubscribed

    async def _handle(self, handling: Awaitable[None]) -> None:
        """Handle a message of the client (await ``handling``)."""
        self._handling = True
        try:
            await handling
        except BroadcastUnavailable as exc:
            await self._no_live_updates(exc)
        except Exception:
            # a bug must not take the connection down: report it and go on
            logger.exception("handling a message failed")
            await self.outbox.send([error_frame("the server failed to handle the message")])
        finally:
            self._handling = False
            if self._handled is not None:
                self._handled.set()
                self._handled = None

    async def _no_live_updates(self, exc: BroadcastUnavailable) -> None:
        """The tab's channels cannot be subscribed: its page would go stale unseen, so the
        client is told and closed, to come back later."""
        logger.error("broadcaster unavailable: %s", exc)
        await self.outbox.send([error_frame("Live updates are unavailable right now; reload in a moment.")])
        await self.close(TRY_AGAIN_LATER, "broadcaster unavailable")

    async def _on_message(self, view: LiveView, message: Message) -> None:
        text = message.get("text")
        limit = self.runtime.options.max_message_size
        if text is None:
            if len(message.get("bytes") or b"") > limit:
                await self.close(MESSAGE_TOO_BIG, "message too big")
            else:
                await self.outbox.send([error_frame("binary frames are not supported; send JSON text frames")])
            return
        oversized = len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)
        uploads = view.uploads
        if oversized and (uploads is None or len(text) > uploads.frame_limit):
            await self.close(MESSAGE_TOO_BIG, "message too big")
            return
        try:
            incoming = decode_incoming(text)
        except MalformedMessage as exc:
            if oversized:
                await self.close(MESSAGE_TOO_BIG, "message too big")
            else:
                await self.outbox.send([error_frame(str(exc))])
            return
        chunk = view.expects_chunk(incoming)  # a chunk of an upload under way: as big as a chunk, not metered
        if oversized and not chunk:
            await self.close(MESSAGE_TOO_BIG, "message too big")
            return
        if incoming.action != PING and not chunk and self.bucket is not None and not self.bucket.take():
            self.runtime.metrics.errors.labels("rate_limit").inc()
            refused = meta(False, {RATE_LIMIT_ERROR: "Too many messages; slow down."}, action=incoming.action)
            await self.outbox.send([encode_frame({}, refused)])
            return
        reply = await view.handle(incoming, self.runtime.hub.sync_topics)  # and before it has the reply
        await self._reply(view, reply)

    async def write(self, frame: bytes) -> None:
        """Send ``frame`` through ASGI, waiting for the socket (the outbox's writer)."""
        try:
            await self._server.send({"type": "websocket.send", "text": frame.decode()})
        except Exception:
            self.runtime.metrics.websocket_write_errors.inc()
            raise

    def unsubscribed(self, exc: BroadcastUnavailable) -> None:
        self.runtime.hub.spawn(self._no_live_updates(exc))

    def stuck(self) -> None:
        """The client has not read for ``slow_client_timeout``: give it up."""
        logger.warning("closing a WebSocket whose client stopped reading (%d bytes waiting)", self.outbox.pending_bytes)
        self.runtime.metrics.websocket_slow_client_closes.inc()
        self.runtime.hub.spawn(self.close(POLICY_VIOLATION, "client too slow", flush=0))

    async def drain(self) -> None:
        """Take no new work; wait until the message being handled, if any, is answered."""
        view = self.view
        if view is not None and view.phase is Phase.OPEN:
            view.drain()
        if self._handling:
            if self._handled is None:
                self._handled = Event()
            await self._handled.wait()

    async def close(self, code: int = 1000, reason: str = "", *, flush: float = 1.0) -> None:
        """Close the connection (the app shutting down, a policy violation); frames already
        queued get up to ``flush`` seconds to go out."""
        if self.closed:
            return
        self.closed = True
        self._closing = closing = Event()
        try:
            if self.view is not None and self.view.phase is Phase.OPEN:
                self.view.drain()
            await self.outbox.flush(timeout=flush)
            self.outbox.close()
            if self.accepted:
                try:  # a client that stopped reading may not take even the close frame
                    await asyncio.wait_for(
                        self._server.send({"type": "websocket.close", "code": code, "reason": reason}), 1.0
                    )
                except Exception:  # already gone
                    logger.debug("closing an already closed WebSocket", exc_info=True)
        finally:
            closing.set()
