"""The live app: ``mount()`` binds a controller, a state and a template into an ASGI app.

Session groups: every browser (``livetemplate-id`` cookie) is a group. The persisted
fields of the state are the group's (one snapshot, in the session store); the other
fields belong to each connection (a tab), refilled by ``mount``. Changes of a group are
serialized by its lock; a committed change to persisted fields reaches every tab.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from .backends.memory import InProcessBroadcaster, MemorySessionStore
from .broadcast import Broadcaster
from .context import Context, check_topic
from .controller import Actions, call
from .errors import FieldError, NotAvailable, TopicForbidden
from .helpers import Helpers
from .page import LiveRegion, live_region
from .sessions import SessionStore
from .state import StateSpec
from .template import Template
from .types import Receive, Scope, Send

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["LiveApp", "Options", "Session", "mount"]

logger = logging.getLogger("livetemplate")

#: Extensions of template files, to tell a path from a template source.
_TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".tmpl", ".tpl")
GENERAL = "_general"


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options of :func:`mount` (the Go library's ``With...`` options, in snake_case)."""

    session_store: SessionStore | None = None
    broadcaster: Broadcaster | None = None
    dev_mode: bool = False
    allowed_origins: Sequence[str] = ()
    trust_forwarded_headers: bool = True
    websocket_disabled: bool = False
    progressive_enhancement: bool = True
    loading_indicator: bool = True
    cookie_max_age: int = 365 * 24 * 3600
    max_message_size: int = 1 << 20
    client_script_url: str | None = None
    heartbeat_ms: int | None = None
    open_topics: bool = False
    topic_acl: Callable[[str, Context], bool] | None = None
    secret_key: str | bytes | None = None
    name: str | None = None
    group_idle_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.open_topics and self.topic_acl is not None:
            raise ValueError("open_topics and topic_acl exclude each other")
        if self.max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        if self.heartbeat_ms is not None and self.heartbeat_ms != 0 and self.heartbeat_ms < 1000:
            raise ValueError("heartbeat_ms must be 0 (off) or at least 1000")
        if self.cookie_max_age <= 0:
            raise ValueError("cookie_max_age must be positive")


def mount(controller: Any, state: Any, *, template: Template | str | Path, **options: Any) -> LiveApp:
    """An ASGI app serving ``template`` for ``state``, with ``controller``'s methods as
    actions. ``template`` is a :class:`Template`, a path to a template file, or source.
    ``state`` (a ``msgspec.Struct`` or dataclass) is the initial state of every session.
    Options are keyword arguments (see :class:`Options`); unknown ones raise."""
    names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"unknown option(s) for mount(): {', '.join(unknown)}")
    return LiveApp(controller, state, _template(template), Options(**options))


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


@dataclass
class Outcome:
    """The result of running hooks and an action on a session's state."""

    success: bool
    errors: dict[str, str]
    action: str | None
    state: Any
    forbidden: list[str] = field(default_factory=list)


class Group:
    """A session group in this process: the persisted snapshot, the lock that serializes
    its changes, and its open connections."""

    def __init__(self, group_id: str, persisted: bytes | None, version: int = 0) -> None:
        self.id = group_id
        self.persisted = persisted
        self.version = version  # of the snapshot in the session store
        self.lock = asyncio.Lock()
        self.connections: list[Connection] = []
        self.touched = time.monotonic()


class Exchange:
    """What a context needs from its transport (an HTTP request or a connection)."""

    is_http = False
    submitter: str | None = None
    secure = False

    def __init__(self) -> None:
        self.flash: dict[str, str] = {}
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []
        self.redirect: tuple[str, int] | None = None

    def subscribe(self, topic: str) -> None:
        raise NotAvailable("subscriptions need a WebSocket connection")

    def unsubscribe(self, topic: str) -> None:
        raise NotAvailable("subscriptions need a WebSocket connection")


class Session:
    """A handle on one session group, for pushing actions to its connections from
    anywhere (a background task, a webhook handler)."""

    def __init__(self, app: LiveApp, group_id: str) -> None:
        self.app = app
        self.group_id = group_id

    async def trigger_action(self, action: str, data: Mapping[str, Any] | None = None) -> None:
        """Run ``action`` for every open connection of the group and push the updates.
        Called from inside an action, it runs once that action has committed."""
        await self.app.trigger(self.group_id, action, dict(data or {}))


class _Envelope(msgspec.Struct):
    """A message between instances: an action for the subscribers of a topic, or for the
    connections of a session group."""

    kind: str
    target: str
    action: str
    data: dict[str, Any]
    origin: str


class LiveApp:
    """The ASGI app :func:`mount` returns. Also offers :meth:`publish` (run an action for
    a topic's subscribers), :meth:`session` (a handle on a session group) and
    :meth:`shutdown`."""

    def __init__(self, controller: Any, state: Any, template: Template, options: Options) -> None:
        self.controller = controller
        self.spec: StateSpec[Any] = StateSpec(state)
        self.template = template
        self.region: LiveRegion | None = live_region(template)
        self.actions = Actions(controller)
        self.options = options
        store, broadcaster = options.session_store, options.broadcaster
        self.store: SessionStore = store if store is not None else MemorySessionStore()
        self.broadcaster: Broadcaster = broadcaster if broadcaster is not None else InProcessBroadcaster()
        self.instance_id = secrets.token_hex(8)
        self.namespace = options.name or f"{type(controller).__name__}:{template.name or 'template'}"
        secret = options.secret_key or secrets.token_bytes(32)
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.groups: dict[str, Group] = {}
        self.connections: set[Connection] = set()
        self._topics: dict[str, set[Connection]] = {}
        self._group_channels: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._acting: set[asyncio.Task[Any] | None] = set()  # tasks running hooks or actions
        self._sweeper: asyncio.Task[None] | None = None
        self.closing = False
        self.capabilities = ["change"] if self.actions.find("change") is not None else []
        if options.client_script_url is None:
            from .http import check_client_asset

            check_client_asset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            from .http import handle_http

            await handle_http(self, scope, receive, send)
        elif kind == "websocket":
            from .connection import Connection

            await Connection(self, scope, receive, send).run()
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # -- session groups --------------------------------------------------------------

    def store_key(self, group_id: str) -> str:
        return f"{self.namespace}:{group_id}"

    async def group(self, group_id: str) -> Group:
        """The group, loaded from the session store if it is not in memory."""
        self._start_sweeper()
        group = self.groups.get(group_id)
        if group is None:
            snapshot = None
            if self.spec.persisted:
                snapshot = await self.store.get(self.store_key(group_id))
            group = self.groups.get(group_id)  # another task may have loaded it meanwhile
            if group is None:
                data, version = snapshot if snapshot is not None else (None, 0)
                group = self.groups[group_id] = Group(group_id, data, version)
        group.touched = time.monotonic()
        return group

    def session(self, group_id: str) -> Session:
        return Session(self, group_id)

    def new_state(self, group: Group) -> Any:
        """A fresh state with the group's persisted fields."""
        state = self.spec.new()
        return self.spec.load(state, group.persisted) if group.persisted is not None else state

    def csrf_token(self, group_id: str) -> str:
        return hmac.new(self._secret, group_id.encode(), hashlib.sha256).hexdigest()[:32]

    def helpers(self, group_id: str, errors: Mapping[str, str], flash: Mapping[str, str]) -> Helpers:
        return Helpers(errors, flash, self.csrf_token(group_id), self.options.dev_mode)

    # -- running hooks and actions ------------------------------------------------------

    async def run(
        self,
        group: Group,
        exchange: Exchange,
        state: Any,
        *,
        hooks: Sequence[str] = (),
        action: str | None = None,
        data: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        commit_persisted: bool = True,
    ) -> Outcome:
        """Run ``hooks`` (``mount``, ``on_connect``, ...) and then ``action`` on a copy of
        ``state`` whose persisted fields are the group's, with the group locked. On
        success the group takes the persisted fields and the outcome holds the new
        state; on failure nothing changes."""
        query = dict(query or {})
        data = dict(data or {})
        publishes: list[tuple[str, str, Any]] = []
        forbidden: list[str] = []
        async with group.lock:
            task = asyncio.current_task()
            self._acting.add(task)
            working = self.spec.clone(state)
            if group.persisted is not None:
                working = self.spec.load(working, group.persisted)
            try:
                for hook in hooks:
                    ctx = Context(self, group, exchange, action="", data=query, query=query)
                    method = self.actions.hook(hook)
                    if method is not None:
                        working = self._result(await call(method, working, ctx), working, hook)
                    publishes += ctx.publishes
                if action is not None:
                    method = self.actions.find(action)
                    if method is None:
                        return Outcome(False, {GENERAL: f"unknown action {action!r}"}, action, state)
                    ctx = Context(self, group, exchange, action=action, data=data, query=query)
                    working = self._result(await call(method, working, ctx), working, f"action {action!r}")
                    publishes += ctx.publishes
            except FieldError as exc:
                return Outcome(False, exc.errors, action, state)
            except TopicForbidden as exc:
                forbidden.append(exc.topic)
                return Outcome(False, {GENERAL: str(exc)}, action, state, forbidden)
            except NotAvailable as exc:
                logger.warning("%s: %s", f"action {action!r}" if action else "+".join(hooks), exc)
                return Outcome(False, {GENERAL: str(exc)}, action, state)
            except Exception as exc:
                logger.exception("%s failed", f"action {action!r}" if action else "+".join(hooks))
                detail = f"{type(exc).__name__}: {exc}" if self.options.dev_mode else "Something went wrong."
                return Outcome(False, {GENERAL: detail}, action, state)
            finally:
                self._acting.discard(task)
            persisted = self.spec.dump(working)
            changed = persisted is not None and persisted != group.persisted
            if changed and commit_persisted:
                group.persisted = persisted
                await self._save(group)
            elif changed:
                working = self.spec.load(working, group.persisted)  # type: ignore[arg-type]
        if changed and commit_persisted:
            self._background(self._refresh(group, exclude=exchange))
        for topic, name, payload in publishes:
            self._background(self.publish(topic, name, payload))
        return Outcome(True, {}, action, working)

    def _result(self, result: Any, working: Any, where: str) -> Any:
        if isinstance(result, FieldError):
            raise result
        return working if result is None else self.spec.check(result, where)

    async def _save(self, group: Group) -> None:
        try:
            assert group.persisted is not None
            key = self.store_key(group.id)
            group.version = await self.store.save(key, bytes(group.persisted), version=group.version)
        except Exception:
            # the change stays committed in this process; the store catches up on the next save
            logger.exception("saving session group %s failed", group.id)

    async def _refresh(self, group: Group, exclude: Exchange | None) -> None:
        """Give the group's other connections the committed persisted fields."""
        for connection in list(group.connections):
            if connection is not exclude:
                await connection.refresh()

    # -- pushes and topics ------------------------------------------------------------

    async def trigger(self, group_id: str, action: str, data: dict[str, Any]) -> None:
        group = self.groups.get(group_id)
        if group is None or not group.connections:
            raise NotAvailable(f"session group {group_id} has no open connection here")
        if asyncio.current_task() in self._acting:
            # from inside an action: run once it has finished (it holds the locks we need)
            self._background(self._dispatch(group, action, data, group.connections))
            return
        await self._dispatch(group, action, data, group.connections)

    async def _dispatch(self, group: Group, action: str, data: dict[str, Any], targets: Sequence[Connection]) -> None:
        """Run ``action`` for each target connection of ``group`` on its own state; the
        persisted fields change once (by the first run)."""
        first = True
        for connection in list(targets):
            if connection.closed:
                continue
            committed = await connection.dispatch(action, data, commit_persisted=first)
            first = first and not committed

    async def publish(self, topic: str, action: str, data: Mapping[str, Any] | None = None) -> None:
        """Run ``action`` (with ``data``) for every connection subscribed to ``topic``, in
        this instance and, through the broadcaster, in the others."""
        check_topic(topic)
        envelope = _Envelope("topic", topic, action, dict(data or {}), self.instance_id)
        publishing = self.broadcaster.publish(f"livetemplate:topic:{topic}", msgspec.msgpack.encode(envelope))
        if asyncio.current_task() in self._acting:
            self._background(publishing)  # delivery needs locks the running action holds
            return
        await publishing

    async def _on_topic(self, message: bytes) -> None:
        try:
            envelope = msgspec.msgpack.decode(message, type=_Envelope)
        except msgspec.DecodeError:
            logger.warning("dropped an undecodable topic message")
            return
        by_group: dict[str, list[Connection]] = {}
        for connection in self._topics.get(envelope.target, ()):
            by_group.setdefault(connection.group.id, []).append(connection)
        for group_id, targets in by_group.items():
            group = self.groups.get(group_id)
            if group is not None:
                await self._dispatch(group, envelope.action, envelope.data, targets)

    def authorize_topic(self, topic: str, ctx: Context) -> None:
        """Own session topic: allowed; other ``lvt:`` topics: never; the rest: as
        ``open_topics`` or ``topic_acl`` say (denied by default)."""
        if topic.startswith("lvt:"):
            if topic != ctx.self_topic:
                raise TopicForbidden(topic)
            return
        if self.options.open_topics:
            return
        acl = self.options.topic_acl
        if acl is None or not acl(topic, ctx):
            raise TopicForbidden(topic)

    async def subscribe(self, connection: Connection, topic: str) -> None:
        subscribers = self._topics.setdefault(topic, set())
        if not subscribers:
            await self.broadcaster.subscribe(f"livetemplate:topic:{topic}", self._on_topic)
        subscribers.add(connection)

    async def unsubscribe(self, connection: Connection, topic: str) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is None or connection not in subscribers:
            return
        subscribers.discard(connection)
        if not subscribers:
            del self._topics[topic]
            await self.broadcaster.unsubscribe(f"livetemplate:topic:{topic}", self._on_topic)

    # -- connections ------------------------------------------------------------------

    def attach(self, connection: Connection, group: Group) -> None:
        self.connections.add(connection)
        group.connections.append(connection)

    async def detach(self, connection: Connection, group: Group | None) -> None:
        self.connections.discard(connection)
        for topic in list(connection.topics):
            await self.unsubscribe(connection, topic)
        if group is not None and connection in group.connections:
            group.connections.remove(connection)
            group.touched = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_groups())

    async def _sweep_groups(self) -> None:
        """Forget groups without connections, idle for ``group_idle_timeout``; their
        persisted fields are in the session store."""
        interval = min(60.0, self.options.group_idle_timeout)
        while True:
            await asyncio.sleep(interval)
            self.sweep_groups()

    def sweep_groups(self) -> int:
        deadline = time.monotonic() - self.options.group_idle_timeout
        idle = [
            gid
            for gid, group in self.groups.items()
            if not group.connections and group.touched < deadline and not group.lock.locked()
        ]
        for gid in idle:
            del self.groups[gid]
        return len(idle)

    async def shutdown(self) -> None:
        """Close every connection (1001), stop background work, close the store and the
        broadcaster. Idempotent."""
        if self.closing:
            return
        self.closing = True
        for connection in list(self.connections):
            await connection.close(1001, "Server shutting down")
        for task in [*self._tasks, *([self._sweeper] if self._sweeper else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
        await self.broadcaster.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def __repr__(self) -> str:
        return f"<LiveApp {self.namespace}>"
