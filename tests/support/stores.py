"""A session store of the tests' own, for checking what the runtime asks of a store."""

from __future__ import annotations


class RecordingStore:
    """A session store of our own, recording calls (the SessionStore protocol)."""

    def __init__(self, fail_sets: bool = False) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_sets = fail_sets
        self.closed = False

    async def get(self, group_id: str) -> bytes | None:
        self.calls.append(("get", group_id))
        return self.data.get(group_id)

    async def set(self, group_id: str, data: bytes) -> None:
        self.calls.append(("set", group_id))
        if self.fail_sets:
            raise ConnectionError("store down")
        self.data[group_id] = data

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
