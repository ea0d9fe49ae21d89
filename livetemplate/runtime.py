"""The parts of a mounted app, wired together by :class:`~livetemplate.app.LiveApp`: what
its transports use to serve a request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .groups import Groups
from .hub import Hub
from .options import Options
from .rendering import Pipeline
from .runner import Runner

__all__ = ["Closable", "Runtime"]


class Closable(Protocol):
    """An open connection the app can close when it shuts down."""

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass(eq=False)
class Runtime:
    """One mounted app's options, session groups, action runner, rendering pipeline and hub."""

    options: Options
    groups: Groups
    runner: Runner
    pipeline: Pipeline
    hub: Hub
    capabilities: Sequence[str] = ()
    connections: set[Closable] = field(default_factory=set)
    closing: bool = False
