"""The Redis broadcaster: pub/sub between the instances of an app.

Each broadcaster holds **one subscriber connection** (on a Cluster: one per master node that
owns a subscribed channel, using sharded pub/sub, SSUBSCRIBE/SPUBLISH) and fans every message
out to its local handlers; a browser or a handler never costs a Redis subscription. The
channels subscribed (or unsubscribed) in one turn of the event loop go in one command (on a
Cluster, one a slot: it refuses shard channels of several slots in one, reconnections included).

Delivery: a reader task per subscriber connection only reads and queues (at most
``max_pending`` messages; beyond that a message is dropped and counted in :attr:`dropped`,
and once the handlers have caught up ``on_resubscribe`` is called, as after a reconnection:
the app resynchronises what it may have missed), so Redis never sees a slow consumer. One
dispatcher task calls the handlers in order; a handler that raises is logged, one that takes
longer than ``handler_timeout`` seconds is cancelled and logged, and delivery goes on to the
others.

Redis pub/sub is fire-and-forget: **messages published while a subscriber connection is down
are lost**. The reader reconnects with exponential backoff (logged), subscribes every channel
again, and then calls ``on_resubscribe(channels)`` so the app can resynchronise (reload its
groups from the session store). A publish while Redis is unreachable raises
:class:`BroadcastUnavailable` (beyond the client's own retry: a publish whose reply was lost
may have been delivered, so a retry may deliver a message twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection, Connection
from redis.crc import key_slot

from ..broadcast import BroadcastUnavailable, Handler, ResubscribeHook
from ..ops.logs import get_logger
from .redis_clients import RedisClient, close_client, describe, require_bytes
from .redis_commands import command_queue

__all__ = ["BroadcastUnavailable", "RedisBroadcaster", "ResubscribeHook"]

logger = get_logger(__name__)

#: Called with the channels (without prefix) of a subscriber connection that came back after
#: an outage: messages on them may have been missed.

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
)
PUBLISH_ERRORS: tuple[type[Exception], ...] = (
    *CONNECTION_ERRORS,
    redis_errors.ClusterDownError,
    redis_errors.SlotNotCoveredError,
)
MESSAGE_TYPES = frozenset({"message", "smessage"})
CONFIRMATIONS = frozenset({"subscribe", "ssubscribe"})
#: Channels at most in one SUBSCRIBE (or UNSUBSCRIBE) command.
BATCH = 512


class RedisBroadcaster:
    """The :class:`~livetemplate.broadcast.Broadcaster` protocol over Redis pub/sub
    (see the module's documentation for delivery, backpressure and reconnection)."""

    def __init__(
        self,
        client: RedisClient,
        *,
        channel_prefix: str = "livetemplate:",
        handler_timeout: float = 5.0,
        max_pending: int = 10_000,
        keepalive: float = 10.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 2.0,
        on_resubscribe: ResubscribeHook | None = None,
        close_client: bool = False,
        name: str | None = None,
    ) -> None:
        if handler_timeout <= 0 or max_pending <= 0 or keepalive <= 0:
            raise ValueError("handler_timeout, max_pending and keepalive must be positive")
        require_bytes(client)
        self.client = client
        self._commands = command_queue(client)  # a crowd of publishes goes in pipelines (see there)
        self.channel_prefix = channel_prefix
        self.handler_timeout = handler_timeout
        self.keepalive = keepalive
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.on_resubscribe = on_resubscribe
        self.sharded = isinstance(client, RedisCluster)
        #: Messages dropped because the handlers fell ``max_pending`` messages behind.
        self.dropped = 0
        self._missed = False  # dropped since the queue last ran empty: resynchronise when it does
        self._close_client = close_client
        self._name = name or describe(client)
        self._handlers: dict[str, list[Handler]] = {}
        self._subscribers: dict[str, _Subscriber] = {}  # by node name ("" unless sharded)
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(max_pending)
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._remapping: asyncio.Lock | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBroadcaster({self._name}, channel_prefix={self.channel_prefix!r})"

    # -- the protocol ---------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        name = self.channel_prefix + channel
        try:
            await self._commands.execute("spublish" if self.sharded else "publish", name, message)
        except PUBLISH_ERRORS as exc:
            raise BroadcastUnavailable(f"cannot publish on {channel!r}: Redis ({self._name}) is unreachable") from exc

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Call ``handler`` for every message on ``channel``. The first handler of a channel
        subscribes it in Redis and waits for the confirmation (unless Redis is unreachable:
        then the reader subscribes it when the connection returns)."""
        if self._closed:
            raise RuntimeError("the broadcaster is closed")
        handlers = self._handlers.setdefault(channel, [])
        handlers.append(handler)
        if len(handlers) == 1:
            self._start_dispatcher()
            try:
                subscriber = await self._subscriber_for(self.channel_prefix + channel)
            except redis_errors.RedisError as exc:  # a cluster whose slots cannot be read
                del self._handlers[channel]
                raise BroadcastUnavailable(f"cannot subscribe {channel!r}: {exc!r}") from exc
            await subscriber.add(self.channel_prefix + channel)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if not handlers or handler not in handlers:
            return
        handlers.remove(handler)
        if not handlers:
            del self._handlers[channel]
            name = self.channel_prefix + channel
            for subscriber in list(self._subscribers.values()):
                if name in subscriber.channels:
                    await subscriber.remove(name)

    async def close(self) -> None:
        self._closed = True
        tasks = [subscriber.close() for subscriber in self._subscribers.values()]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._subscribers.clear()
        self._handlers.clear()
        for task in [self._dispatcher, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._dispatcher = None
        self._tasks.clear()
        if self._close_client:
            await close_client(self.client)

    # -- for readiness checks and tests ---------------------------------------------------

    def channels(self) -> list[str]:
        """Channels with at least one handler."""
        return list(self._handlers)

    def subscriber_connections(self) -> int:
        """How many subscriber connections are open (one, or one per cluster node in use)."""
        return sum(1 for subscriber in self._subscribers.values() if subscriber.connected)

    # -- subscriber connections -----------------------------------------------------------

    async def _subscriber_for(self, name: str) -> _Subscriber:
        node = ""
        if isinstance(self.client, RedisCluster):
            await self.client.initialize()
            node = _node_name(self.client, name)
        subscriber = self._subscribers.get(node)
        if subscriber is None:
            subscriber = self._subscribers[node] = _Subscriber(self, node, self._new_pubsub(node))
        return subscriber

    def _new_pubsub(self, node_name: str) -> PubSub:
        if not isinstance(self.client, RedisCluster):
            return self.client.pubsub()
        node = self.client.get_node(node_name=node_name)
        if node is None:
            raise LookupError(f"no cluster node {node_name}")
        # A pool of its own, so the subscribed socket never returns to the node's pool.
        pool = ConnectionPool(connection_class=node.connection_class, max_connections=1, **node.connection_kwargs)
        return _ShardPubSub(connection_pool=pool, encoder=self.client.get_encoder())

    def _received(self, channel: bytes, data: bytes) -> None:
        try:
            self._queue.put_nowait((channel.decode()[len(self.channel_prefix) :], data))
        except asyncio.QueueFull:
            self.dropped += 1
            self._missed = True
            if self.dropped == 1 or self.dropped % 1000 == 0:
                behind = self._queue.qsize()
                logger.warning(
                    "broadcast handlers are %d messages behind: %d dropped (resynchronising once they catch up)",
                    behind,
                    self.dropped,
                )

    def _resubscribed(self, subscriber: _Subscriber) -> None:
        self._resynchronise(subscriber.channels)

    def _resynchronise(self, names: Iterable[str]) -> None:
        """Tell the app that messages on these Redis channels may have been missed."""
        channels = sorted(name[len(self.channel_prefix) :] for name in names)
        if self.on_resubscribe is not None and channels:
            self._spawn(self._call_hook(channels))

    async def _call_hook(self, channels: list[str]) -> None:
        assert self.on_resubscribe is not None
        try:
            await self.on_resubscribe(channels)
        except Exception:
            logger.exception("on_resubscribe hook failed")

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("broadcaster task failed", exc_info=task.exception())

    async def remap(self, delay: float = 0.0) -> None:
        """Cluster only: refresh the slot map and move every channel whose slot changed owner
        to the subscriber connection of its new node (after a failover or a slot migration);
        subscribe again the channels a node dropped while still owning them per the map."""
        if not isinstance(self.client, RedisCluster) or self._closed:
            return
        await asyncio.sleep(delay)
        self._remapping = self._remapping or asyncio.Lock()
        async with self._remapping:
            try:
                await self.client.nodes_manager.initialize()
            except Exception as exc:
                logger.warning("cannot refresh the cluster's slots: %r", exc)
                return
            moved: list[tuple[_Subscriber, str]] = []  # with the subscriber that holds them
            dropped: list[tuple[_Subscriber, str]] = []
            for subscriber in list(self._subscribers.values()):
                for name in sorted(subscriber.channels):
                    if _node_name(self.client, name) != subscriber.node:
                        logger.info(
                            "shard channel %r moved from %s: subscribing on its new node", name, subscriber.node
                        )
                        moved.append((subscriber, name))
                    elif name in subscriber.dropped:
                        # the map may be behind the node: a MOVED reply sends us here again
                        subscriber.dropped.discard(name)
                        dropped.append((subscriber, name))
            # at once: the subscriptions of one turn go in one command a slot (see _Subscriber)
            await asyncio.gather(*(subscriber.remove(name) for subscriber, name in moved))
            failures = await asyncio.gather(
                *(self._subscribe_on_owner(name) for _, name in moved),
                *(subscriber.add(name) for subscriber, name in dropped),
                return_exceptions=True,
            )
            for (_, name), failure in zip(moved + dropped, failures, strict=True):
                if failure is not None:
                    logger.warning("shard channel %r could not be subscribed again: %r", name, failure)
            # what was published on them since the server dropped them is lost: read it again
            self._resynchronise(name for _, name in moved + dropped)
            for node, subscriber in list(self._subscribers.items()):
                if not subscriber.channels:
                    del self._subscribers[node]
                    await subscriber.close()

    async def _subscribe_on_owner(self, name: str) -> None:
        await (await self._subscriber_for(name)).add(name)

    def _start_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def _dispatch(self) -> None:
        while True:
            channel, data = await self._queue.get()
            for handler in list(self._handlers.get(channel, ())):
                try:
                    async with asyncio.timeout(self.handler_timeout):
                        await handler(data)
                except TimeoutError:
                    limit = self.handler_timeout
                    logger.warning("handler %r on channel %r took over %s s: cancelled", handler, channel, limit)
                except Exception:
                    logger.exception("handler %r on channel %r failed", handler, channel)
            if self._missed and self._queue.empty():  # caught up after an overflow
                self._missed = False
                self._resynchronise(name for subscriber in self._subscribers.values() for name in subscriber.channels)


class _Batch:
    """Channels to subscribe (or unsubscribe) in one command, and what sending it raised."""

    __slots__ = ("names", "sent")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sent: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def abandon(self, _flush: object = None) -> None:
        """Let the waiters go on if nothing was sent (the flush was cancelled: the broadcaster closes)."""
        if not self.sent.done():
            self.sent.set_result(None)


class _Subscriber:
    """One subscriber connection (a redis-py PubSub), the Redis channels it should hold and
    the task that reads it and reconnects it."""

    def __init__(self, owner: RedisBroadcaster, node: str, pubsub: PubSub) -> None:
        self.owner = owner
        self.node = node
        self.pubsub = pubsub
        self.channels: set[str] = set()
        #: Channels the server dropped (their slot moved), to subscribe where they now live.
        self.dropped: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._batches: dict[str, _Batch] = {}  # by action: the names asked for in this turn
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._down_since: float | None = None
        self._label = f"subscriber {node}" if node else "subscriber"
        self.closed = False

    @property
    def connected(self) -> bool:
        connection = self.pubsub.connection
        return connection is not None and connection.is_connected

    async def add(self, name: str) -> None:
        """Subscribe ``name`` and wait for the server's confirmation (not beyond
        ``keepalive`` seconds: on a connection failure the reader subscribes it later). Once
        closed (the broadcaster closes), it returns at once."""
        if self.closed:
            return
        self.channels.add(name)
        confirmed = self._confirmations.setdefault(name, asyncio.get_running_loop().create_future())
        try:
            await self._send_soon("subscribe", name)
            self._start_reader()
            async with asyncio.timeout(self.owner.keepalive):
                await asyncio.shield(confirmed)
        except (*CONNECTION_ERRORS, TimeoutError, redis_errors.ResponseError) as exc:  # type: ignore[misc]
            logger.info("%s: %s not subscribed yet (%r): the reader will on reconnection", self._label, name, exc)
            self._start_reader()
        finally:
            self._confirmations.pop(name, None)

    def _start_reader(self) -> None:
        if self._reader is None and not self.closed:
            self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def remove(self, name: str) -> None:
        self.channels.discard(name)
        self.dropped.discard(name)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self._send_soon("unsubscribe", name)

    async def _send_soon(self, action: str, name: str) -> None:
        """``action`` (subscribe, unsubscribe) for ``name``, in one command with the others
        asked for in this turn of the event loop: a storm of tabs opening (or closing) asks
        for thousands of channels at once. Raises what sending raised."""
        batch = self._batches.get(action)
        if batch is None:
            batch = self._batches[action] = _Batch()
            self.owner._spawn(self._flush(action, batch)).add_done_callback(batch.abandon)
        batch.names.append(name)
        error = await asyncio.shield(batch.sent)
        if error is not None:
            raise error

    async def _flush(self, action: str, batch: _Batch) -> None:
        """Send a batch: the names that still want it (a channel removed since it was asked
        for is not subscribed, and the other way round). A subscribe while disconnected
        connects, which subscribes every channel."""
        if self._batches.get(action) is batch:
            del self._batches[action]
        subscribing = action == "subscribe"
        wanted = [] if self.closed else dict.fromkeys(batch.names)
        names = [name for name in wanted if (name in self.channels) is subscribing]
        if subscribing:  # removed meanwhile: not sent, so no confirmation comes
            for name in set(batch.names).difference(names):
                confirmed = self._confirmations.get(name)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
        error: Exception | None = None
        try:
            if subscribing and names and not self.connected:
                await self._connect()
            elif names and self.connected:
                await self._send(action, names)
        except Exception as exc:  # for the waiters to raise
            error = exc
        batch.sent.set_result(error)

    async def close(self) -> None:
        self.closed = True
        for confirmed in self._confirmations.values():  # none comes now: the waiters go on
            if not confirmed.done():
                confirmed.set_result(None)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8
        if self.node:  # the cluster subscriber's own pool
            await self.pubsub.connection_pool.disconnect()

    async def _send(self, action: str, names: list[str]) -> None:
        """``action`` (subscribe, unsubscribe) for ``names``: up to ``BATCH`` a command, and on a
        cluster one slot's channels a command (it refuses shard channels of several slots)."""
        pubsub = self.pubsub
        command: Callable[..., Awaitable[Any]]
        if self.owner.sharded:
            command = pubsub.ssubscribe if action == "subscribe" else pubsub.sunsubscribe
        else:
            command = pubsub.subscribe if action == "subscribe" else pubsub.unsubscribe
        for group in _by_slot(names) if self.owner.sharded else [names]:
            for start in range(0, len(group), BATCH):
                await command(*group[start : start + BATCH])

    async def _connect(self) -> None:
        """Connect (first time: take a connection and watch its reconnections) and make the
        server's subscriptions match :attr:`channels`."""
        async with self._connecting:
            if self.pubsub.connection is None:
                await self.pubsub.connect()  # type: ignore[no-untyped-call]
                connection = cast(AbstractConnection, self.pubsub.connection)
                connection.register_connect_callback(self._reconnected)  # type: ignore[no-untyped-call]
                await self._sync()
            elif not self.connected:
                await cast(AbstractConnection, self.pubsub.connection).connect()  # runs _reconnected

    async def _reconnected(self, connection: AbstractConnection) -> None:
        """A connect callback: the connection came back (through our reader or redis-py's own
        retries). redis-py has subscribed its channels again; add ours it lacks."""
        await self._sync()
        outage = f" after {time.monotonic() - self._down_since:.1f} s" if self._down_since else ""
        logger.warning("%s reconnected%s: %d channel(s) subscribed again", self._label, outage, len(self.channels))
        self._down_since = None
        self.owner._resubscribed(self)

    async def _sync(self) -> None:
        subscribed = self.pubsub.shard_channels if self.owner.sharded else self.pubsub.channels
        held = {_text(name) for name in subscribed}
        missing = sorted(self.channels - held)
        extra = sorted(held - self.channels)
        if missing:
            await self._send("subscribe", missing)
        if extra:
            await self._send("unsubscribe", extra)

    async def _read_forever(self) -> None:
        delay = self.owner.reconnect_delay
        pinged = False
        while True:
            try:
                await self._connect()
                message = await self.pubsub.get_message(timeout=self.owner.keepalive)
            except CONNECTION_ERRORS as exc:
                await self._lost(exc, delay)
                delay = min(delay * 2, self.owner.max_reconnect_delay)
                pinged = False
                continue
            except redis_errors.ResponseError as exc:  # MOVED after a slot migration, for one
                logger.warning("%s: %r", self._label, exc)
                for future in self._confirmations.values():
                    if not future.done():
                        future.set_exception(exc)
                self.owner._spawn(self.owner.remap(delay=self.owner.reconnect_delay))
                continue
            delay = self.owner.reconnect_delay
            if message is None:  # idle: ping once, and give up on the connection if no answer
                if pinged:
                    await self._lost(redis_errors.TimeoutError("no answer to a ping"), delay)
                    pinged = False
                    continue
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await self.pubsub.ping()
                pinged = True
                continue
            pinged = False
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in MESSAGE_TYPES:
            self.owner._received(message["channel"], message["data"])
        elif kind in CONFIRMATIONS:
            future = self._confirmations.get(_text(message["channel"]))
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "sunsubscribe" and _text(message["channel"]) in self.channels:
            # the server dropped a shard channel whose slot moved to another node
            self.dropped.add(_text(message["channel"]))
            self.owner._spawn(self.owner.remap())

    async def _lost(self, error: BaseException, delay: float) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning("%s lost its connection (%r): reconnecting with backoff", self._label, error)
        if self.owner.sharded:  # the node may have failed over: its channels may have moved
            self.owner._spawn(self.owner.remap())
        connection = self.pubsub.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
        await asyncio.sleep(delay)


class _ShardPubSub(PubSub):
    """A PubSub that, on a reconnection, subscribes its shard channels again one slot at a
    time: redis-py sends them all in one SSUBSCRIBE, which a cluster node refuses as soon as
    they span slots (CROSSSLOT), and the channels would stay unsubscribed."""

    async def on_connect(self, connection: Connection) -> None:
        shard_channels, self.shard_channels = self.shard_channels, {}
        try:
            await super().on_connect(connection)
        finally:
            self.shard_channels = shard_channels
        for group in _by_slot(list(shard_channels)):
            await self.ssubscribe(*group)


def _by_slot(names: list[Any]) -> list[list[Any]]:
    """``names`` (str or bytes) grouped by their cluster slot, in order."""
    slots: dict[int, list[Any]] = {}
    for name in names:
        slots.setdefault(key_slot(name.encode() if isinstance(name, str) else name), []).append(name)
    return list(slots.values())


def _node_name(cluster: RedisCluster, channel: str) -> str:
    node = cluster.get_node_from_key(channel)
    if node is None:
        raise redis_errors.SlotNotCoveredError(f"no cluster node serves the slot of {channel!r}")
    return str(node.name)


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name
