"""The session store interface: where the persisted state of each session group lives.

A store holds, per key (an app's namespace and a group id), the group's persisted fields as
opaque bytes (MessagePack, written and validated by the state's :class:`~livetemplate.state.StateSpec`)
and a version that grows by one with every write. Writes are compare-and-set on that version,
so two instances serving one group never overwrite each other's changes: the loser sees
:class:`StaleVersion`, reloads and runs its action again.

Implementations live in :mod:`livetemplate.backends`: the embedded memory store and Redis.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["CorruptSnapshot", "SessionStore", "Snapshot", "StaleVersion", "StoreUnavailable"]


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """A group's persisted fields as stored, and the version they were stored under (1 for
    the first write)."""

    # PERF: never tracked by the garbage collector (bytes and an int make no cycle): every
    # commit replaces its group's, and a tracked one would be walked by every full collection
    data: bytes
    version: int


class StaleVersion(Exception):
    """A compare-and-set found another version than the one it expected: another instance
    (or task) wrote the group first."""

    def __init__(self, key: str, expected: int) -> None:
        self.key = key
        self.expected = expected
        super().__init__(f"session {key!r} is no longer at version {expected}")


class CorruptSnapshot(ValueError):
    """The value stored under a session key is not a snapshot of this store (another format,
    another type, damaged bytes). Saving with ``version=0`` replaces it."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(f"session {key!r} holds no valid snapshot: {reason}")


class StoreUnavailable(Exception):
    """The store cannot be reached (a network failure, a failover in progress)."""


@runtime_checkable
class SessionStore(Protocol):
    """Persisted state of session groups: versioned bytes per key.

    A store whose snapshots expire when not used says so with a ``ttl`` attribute (seconds,
    or a :class:`~datetime.timedelta`), and renews a snapshot's time to live when it is read:
    the runtime then reads the groups with open tabs again every third of it, so that an
    open tab's session never expires. A store that can serve from a fallback while its
    backend is away says so with a ``degraded`` attribute: a group it does not hold then
    is unknown, not lost, and the runtime keeps its own copy and version."""

    async def get(self, key: str) -> Snapshot | None:
        """The stored snapshot (refreshing its time to live), or None."""

    async def save(self, key: str, data: bytes, *, version: int) -> int:
        """Store ``data`` if the stored version is ``version`` (0: nothing stored yet) and
        return the new version; raise :class:`StaleVersion` otherwise."""

    async def delete(self, key: str) -> None:
        """Forget the group."""

    async def claim(self, token: str, *, ttl: float) -> bool:
        """Take ``token`` for ``ttl`` seconds: True for the first to take it (of every instance
        sharing the store), False while it is taken. A change that each instance would make
        (a topic action changing a session's persisted fields) is committed by the instance
        that claims it only."""

    async def list(self) -> list[str]:
        """The keys of the stored groups."""

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` if the store cannot be reached (readiness checks)."""

    async def close(self) -> None:
        """Release connections and background tasks."""
