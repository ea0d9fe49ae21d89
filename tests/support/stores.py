"""A session store of the tests' own, for checking what the runtime asks of a store."""

from __future__ import annotations

from livetemplate import Snapshot, StaleVersion, StoreUnavailable


class RecordingStore:
    """A session store of our own, recording calls (the SessionStore protocol)."""

    def __init__(self, fail_saves: bool = False) -> None:
        self.data: dict[str, Snapshot] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_saves = fail_saves
        self.closed = False

    async def get(self, key: str) -> Snapshot | None:
        self.calls.append(("get", key))
        return self.data.get(key)

    async def save(self, key: str, data: bytes, *, version: int) -> int:
        self.calls.append(("save", key))
        if self.fail_saves:
            raise StoreUnavailable("store down")
        current = self.data.get(key)
        if (current.version if current else 0) != version:
            raise StaleVersion(key, version)
        self.data[key] = Snapshot(data, version + 1)
        return version + 1

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def claim(self, token: str, *, ttl: float) -> bool:
        self.calls.append(("claim", token))
        if self.fail_saves:
            raise StoreUnavailable("store down")
        return True

    async def list(self) -> list[str]:
        return list(self.data)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    def saves(self) -> int:
        return sum(1 for kind, _ in self.calls if kind == "save")
