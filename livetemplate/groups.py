"""Session groups: every browser (its ``livetemplate-id`` cookie) is a group whose tabs share
the persisted fields of the state.

This process keeps, per group it serves, the snapshot of those fields it last read or wrote
(bytes and store version) and the lock that serializes the group's changes here. A commit is
a compare-and-set on the store's version, so instances sharing a store never overwrite each
other; when another instance changed a group, :meth:`Groups.replace` takes the new snapshot
(or :meth:`Groups.invalidate` drops ours, to be read again on next use).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .ops.logs import get_logger
from .periodic import Periodic
from .primitives import Lock
from .sessions import CorruptSnapshot, SessionStore, Snapshot

__all__ = ["Group", "Groups"]

logger = get_logger(__name__)

#: Seconds a claim on a change holds: far longer than an instance takes to hear of the
#: change and run it (a message missed while disconnected is not replayed).
CLAIM_TTL = 60.0


class Group:
    """A session group in this process."""

    __slots__ = ("id", "key", "lock", "snapshot", "stale", "touched")

    def __init__(self, group_id: str, key: str, snapshot: Snapshot | None) -> None:
        self.id = group_id
        self.key = key
        self.snapshot = snapshot
        self.lock = Lock()
        self.stale = False  # another instance changed it: read the store again before use
        self.touched = time.monotonic()

    @property
    def version(self) -> int:
        """The store version of our snapshot (0: nothing stored)."""
        return self.snapshot.version if self.snapshot is not None else 0

    def __repr__(self) -> str:
        return f"<Group {self.id[:8]}... v{self.version}>"


class Groups:
    """The session groups this process serves, loaded from ``store`` on first use and
    forgotten when idle for ``idle_timeout`` seconds (their snapshot stays in the store).
    A state without persisted fields (``persisted=False``) never touches the store."""

    def __init__(self, store: SessionStore, namespace: str, *, persisted: bool, idle_timeout: float) -> None:
        self.store = store
        self.namespace = namespace
        self.persisted = persisted
        self.idle_timeout = idle_timeout
        #: Whether a group has open connections here (set by the hub); such groups stay.
        self.in_use: Callable[[str], bool] = lambda group_id: False
        self._groups: dict[str, Group] = {}
        self._sweeper = Periodic(self.sweep, min(60.0, idle_timeout))
        #: The store's save as a plain call, where it has one (the memory store's): see :meth:`commit_at_once`
        self._save_at_once: Callable[..., int] | None = (
            store.save_at_once if getattr(store, "saves_at_once", False) is True else None  # type: ignore[attr-defined]
        )
        #: Whether the store commits without waiting (:meth:`commit_at_once`). PERF: read by
        #: every recipient of a broadcast (an attribute, not a property)
        self.commits_at_once = self._save_at_once is not None

    def key(self, group_id: str) -> str:
        """The store key of a group: the app's namespace and the group id."""
        return f"{self.namespace}:{group_id}"

    @property
    def degraded(self) -> bool:
        """Whether the store serves from a fallback while its backend is away (a Redis store
        with ``fallback_to_memory``): it knows nothing of other instances' changes meanwhile."""
        return bool(getattr(self.store, "degraded", False))

    def find(self, group_id: str) -> Group | None:
        """The group if this process holds it."""
        return self._groups.get(group_id)

    def __len__(self) -> int:
        return len(self._groups)

    async def get(self, group_id: str) -> Group:
        """The group, read from the store unless this process holds it with a view open
        (whose channel brings the changes made elsewhere) and has heard of no missed change."""
        self._sweeper.start()
        group = self._groups.get(group_id)
        if group is None:
            snapshot = await self._read(self.key(group_id)) if self.persisted else None
            group = self._groups.get(group_id)  # another task may have loaded it meanwhile
            if group is None:
                group = self._groups[group_id] = Group(group_id, self.key(group_id), snapshot)
        elif group.stale or (self.persisted and not self.in_use(group_id)):
            # Without a view here the group's channel is not subscribed: nothing says when
            # another instance changes it, so what this process holds may be old.
            await self.reload(group)
        group.touched = time.monotonic()
        return group

    async def reload(self, group: Group) -> None:
        """Read the group's snapshot from the store again. When the store went back (it was
        flushed, or failed over to a replica that had not seen our writes), keep our fields
        at the store's version: the next commit writes them back. A store that is
        ``degraded`` (serving from memory while its backend is away) and does not hold the
        group leaves ours as it is, version included: the write-back compares against it."""
        group.stale = False
        try:
            snapshot = await self._read(group.key)
        except BaseException:  # not read (a store outage): read it again at its next use
            group.stale = True
            raise
        if snapshot is None and self.degraded:
            return  # a store serving from memory while it is away does not know the group: not lost
        if snapshot is None or snapshot.version < group.version:
            version = snapshot.version if snapshot is not None else 0
            if group.snapshot is not None:
                logger.warning(
                    "session store lost group %s (v%d, ours v%d): keeping ours", group.id, version, group.version
                )
                group.snapshot = Snapshot(group.snapshot.data, version)
            return
        group.snapshot = snapshot

    async def _read(self, key: str) -> Snapshot | None:
        """The stored snapshot; a value that is not one starts the group afresh (logged)."""
        try:
            return await self.store.get(key)
        except CorruptSnapshot as exc:
            logger.error("%s: the session starts afresh", exc)
            return None

    async def commit(self, group: Group, data: bytes, base: Snapshot | None) -> Snapshot:
        """Store ``data`` as the group's persisted fields if the store still holds ``base``
        (the snapshot the change was made on; None: nothing stored); raises
        :class:`~livetemplate.sessions.StaleVersion` when another instance wrote since,
        :class:`~livetemplate.sessions.StoreUnavailable` on an outage."""
        version = await self.store.save(group.key, data, version=base.version if base is not None else 0)
        return self._committed(group, data, version)

    def commit_at_once(self, group: Group, data: bytes, base: Snapshot | None) -> Snapshot:
        """:meth:`commit` as a plain call, where the store :attr:`commits_at_once`."""
        assert self._save_at_once is not None
        version = self._save_at_once(group.key, data, version=base.version if base is not None else 0)
        return self._committed(group, data, version)

    def _committed(self, group: Group, data: bytes, version: int) -> Snapshot:
        snapshot = Snapshot(data, version)
        if version > group.version:  # a newer commit may have been heard of while saving
            group.snapshot = snapshot
        return snapshot

    async def claim(self, group: Group, change: str) -> bool:
        """Whether this instance is the one to commit ``change`` (an id that every instance
        making the change knows, such as a topic message's) to the group's persisted fields;
        raises :class:`~livetemplate.sessions.StoreUnavailable` on an outage."""
        return await self.store.claim(f"{group.key}:{change}", ttl=CLAIM_TTL)

    def replace(self, group_id: str, snapshot: Snapshot) -> Group | None:
        """Take a snapshot another instance committed, if it is newer than ours; returns
        the group when it changed."""
        group = self._groups.get(group_id)
        if group is None or snapshot.version <= group.version:
            return None
        group.snapshot = snapshot
        group.stale = False
        return group

    def overrule(self, key: str) -> Group | None:
        """The store dropped this process's change of the group stored under ``key`` (another
        instance's won): forget our snapshot, so that the next read takes the store's as it
        is, even at a lower version than ours. The group, if this process holds it."""
        namespace = f"{self.namespace}:"
        group = self._groups.get(key[len(namespace) :]) if key.startswith(namespace) else None
        if group is not None:
            group.snapshot = None
            group.stale = True
        return group

    def invalidate(self, group_id: str) -> None:
        """Another instance changed the group: read it again before its next use."""
        group = self._groups.get(group_id)
        if group is not None:
            group.stale = True

    def invalidate_all(self) -> None:
        """Messages from other instances may have been missed: read every group again."""
        for group in self._groups.values():
            group.stale = True

    def sweep(self, in_use: Callable[[str], bool] | None = None) -> int:
        """Forget idle groups that are not in use and not locked; returns how many."""
        in_use = in_use or self.in_use
        deadline = time.monotonic() - self.idle_timeout
        idle = [
            gid
            for gid, group in self._groups.items()
            if group.touched < deadline and not group.lock.locked() and not in_use(gid)
        ]
        for gid in idle:
            del self._groups[gid]
        return len(idle)

    async def close(self) -> None:
        await self._sweeper.stop()
