"""Redis backends: a session store and a pub/sub broadcaster shared by every instance of an app,
on one server, a Sentinel-managed master or a Cluster (redis-py's asyncio clients).

Key layout: one string per session group, ``{key_prefix}{key}``, holding
``LT1:<version>:<token>:<data>`` (the format tag, the snapshot's version in decimal, a random
token of the write that made it, the opaque bytes) with the store's time to live. Reading
refreshes the time to live in the same command (GETEX); writing is a compare-and-set in a
Lua script on that one key (EVALSHA, loaded again on NOSCRIPT), so it works on a Cluster.

A write acknowledged by a master can still be lost if the master fails before a replica got
it (Redis replicates asynchronously); the runtime then sees an older version and carries on
from it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis import exceptions as redis_errors
from redis.commands.core import AsyncScript

from ..ops.logs import get_logger
from ..sessions import CorruptSnapshot, Snapshot, StaleVersion, StoreUnavailable
from . import Backend
from .memory import MemorySessionStore
from .redis_clients import RedisClient, close_client, create_client, describe, mask_url, parse_url, require_bytes
from .redis_commands import command_queue
from .redis_pubsub import BroadcastUnavailable, RedisBroadcaster

__all__ = [
    "BroadcastUnavailable",
    "CorruptSnapshot",
    "RedisBroadcaster",
    "RedisSessionStore",
    "from_url",
]

logger = get_logger(__name__)

#: The format tag of a stored snapshot.
FORMAT = b"LT1"

#: Errors after which a command may succeed when tried again: the connection, a failover,
#: a cluster reconfiguring. Anything else (a script error, a wrong type) is not retried.
RETRYABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError and MasterNotFoundError
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a demoted master during a failover
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    OSError,
)

#: Connection errors that retrying cannot cure.
MISCONFIGURED = (redis_errors.AuthenticationError, redis_errors.AuthorizationError)

# KEYS[1] the key; ARGV[1] the expected version (0: nothing stored), ARGV[2] the data,
# ARGV[3] the time to live in ms, ARGV[4] the new version, ARGV[5] a token unique to this
# write. A value that is not a snapshot (another format, another type) counts as nothing
# stored. When the key already holds the new version written with the same token, the write
# is reported done: the retry of a write whose reply was lost must not fail against itself.
SAVE_SCRIPT = """
local current = 0
local token = nil
if redis.call('TYPE', KEYS[1]).ok == 'string' then
  local header = redis.call('GETRANGE', KEYS[1], 0, 63)  -- not the whole value
  local version, written_by = string.match(header, '^LT1:(%d+):(%x+):')
  if version then current = tonumber(version); token = written_by end
end
if current ~= tonumber(ARGV[1]) then
  if current == tonumber(ARGV[4]) and token == ARGV[5] then return {1, current} end
  return {0, current}
end
redis.call('SET', KEYS[1], 'LT1:' .. ARGV[4] .. ':' .. ARGV[5] .. ':' .. ARGV[2], 'PX', ARGV[3])
return {1, tonumber(ARGV[4])}
"""

# KEYS[1] the claim; ARGV[1] a token unique to this claim, ARGV[2] its time to live in ms.
# 1 if the claim is this one's: taken now, or by an earlier try of it whose reply was lost
# (SET NX tried again would answer "taken", and nobody would make the change); 0 if another's.
CLAIM_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0
"""

# KEYS[1] the key; ARGV[1] the expected version. Deletes the key if it holds that version
# (or, for 0, if it holds nothing); returns the version found.
DELETE_IF_SCRIPT = """
local current = 0
if redis.call('TYPE', KEYS[1]).ok == 'string' then
  local version = string.match(redis.call('GETRANGE', KEYS[1], 0, 63), '^LT1:(%d+):%x+:')
  if version then current = tonumber(version) end
end
if current == tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return current
"""


def decode_snapshot(key: str, raw: bytes) -> Snapshot:
    """A stored value (``LT1:<version>:<token>:<data>``) as a snapshot; :class:`CorruptSnapshot`
    if it is not one."""
    parts = raw.split(b":", 3)
    if len(parts) == 4 and parts[0] == FORMAT and parts[1].isdigit() and _is_hex(parts[2]):
        return Snapshot(parts[3], int(parts[1]))
    reason = "damaged header" if parts[0] == FORMAT else "unknown format"
    raise CorruptSnapshot(key, f"{reason} (starts with {raw[:16]!r})")


def _is_hex(text: bytes) -> bool:
    return bool(text) and all(char in b"0123456789abcdefABCDEF" for char in text)


class RedisSessionStore:
    """Session snapshots in Redis (the :class:`~livetemplate.sessions.SessionStore` protocol).

    Commands that fail on the connection (refused, reset, timed out, a failover or cluster
    change in progress) are tried again up to ``max_retries`` times, ``retry_delay`` seconds
    apart; then the store raises :class:`StoreUnavailable`. A :class:`StaleVersion` is never
    retried: it is the answer.

    With ``fallback_to_memory=True`` an unreachable Redis does not fail the caller: the store
    turns :attr:`degraded` and serves from an internal
    :class:`~livetemplate.backends.memory.MemorySessionStore`, probing Redis every
    ``probe_interval`` seconds. When Redis answers again, every key written meanwhile is
    written back with a compare-and-set against the version Redis had when the outage began
    (the version the writer presented). If Redis moved on meanwhile (another instance wrote
    the key), **Redis wins**: the local change is dropped and logged with its key, and the
    :attr:`overruled` hooks are called with it (the runtime's tabs take Redis's state). Keys read
    during the outage that are not in memory read as absent (the session starts fresh; when
    Redis returns, its older snapshot wins over that fresh one by the same rule). A delete is
    written back only for a key saved during the outage (for another, no version is known:
    Redis keeps its copy, logged). Store operations wait while the write-back runs.

    The store closes the client in :meth:`close` only with ``close_client=True`` (as
    :func:`from_url` sets).
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        ttl: timedelta = timedelta(hours=24),
        key_prefix: str = "livetemplate:session:",
        max_retries: int = 3,
        retry_delay: float = 0.1,
        fallback_to_memory: bool = False,
        probe_interval: float = 1.0,
        close_client: bool = False,
        name: str | None = None,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        if max_retries < 0 or retry_delay < 0 or probe_interval <= 0:
            raise ValueError("max_retries and retry_delay must be 0 or more, probe_interval positive")
        require_bytes(client)
        self.client = client
        self.ttl = ttl
        self.key_prefix = key_prefix
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.fallback_to_memory = fallback_to_memory
        self.probe_interval = probe_interval
        self._ttl_ms = max(1, int(ttl.total_seconds() * 1000))
        #: Claims live beside the sessions, not under their prefix (``list`` scans that).
        self._claim_prefix = key_prefix.rstrip(":") + "-claim:"
        self._close_client = close_client
        self._name = name or describe(client)
        self._commands = command_queue(client)  # a crowd's commands go in pipelines (see there)
        self._save: AsyncScript = client.register_script(SAVE_SCRIPT)
        self._delete_if: AsyncScript = client.register_script(DELETE_IF_SCRIPT)
        self._claim: AsyncScript = client.register_script(CLAIM_SCRIPT)
        # degraded mode: local snapshots; per key the Redis version the outage started from
        # (checked at write-back) and what to add to the memory store's version
        self._memory: MemorySessionStore | None = None
        self._base: dict[str, int] = {}
        self._offset: dict[str, int] = {}
        self._recovery: asyncio.Task[None] | None = None
        self._write_back = asyncio.Lock()
        #: Called with each key whose local change the write-back dropped (Redis had moved on):
        #: what this process holds of it is not what Redis holds (the runtime reads it again).
        self.overruled: builtins.list[Callable[[str], None]] = []

    def __repr__(self) -> str:
        return f"RedisSessionStore({self._name}, key_prefix={self.key_prefix!r}, degraded={self.degraded})"

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the store serves from memory."""
        return self._memory is not None

    # -- the protocol ---------------------------------------------------------------------

    async def get(self, key: str) -> Snapshot | None:
        if self.degraded:
            async with self._write_back:
                if self._memory is not None:
                    return await self._local_get(self._memory, key)
        try:
            raw = await self._call(self._commands.execute, "getex", self.key_prefix + key, px=self._ttl_ms)
        except StoreUnavailable:
            memory = self._degrade()
            return await self._local_get(memory, key)
        except redis_errors.ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                raise CorruptSnapshot(key, "not a string value") from None
            raise
        return None if raw is None else decode_snapshot(key, raw)

    async def save(self, key: str, data: bytes, *, version: int) -> int:
        if version < 0:
            raise ValueError("version must be 0 or more")
        if self.degraded:
            async with self._write_back:
                if self._memory is not None:
                    return await self._local_save(self._memory, key, data, version)
        try:
            return await self._compare_and_set(key, data, expected=version, new=version + 1)
        except StoreUnavailable:
            memory = self._degrade()
            return await self._local_save(memory, key, data, version)

    async def delete(self, key: str) -> None:
        if self.degraded:
            async with self._write_back:
                if self._memory is not None:
                    return await self._local_delete(self._memory, key)
        try:
            await self._call(self._commands.execute, "delete", self.key_prefix + key)
        except StoreUnavailable:
            await self._local_delete(self._degrade(), key)

    async def claim(self, token: str, *, ttl: float) -> bool:
        """Taken with a time to live, by a script that knows its own earlier try (see
        ``CLAIM_SCRIPT``); while degraded, this instance's memory decides."""
        if self.degraded:
            async with self._write_back:
                if self._memory is not None:
                    return await self._memory.claim(token, ttl=ttl)
        try:
            args = [os.urandom(8).hex(), max(1, int(ttl * 1000))]  # one token for every try of this claim
            taken = await self._call(self._commands.run_script, self._claim, [self._claim_prefix + token], args)
        except StoreUnavailable:
            return await self._degrade().claim(token, ttl=ttl)
        return bool(taken)

    async def list(self) -> list[str]:
        """The keys under the prefix (SCAN; on a Cluster, over every master). While degraded,
        only the keys written in memory."""
        if self.degraded:
            async with self._write_back:
                if self._memory is not None:
                    return await self._memory.list()
        try:
            keys: list[str] = await self._call(self._scan)
            return keys
        except StoreUnavailable:
            return await self._degrade().list()

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis answers (degraded or not: readiness
        reports an outage even while the memory fallback hides it from actions). It does not
        wait behind the store's own commands: a broadcast's crowd of commits would otherwise
        hold readiness past its timeout while Redis answers (the pool keeps a connection spare)."""
        await self._call(self.client.ping)

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None
        if self._memory is not None:
            await self._memory.close()
        if self._close_client:
            await close_client(self.client)

    # -- Redis ----------------------------------------------------------------------------

    async def _call(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``command`` with the store's retries; StoreUnavailable when they run out."""
        for attempt in range(self.max_retries + 1):
            try:
                return await command(*args, **kwargs)
            except MISCONFIGURED:
                raise  # a wrong password is no outage: neither retried nor hidden by the fallback
            except RETRYABLE as exc:
                error = exc
                if attempt < self.max_retries:
                    await asyncio.sleep(self.retry_delay)
        raise StoreUnavailable(f"Redis ({self._name}) is unreachable: {error!r}") from error

    async def _compare_and_set(self, key: str, data: bytes, *, expected: int, new: int) -> int:
        args = [expected, data, self._ttl_ms, new, os.urandom(8).hex()]
        done, version = await self._call(self._commands.run_script, self._save, [self.key_prefix + key], args)
        if not done:
            raise StaleVersion(key, expected)
        return int(version)

    async def _scan(self) -> builtins.list[str]:
        pattern = _escape_glob(self.key_prefix) + "*"
        start = len(self.key_prefix)
        async with self._commands.slots:
            keys = [raw[start:].decode() async for raw in self.client.scan_iter(match=pattern, count=1000)]
        return sorted(set(keys))  # a cluster rescans a slot that moves during the scan

    # -- degraded mode --------------------------------------------------------------------

    def _degrade(self) -> MemorySessionStore:
        """Enter degraded mode (if allowed and not yet in it); StoreUnavailable if not allowed."""
        if not self.fallback_to_memory:
            raise StoreUnavailable(f"Redis ({self._name}) is unreachable")
        if self._memory is None:
            logger.warning("Redis (%s) is unreachable: sessions are served from memory until it returns", self._name)
            self._memory = MemorySessionStore(ttl=self.ttl.total_seconds())
            self._recovery = asyncio.get_running_loop().create_task(self._recover())
        return self._memory

    async def _local_get(self, memory: MemorySessionStore, key: str) -> Snapshot | None:
        snapshot = await memory.get(key)
        if snapshot is None:
            return None
        return Snapshot(snapshot.data, self._offset[key] + snapshot.version)

    async def _local_save(self, memory: MemorySessionStore, key: str, data: bytes, version: int) -> int:
        # The first write of a key in an outage is accepted on trust (Redis cannot be asked)
        # and checked at write-back against the version it started from (its base).
        if key not in self._base:
            self._base[key] = self._offset[key] = version
        offset = self._offset[key]
        current = await memory.get(key)
        if version - offset != (current.version if current is not None else 0):
            raise StaleVersion(key, version)
        return offset + await memory.save(key, data, version=version - offset)

    async def _local_delete(self, memory: MemorySessionStore, key: str) -> None:
        self._base.setdefault(key, 0)
        self._offset[key] = 0  # a deleted group starts again from version 0
        await memory.delete(key)

    async def _recover(self) -> None:
        """Probe Redis until it answers, then write back and leave degraded mode."""
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.client.ping()  # like readiness's, not in the commands' turn
            except RETRYABLE:
                continue
            async with self._write_back:
                if await self._write_back_all():
                    break
        logger.warning("Redis (%s) is reachable again: the session store left degraded mode", self._name)

    async def _write_back_all(self) -> bool:
        """Write back every key of the outage; False if Redis failed again (the keys not yet
        written stay in memory)."""
        memory = self._memory
        assert memory is not None
        written = conflicts = 0
        for key, base in list(self._base.items()):
            snapshot = await memory.get(key)
            try:
                if snapshot is None:  # deleted (or expired) during the outage
                    found = await self._commands.run_script(self._delete_if, [self.key_prefix + key], [base])
                    conflict = int(found) != base
                else:
                    new = max(self._offset[key] + snapshot.version, base + 1)  # versions never go back
                    try:
                        await self._compare_and_set(key, snapshot.data, expected=base, new=new)
                        conflict = False
                    except StaleVersion:
                        conflict = True
            except RETRYABLE:
                return False
            if conflict:
                conflicts += 1
                logger.warning(
                    "session %r changed in Redis during the outage: its local change is dropped (Redis wins)", key
                )
                for overruled in self.overruled:
                    overruled(key)
            else:
                written += 1
            del self._base[key], self._offset[key]
            await memory.delete(key)
        self._memory = None
        self._recovery = None
        await memory.close()
        logger.info("session store write-back: %d written, %d dropped (Redis had moved on)", written, conflicts)
        return True


def _escape_glob(text: str) -> str:
    """``text`` with the glob characters of SCAN MATCH escaped."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def from_url(url: str) -> Backend:
    """The Redis backend a URL names: ``redis://``, ``rediss://``, ``redis+sentinel://``,
    ``redis+cluster://`` (see :mod:`livetemplate.backends.redis_clients`). The store and the
    broadcaster each get their own client and close it."""
    config = parse_url(url)
    masked = mask_url(url)
    store = RedisSessionStore(create_client(config), close_client=True, name=masked, **config.store_options)
    broadcaster = RedisBroadcaster(create_client(config), close_client=True, name=masked, **config.broadcaster_options)
    return Backend(store, broadcaster)
