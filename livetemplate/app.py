"""The live app: :func:`mount` binds a controller, a state and a template into an ASGI app.

:class:`LiveApp` is the composition root: it builds the session groups, the action runner,
the rendering pipeline and the hub from the options, routes each request to its transport,
and runs the lifespan. A message goes down (transport -> live view -> runner -> store) and
its frames come back up as return values; the hub carries out what the outcome asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .backends import from_url
from .backends.memory import InProcessBroadcaster, MemorySessionStore
from .broadcast import Broadcaster
from .controller import Actions
from .groups import Groups
from .hub import Hub, Session
from .ops.health import CONTENT_TYPE as HEALTH_CONTENT_TYPE
from .ops.health import Check, HealthChecks
from .ops.heap import heap
from .ops.logs import FORMAT_ENV, LEVEL_ENV, configure_logging, get_logger
from .ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .ops.metrics import Metrics
from .options import Options
from .rendering import Pipeline
from .request import Request, SessionIds
from .runner import Runner
from .runtime import Runtime
from .sessions import SessionStore
from .state import StateSpec
from .template import Template
from .transports.assets import check_client_asset, serve_asset
from .transports.http import serve_page
from .transports.response import Responder
from .transports.websocket import POLICY_VIOLATION, SERVICE_RESTART, WebSocketConnection
from .types import Receive, Scope, Send
from .uploads import Uploads
from .wire import ASSET_PREFIX, WEBSOCKET_HEADER

__all__ = ["LiveApp", "Route", "mount"]

logger = get_logger(__name__)

#: Extensions of template files, to tell a path from a template source.
_TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".tmpl", ".tpl")

#: An HTTP endpoint: the request, its method, the body's receive channel, the responder.
Endpoint = Callable[[Request, str, Receive, Responder], Awaitable[None]]


def mount(controller: Any, state: Any, *, template: Template | str | Path, **options: Any) -> LiveApp:
    """An ASGI app serving ``template`` for ``state``, with ``controller``'s methods as
    actions. ``template`` is a :class:`Template`, a path to a template file, or source.
    ``state`` (a ``msgspec.Struct`` or dataclass) is the initial state of every session.
    Options are keyword arguments (see :class:`~livetemplate.Options`); unknown ones raise.
    ``LIVETEMPLATE_LOG_LEVEL`` / ``LIVETEMPLATE_LOG_FORMAT`` in the environment configure
    the library's logging."""
    if os.environ.get(LEVEL_ENV) or os.environ.get(FORMAT_ENV):
        configure_logging()
    return LiveApp(controller, state, _template(template), Options.from_keywords(options))


def _template(template: Template | str | Path) -> Template:
    if isinstance(template, Template):
        return template
    if isinstance(template, Path) or (
        isinstance(template, str) and template.endswith(_TEMPLATE_SUFFIXES) and not any(c in template for c in "<{\n")
    ):
        path = Path(template)
        if not path.is_file():
            raise FileNotFoundError(f"template file not found: {path}")
        return Template.from_file(path)
    return Template(template, name="<mount>")


@dataclass(frozen=True)
class Route:
    """An HTTP endpoint at ``path`` below the app's mount point (every path starting with it
    when ``prefix``)."""

    path: str
    endpoint: Endpoint
    prefix: bool = False

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


class LiveApp:
    """The ASGI app :func:`mount` returns. Also offers :meth:`publish` (run an action for a
    topic's subscribers), :meth:`session` (a handle on a session group) and :meth:`shutdown`."""

    def __init__(self, controller: Any, state: Any, template: Template, options: Options) -> None:
        self.controller = controller
        self.template = template
        self.options = options
        self.store, self.broadcaster = _backend(options)
        self.instance_id = secrets.token_hex(8)
        self.namespace = options.name or f"{type(controller).__name__}:{template.name or 'template'}"
        if options.client_script_url is None:
            check_client_asset()
        spec: StateSpec[Any] = StateSpec(state)
        actions = Actions(controller)
        secret = options.secret_key or secrets.token_bytes(32)
        self.metrics = Metrics()
        self.groups = Groups(
            self.store, self.namespace, persisted=bool(spec.persisted), idle_timeout=options.group_idle_timeout
        )
        self.metrics.watch(self.metrics.groups_active, lambda: len(self.groups))
        self.metrics.connections_max.set(options.max_connections or 0)
        store = self.store
        if hasattr(store, "degraded"):  # a store that can fall back to memory (Redis)
            self.metrics.watch(self.metrics.session_store_fallback, lambda: float(store.degraded))
        self._loop_lag = self.metrics.loop_lag_monitor()
        self.hub = Hub(
            self.groups,
            self.broadcaster,
            namespace=self.namespace,
            instance_id=self.instance_id,
            metrics=self.metrics,
            open_topics=options.open_topics,
            topic_acl=options.topic_acl,
            keep_alive=_keep_alive(self.store),
        )
        if hasattr(store, "overruled"):  # a store whose write-back after an outage can drop changes (Redis)
            store.overruled.append(self.hub.overruled)
        runner = Runner(
            actions,
            spec,
            self.groups,
            sessions=self.hub.session,
            topic_gate=self.hub.admit,
            metrics=self.metrics,
            dev_mode=options.dev_mode,
            sync_actions=options.sync_actions,
            slow_action=options.slow_action_threshold,
        )
        self.runtime = Runtime(
            options,
            SessionIds(secret.encode() if isinstance(secret, str) else secret),
            self.groups,
            runner,
            Pipeline(template, metrics=self.metrics, dev_mode=options.dev_mode, share=options.shared_renders),
            self.hub,
            self.metrics,
            capabilities=("change",) if actions.find("change") is not None else (),
            uploads=Uploads(options.uploads, options.upload_dir) if options.uploads else None,
        )
        self._shut = False
        self.routes: list[Route] = [
            Route("/", self._page),
            Route(ASSET_PREFIX, self._asset, prefix=True),
        ]
        self.health = HealthChecks(
            connections=lambda: len(self.runtime.connections),
            groups=lambda: len(self.groups),
            registry=self.metrics.registry,
        )
        self.health.register_backends(self.store, self.broadcaster)
        if options.metrics_enabled:
            self.routes.append(Route(options.metrics_path, self._metrics))
        if options.health_path is not None:
            base = options.health_path.rstrip("/")
            for path, answer in ((f"{base}/live", self.health.live), (f"{base}/ready", self.health.ready)):
                self.routes.append(Route(path, _probe(answer)))
            self.routes.append(Route(base or "/", _probe(self.health.report)))
        if isinstance(self.store, MemorySessionStore):
            prefix = self.namespace + ":"
            self.store.keepers.append(lambda key: key.startswith(prefix) and self.hub.serves(key[len(prefix) :]))
            self.store.on_evict = self.metrics.session_store_evictions.inc

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if not self._shut:
            self._loop_lag.start()
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            if Request(scope, False).relative_path != "/":
                await receive()  # the connect
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
                return
            connection = WebSocketConnection(self.runtime, scope, receive, send)
            del scope  # while open, a connection keeps none of its upgrade's headers (see its run)
            await connection.run()
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, self.options.trust_forwarded_headers)
        websocket = b"disabled" if self.options.websocket_disabled else b"enabled"
        respond = Responder(send, [(WEBSOCKET_HEADER.encode(), websocket)])
        path = request.relative_path
        for route in self.routes:
            if route.matches(path):
                await route.endpoint(request, scope["method"], receive, respond)
                return
        await respond.text(404, "Not Found")

    async def _page(self, request: Request, method: str, receive: Receive, respond: Responder) -> None:
        await serve_page(self.runtime, request, method, receive, respond)

    async def _asset(self, request: Request, method: str, receive: Receive, respond: Responder) -> None:
        await serve_asset(request.relative_path[len(ASSET_PREFIX) :], method, respond)

    def register_check(self, name: str, check: Check, *, timeout: float = 1.0) -> None:
        """Add a readiness check (an async callable raising on failure, returning None or a
        mapping of figures for ``/health``), run under ``timeout`` seconds."""
        self.health.register_check(name, check, timeout=timeout)

    async def _metrics(self, request: Request, method: str, receive: Receive, respond: Responder) -> None:
        if method not in ("GET", "HEAD"):
            await respond(405, b"Method Not Allowed", "text/plain", allow="GET, HEAD")
            return
        body = self.metrics.exposition()
        await respond(200, body if method == "GET" else b"", METRICS_CONTENT_TYPE, cache_control="no-store")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                heap.started()  # PERF: full collections skip the program (see ops/heap.py)
                if self.options.secret_key is None and not isinstance(self.store, MemorySessionStore):
                    logger.warning(
                        "no secret key (LIVETEMPLATE_SECRET_KEY) with a shared session store: this instance "
                        "signs session cookies with a key of its own, so the other instances (and this one "
                        "once restarted) do not recognise its browsers' sessions"
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- pushes --------------------------------------------------------------------------------

    async def publish(self, topic: str, action: str, data: Mapping[str, Any] | None = None) -> None:
        """Run ``action`` (with ``data``) for every connection subscribed to ``topic``, in
        this instance and, through the broadcaster, in the others."""
        await self.hub.publish(topic, action, data)

    def session(self, group_id: str) -> Session:
        """A handle on a session group, to push actions to its connections."""
        return self.hub.session(group_id)

    # -- shutdown --------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Drain gracefully, within ``shutdown_timeout``: refuse new connections (and report
        not ready) at once, let the actions in flight finish and their replies go out, then
        close every connection with 1012 (service restart: clients reconnect, to another
        instance behind a load balancer). Clients that stopped reading are not waited for
        past the timeout. Idempotent."""
        if self.runtime.closing:
            return
        self.runtime.closing = True
        self.health.draining = True
        deadline = time.monotonic() + self.options.shutdown_timeout
        connections = list(self.runtime.connections)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.drain() for c in connections)), _left(deadline) / 2)
        await asyncio.gather(
            *(c.close(SERVICE_RESTART, "Server restarting", flush=_left(deadline)) for c in connections)
        )

    async def shutdown(self) -> None:
        """Drain (see :meth:`drain`), then stop background work and close the store and the
        broadcaster. The ASGI lifespan's shutdown calls it. Idempotent."""
        if self._shut:
            return
        self._shut = True
        await self.drain()
        await self._loop_lag.stop()
        await self.hub.close()
        await self.groups.close()
        await self.store.close()
        await self.broadcaster.close()
        if self.runtime.uploads is not None:
            self.runtime.uploads.close()

    def __repr__(self) -> str:
        return f"<LiveApp {self.namespace}>"


def _probe(answer: Callable[[], Awaitable[tuple[int, bytes]]]) -> Endpoint:
    """An endpoint answering GET and HEAD with a health answer."""

    async def probe(request: Request, method: str, receive: Receive, respond: Responder) -> None:
        if method not in ("GET", "HEAD"):
            await respond(405, b"Method Not Allowed", "text/plain", allow="GET, HEAD")
            return
        status, body = await answer()
        await respond(status, body if method == "GET" else b"", HEALTH_CONTENT_TYPE, cache_control="no-store")

    return probe


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _backend(options: Options) -> tuple[SessionStore, Broadcaster]:
    """The session store and broadcaster the options name: ``backend=`` (a URL), else the
    ones given, else the memory defaults."""
    if options.backend is not None:
        return from_url(options.backend)
    store = options.session_store if options.session_store is not None else MemorySessionStore()
    broadcaster = options.broadcaster if options.broadcaster is not None else InProcessBroadcaster()
    return store, broadcaster


def _keep_alive(store: SessionStore) -> float | None:
    """How often the groups with open tabs are read again: a third of the store's time to
    live (its ``ttl``, in seconds or a timedelta), so that an open tab's session never
    expires; None for a store whose snapshots do not expire (or that does not say)."""
    ttl = getattr(store, "ttl", None)
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    return ttl / 3 if isinstance(ttl, int | float) and ttl > 0 else None
