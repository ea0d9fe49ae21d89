"""Commands to Redis sent in pipelines: those issued in one turn of the event loop go
together, so that a crowd costs a few round trips instead of one each.

A broadcast that changes persisted fields makes every subscribed session commit at once (a
claim, a compare-and-set and an envelope each), and a reconnection storm reads every group at
once. Sent one by one, each command takes a connection of the pool, a write, a read and
redis-py's bookkeeping for itself; sent as a pipeline (not a transaction: each command
succeeds or fails on its own), a thousand of them take a few connections and a fraction of
the time (see docs/scaling.md). The turn's first caller waits one turn of the event loop
for the others and sends them; a command alone in its turn goes as it is, from its caller.

The pipelines in flight at once are bounded by the pool: redis-py's pools refuse a command
past their size (``MaxConnectionsError``) instead of waiting for a connection, so a crowd
waits its turn here. Whatever uses one client (a store and a broadcaster may share it)
shares its :class:`CommandQueue`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from .redis_clients import RedisClient

__all__ = ["BATCH", "CommandQueue", "command_queue"]

#: Commands a pipeline carries at most: a larger crowd goes as several, on connections of
#: their own (so that Redis works on one while the client reads another).
BATCH = 256


class _Command(NamedTuple):
    name: str  # the client's method
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reply: asyncio.Future[Any]


class CommandQueue:
    """Runs commands of one client in pipelines, ``slots`` of them at once."""

    def __init__(self, client: RedisClient, slots: int) -> None:
        self._client = weakref.ref(client)  # the registry is keyed by the client: no cycle through it
        #: Connections the queue's pipelines (and the commands that go around it) take at once.
        self.slots = asyncio.Semaphore(max(1, slots))
        self._waiting: list[_Command] | None = None  # this turn's commands, sent by its first caller
        self._sending: set[asyncio.Task[None]] = set()
        self._loads: dict[str, int] = {}  # by script: how many times it was loaded again
        self._loading = asyncio.Lock()

    async def execute(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the client's command ``name`` (``"get"``, ``"set"``, ...) with the others of this
        turn, and return its reply (or raise its error)."""
        command = _Command(name, args, kwargs, asyncio.get_running_loop().create_future())
        if self._waiting is not None:  # the turn's first caller sends the commands: join them
            self._waiting.append(command)
            return await command.reply
        batch = self._waiting = [command]
        try:
            await asyncio.sleep(0)  # the turn's other callers join
        except asyncio.CancelledError:
            self._send_batches(batch[1:])
            raise
        finally:
            self._waiting = None
        if len(batch) == 1:  # alone: sent as it is, from this task
            async with self.slots:
                return await getattr(self._live_client(), name)(*args, **kwargs)
        self._send_batches(batch)
        return await command.reply

    async def run_script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a registered Lua script by its digest; when Redis does not know it (restarted,
        failed over, flushed), load it once for the crowd that found it missing and run again."""
        loads = self._loads.get(script.sha, 0)
        try:
            return await self.execute("evalsha", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            async with self._loading:
                if self._loads.get(script.sha, 0) == loads:  # nobody loaded it since this one was sent
                    async with self.slots:
                        await self._live_client().script_load(script.script)
                    self._loads[script.sha] = loads + 1
            return await self.execute("evalsha", script.sha, len(keys), *keys, *args)

    def _live_client(self) -> RedisClient:
        client = self._client()
        if client is None:
            raise RuntimeError("the Redis client is gone")
        return client

    def _send_batches(self, commands: list[_Command]) -> None:
        for start in range(0, len(commands), BATCH):
            task = asyncio.get_running_loop().create_task(self._send(commands[start : start + BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Command]) -> None:
        try:
            async with self.slots:
                commands = [command for command in batch if not command.reply.done()]  # not cancelled meanwhile
                replies = await self._pipeline(commands) if commands else []
        except asyncio.CancelledError:
            for command in batch:
                command.reply.cancel()
            raise
        except Exception as exc:  # the pipeline failed as a whole (a connection, a failover)
            for command in batch:
                if not command.reply.done():
                    command.reply.set_exception(exc)
            return
        for command, reply in zip(commands, replies, strict=True):
            if command.reply.done():
                continue
            if isinstance(reply, Exception):  # this command's own error: the others stand
                command.reply.set_exception(reply)
            else:
                command.reply.set_result(reply)

    async def _pipeline(self, commands: list[_Command]) -> list[Any]:
        pipeline = self._live_client().pipeline(transaction=False)
        for command in commands:
            getattr(pipeline, command.name)(*command.args, **command.kwargs)
        replies: list[Any] = await pipeline.execute(raise_on_error=False)
        return replies


def command_queue(client: RedisClient) -> CommandQueue:
    """The queue of ``client``'s commands, shared by whatever uses the client. Its pipelines
    take as many connections as the client's pool opens (to each node, on a Cluster), less
    one that a subscriber holds on one server's pool (a Cluster's subscribers have pools of
    their own)."""
    queue = _queues.get(client)
    if queue is None:
        if isinstance(client, RedisCluster):
            size = int(client.nodes_manager.connection_kwargs["max_connections"])
        else:
            size = client.connection_pool.max_connections - 1
        queue = _queues[client] = CommandQueue(client, size)
    return queue


_queues: weakref.WeakKeyDictionary[RedisClient, CommandQueue] = weakref.WeakKeyDictionary()
