"""A session store of the tests' own, for checking what the runtime asks of a store."""

from __future__ import annotations

from livetemplate.sessions import Snapshot, StaleVersion


class RecordingStore:
    """A session store of our own, recording calls (the SessionStore protocol)."""

    def __init__(self, fail_sets: bool = False) -> None:
        self.data: dict[str, Snapshot] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_sets = fail_sets
        self.closed = False

    async def get(self, group_id: str) -> Snapshot | None:
        self.calls.append(("get", group_id))
        return self.data.get(group_id)

    async def save(self, group_id: str, data: bytes, *, version: int) -> int:
        self.calls.append(("set", group_id))
        if self.fail_sets:
            raise ConnectionError("store down")
        current = self.data.get(group_id)
        if (current.version if current is not None else 0) != version:
            raise StaleVersion(group_id, version)
        self.data[group_id] = Snapshot(bytes(data), version + 1)
        return version + 1

    async def delete(self, group_id: str) -> None:
        self.data.pop(group_id, None)

    async def list(self) -> list[str]:
        return list(self.data)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    def sets(self) -> int:
        return sum(1 for kind, _ in self.calls if kind == "set")
