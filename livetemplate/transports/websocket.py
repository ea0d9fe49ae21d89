"""The WebSocket transport: the handshake, one live view per connection, its messages read
in order and its frames written through its outbox."""

from __future__ import annotations

import logging

import msgspec

from ..outbox import Outbox
from ..rendering import error_frame
from ..request import Request, group_cookie, origin_allowed
from ..runtime import Runtime
from ..session import LiveView, Phase
from ..types import Message, Receive, Scope, Send
from ..wire import Incoming

__all__ = ["WebSocketConnection"]

logger = logging.getLogger(__name__)

_decode = msgspec.json.Decoder(Incoming).decode

#: Close codes (RFC 6455): policy violation (also refusing the handshake), message too big.
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


class WebSocketConnection:
    """One WebSocket of a mounted app."""

    def __init__(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        self.runtime = runtime
        self.request = Request(scope, runtime.options.trust_forwarded_headers)
        self._receive = receive
        self._send = send
        self.outbox = Outbox(self._write)
        self.view: LiveView | None = None
        self.accepted = False
        self.closed = False

    async def run(self) -> None:
        """Serve the connection until the client goes away or the app closes it."""
        rt = self.runtime
        message = await self._receive()
        if message["type"] != "websocket.connect":
            return
        options = rt.options
        if (
            options.websocket_disabled
            or rt.closing
            or not origin_allowed(self.request, options.allowed_origins, dev_mode=options.dev_mode)
        ):
            # closing before accepting answers the upgrade with 403
            await self._send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        group_id, set_cookie = group_cookie(self.request, options.cookie_max_age)
        headers = [(b"set-cookie", set_cookie.encode("latin-1"))] if set_cookie else []
        await self._send({"type": "websocket.accept", "headers": headers})
        self.accepted = True
        rt.connections.add(self)
        group = await rt.groups.get(group_id)
        view = self.view = LiveView(
            rt.runner,
            rt.pipeline,
            group,
            query=self.request.query,
            secure=self.request.secure,
            capabilities=rt.capabilities,
            outbox=self.outbox,
        )
        await rt.hub.attach(view)
        try:
            reply = await view.open()
            await self.outbox.send(reply.frames)
            await rt.hub.settle(view, reply.outcome)
            while not self.closed:
                message = await self._receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    await self._on_message(view, message)
                except Exception:
                    # a bug must not take the connection down: report it and go on
                    logger.exception("handling a message failed")
                    await self.outbox.send([error_frame("the server failed to handle the message")])
        finally:
            self.closed = True
            rt.connections.discard(self)
            outcome = await view.close()
            await rt.hub.detach(view)
            if outcome is not None:
                await rt.hub.settle(None, outcome, group_id=group.id)
            self.outbox.close()

    async def _on_message(self, view: LiveView, message: Message) -> None:
        text = message.get("text")
        limit = self.runtime.options.max_message_size
        if text is None:
            if len(message.get("bytes") or b"") > limit:
                await self.close(MESSAGE_TOO_BIG, "message too big")
            else:
                await self.outbox.send([error_frame("binary frames are not supported; send JSON text frames")])
            return
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            await self.close(MESSAGE_TOO_BIG, "message too big")
            return
        try:
            incoming = _decode(text)
        except msgspec.ValidationError as exc:
            await self.outbox.send([error_frame(f"malformed message: {exc}")])
            return
        except msgspec.DecodeError as exc:
            await self.outbox.send([error_frame(f"malformed message: not JSON ({exc})")])
            return
        reply = await view.handle(incoming)
        await self.outbox.send(reply.frames)
        await self.runtime.hub.settle(view, reply.outcome)

    async def _write(self, frame: bytes) -> None:
        await self._send({"type": "websocket.send", "text": frame.decode()})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (the app shutting down, a policy violation)."""
        if self.closed:
            return
        self.closed = True
        if self.view is not None and self.view.phase is Phase.OPEN:
            self.view.drain()
        await self.outbox.flush(timeout=1.0)
        self.outbox.close()
        if self.accepted:
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except Exception:  # already gone
                logger.debug("closing an already closed WebSocket", exc_info=True)
