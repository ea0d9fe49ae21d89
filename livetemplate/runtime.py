"""The parts of a mounted app, wired together by :class:`~livetemplate.app.LiveApp`: what
its transports use to serve a request, and the open connections they hold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .groups import Groups
from .hub import Hub
from .ops.heap import heap
from .ops.metrics import Metrics
from .options import Options
from .rendering import Pipeline
from .request import SessionIds
from .runner import Runner
from .uploads import Uploads

__all__ = ["Connection", "Runtime"]


class Connection(Protocol):
    """An open connection the app can drain and close when it shuts down."""

    async def drain(self) -> None: ...

    async def close(self, code: int = 1000, reason: str = "", *, flush: float = 1.0) -> None: ...


@dataclass(eq=False)
class Runtime:
    """One mounted app's options, session ids, groups, runner, rendering pipeline, hub and
    metrics, and the connections it holds open (at most ``max_connections``, at most
    ``max_connections_per_group`` per session group)."""

    options: Options
    ids: SessionIds
    groups: Groups
    runner: Runner
    pipeline: Pipeline
    hub: Hub
    metrics: Metrics
    capabilities: Sequence[str] = ()
    uploads: Uploads | None = None
    connections: set[Connection] = field(default_factory=set)
    per_group: dict[str, int] = field(default_factory=dict)
    closing: bool = False

    def admit(self, connection: Connection, group_id: str) -> bool:
        """Count a new connection of ``group_id`` in, unless its group is at its limit."""
        limit = self.options.max_connections_per_group
        count = self.per_group.get(group_id, 0)
        if limit is not None and count >= limit:
            return False
        self.per_group[group_id] = count + 1
        self.connections.add(connection)
        self.metrics.connections_active.inc()
        heap.connection_opened()
        return True

    def release(self, connection: Connection, group_id: str) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.metrics.connections_active.dec()
        heap.connection_closed()
        count = self.per_group.pop(group_id, 1) - 1
        if count > 0:
            self.per_group[group_id] = count
