"""One WebSocket connection: a tab of a session group, with its own state (the group's
persisted fields, its own other fields), its own renderer (what its client holds), its
flash messages and topic subscriptions. Its messages are handled strictly in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from .app import GENERAL, Exchange, Group, LiveApp
from .errors import TemplateError
from .http import Request, group_cookie, origin_allowed
from .template import Renderer, encode_frame
from .types import Message, Receive, Scope, Send
from .wire import META_ACTION, META_CAPABILITIES, META_ERRORS, META_SUCCESS

__all__ = ["Connection"]

logger = logging.getLogger("livetemplate.connection")

PING = "__ping__"
NAVIGATE = "__navigate__"
PONG = b'{"pong":true}'
UPLOAD_ACTIONS = frozenset({"upload_start", "upload_chunk", "upload_complete", "cancel_upload"})


class Incoming(msgspec.Struct):
    """A client message: ``{"action": ..., "data": {...}, "submitter": ...}``."""

    action: str
    data: dict[str, Any] | None = None
    submitter: str | None = None


_decode = msgspec.json.Decoder(Incoming).decode


class Connection(Exchange):
    is_http = False

    def __init__(self, app: LiveApp, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__()
        self.app = app
        self.scope = scope
        self._receive = receive
        self._send = send
        self.request = Request(scope, app.options.trust_forwarded_headers)
        self.secure = self.request.secure
        self.query = self.request.query
        self.group: Group = None  # type: ignore[assignment]
        self.state: Any = None
        self.renderer: Renderer = app.template.renderer()
        self.topics: set[str] = set()
        self.lock = asyncio.Lock()
        self.closed = False
        self.accepted = False

    async def run(self) -> None:
        app = self.app
        message = await self._receive()
        if message["type"] != "websocket.connect":
            return
        if app.options.websocket_disabled or app.closing or not origin_allowed(self.request, app.options):
            # closing before accepting answers the upgrade with 403
            await self._send({"type": "websocket.close", "code": 1008})
            return
        group_id, set_cookie = group_cookie(self.request, app.options)
        headers = [(b"set-cookie", set_cookie.encode("latin-1"))] if set_cookie else []
        await self._send({"type": "websocket.accept", "headers": headers})
        self.accepted = True
        group = self.group = await app.group(group_id)
        app.attach(self, group)
        try:
            await self._start()
            while not self.closed:
                message = await self._receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    await self._on_message(message)
                except Exception:
                    # a bug must not take the connection down: report it and go on
                    logger.exception("handling a message failed")
                    await self._reject("the server failed to handle the message")
        finally:
            self.closed = True
            await self._finish()

    async def _start(self) -> None:
        """Mount (and on_connect) the connection's state and push the complete tree."""
        async with self.lock:
            state = self.app.new_state(self.group)
            outcome = await self.app.run(self.group, self, state, hooks=("mount", "on_connect"), query=self.query)
            self.state = outcome.state if outcome.success else state
            meta: dict[str, Any] = {META_SUCCESS: True, META_ERRORS: {}}
            if self.app.capabilities:
                meta[META_CAPABILITIES] = self.app.capabilities
            await self._forbidden(outcome.forbidden)
            await self._push(meta, errors=outcome.errors)

    async def _finish(self) -> None:
        app = self.app
        hook = app.actions.hook("on_disconnect")
        if hook is not None and self.state is not None:
            try:
                await app.run(self.group, self, self.state, hooks=("on_disconnect",), query=self.query)
            except Exception:  # pragma: no cover - run() reports its own failures
                logger.exception("on_disconnect failed")
        await app.detach(self, self.group)

    async def _on_message(self, message: Message) -> None:
        text = message.get("text")
        limit = self.app.options.max_message_size
        if text is None:
            if len(message.get("bytes") or b"") > limit:
                await self.close(1009, "message too big")
            else:
                await self._reject("binary frames are not supported; send JSON text frames")
            return
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            await self.close(1009, "message too big")
            return
        try:
            incoming = _decode(text)
        except msgspec.ValidationError as exc:
            await self._reject(f"malformed message: {exc}")
            return
        except msgspec.DecodeError as exc:
            await self._reject(f"malformed message: not JSON ({exc})")
            return
        if incoming.action == PING:
            await self._send_bytes(PONG)
            return
        if incoming.action in UPLOAD_ACTIONS:
            await self._reject("uploads are not supported by this server yet", incoming.action)
            return
        self.submitter = incoming.submitter
        data = incoming.data or {}
        async with self.lock:
            if incoming.action == NAVIGATE:
                query = {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
                outcome = await self.app.run(self.group, self, self.state, hooks=("mount",), query=query)
                if outcome.success:
                    self.query = query
                action = None
            else:
                outcome = await self.app.run(
                    self.group, self, self.state, action=incoming.action, data=data, query=self.query
                )
                action = incoming.action
            if outcome.success:
                self.state = outcome.state
            meta: dict[str, Any] = {META_SUCCESS: outcome.success, META_ERRORS: outcome.errors}
            if action is not None:
                meta[META_ACTION] = action
            await self._forbidden(outcome.forbidden)
            await self._push(meta, errors=outcome.errors)

    async def dispatch(self, action: str, data: dict[str, Any], *, commit_persisted: bool) -> bool:
        """Run a pushed action (a server push, a topic message) on this connection's
        state and send the update. Returns whether it succeeded."""
        async with self.lock:
            if self.closed or self.state is None:
                return False
            outcome = await self.app.run(
                self.group,
                self,
                self.state,
                action=action,
                data=data,
                query=self.query,
                commit_persisted=commit_persisted,
            )
            if outcome.success:
                self.state = outcome.state
            await self._push({META_SUCCESS: outcome.success, META_ERRORS: outcome.errors}, errors=outcome.errors)
            return outcome.success

    async def refresh(self) -> None:
        """Take the group's committed persisted fields and send what changed."""
        async with self.lock:
            if self.closed or self.state is None or self.group.persisted is None:
                return
            self.state = self.app.spec.load(self.state, self.group.persisted)
            await self._push({META_SUCCESS: True, META_ERRORS: {}})

    async def _push(self, meta: dict[str, Any], *, errors: dict[str, str] | None = None) -> None:
        """Render the state for this connection and send the update."""
        helpers = self.app.helpers(self.group.id, errors or {}, self.flash)
        try:
            tree = self.renderer.render(self.state, {"lvt": helpers})
        except TemplateError as exc:
            logger.error("rendering failed: %s", exc)
            detail = str(exc) if self.app.options.dev_mode else "The page could not be rendered."
            meta = {META_SUCCESS: False, META_ERRORS: {GENERAL: detail}}
            self.renderer.reset()  # the client's view is unknown now: start over with a full tree
            tree = {}
        else:
            region = self.app.region
            if region is not None:
                tree = region.tree(tree) if "s" in tree else region.update(tree)
            ops, tree = split_range_ops(tree)
            if ops:
                await self._send_bytes(encode_frame(ops, None))
        await self._send_bytes(encode_frame(tree, meta))

    async def _reject(self, detail: str, action: str | None = None) -> None:
        meta: dict[str, Any] = {META_SUCCESS: False, META_ERRORS: {GENERAL: detail}}
        if action is not None:
            meta[META_ACTION] = action
        await self._send_bytes(encode_frame({}, meta))

    async def _forbidden(self, topics: list[str]) -> None:
        for topic in topics:
            envelope = msgspec.json.encode({"type": "error", "code": "topic_forbidden", "topic": topic})
            await self._send_bytes(envelope)

    async def _send_bytes(self, payload: bytes) -> None:
        if self.closed:
            return
        try:
            await self._send({"type": "websocket.send", "text": payload.decode()})
        except Exception:  # the client went away mid-send
            self.closed = True

    # -- Exchange ------------------------------------------------------------------------

    def subscribe(self, topic: str) -> None:
        if topic not in self.topics:
            self.topics.add(topic)
            self.app._background(self.app.subscribe(self, topic))

    def unsubscribe(self, topic: str) -> None:
        if topic in self.topics:
            self.topics.discard(topic)
            self.app._background(self.app.unsubscribe(self, topic))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        if self.accepted:
            with contextlib.suppress(Exception):  # already gone
                await self._send({"type": "websocket.close", "code": code, "reason": reason})


def split_range_ops(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split off the operations on top-level ranges when the same update also changes
    the element structure elsewhere, to send them in a frame of their own first.

    The client applies operations on a top-level keyed range straight to the DOM and
    leaves an empty placeholder for that range in the page it rebuilds; when the same
    update inserts or removes an element before the list, its morphdom pass cannot line
    up the siblings and replaces the live list with the placeholder (client 0.25.1).
    Apart, each update is applied correctly.
    """
    ops = {k: v for k, v in tree.items() if isinstance(v, list) and v and isinstance(v[0], list)}
    if not ops or len(ops) == len(tree):
        return {}, tree
    rest = {k: v for k, v in tree.items() if k not in ops}
    if not any(_restructures(v) for v in rest.values()):
        return {}, tree
    return ops, rest


def _restructures(value: Any) -> bool:
    """Whether a slot change may add or remove elements (new statics, a removed node,
    markup in a value)."""
    if isinstance(value, str):
        return value == "" or "<" in value
    if isinstance(value, dict):
        return "s" in value or any(_restructures(v) for v in value.values())
    return isinstance(value, list)
