"""A job that runs every few seconds in the background: started on first use, stopped by
:meth:`Periodic.stop`, restarted by the next use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from .ops.logs import get_logger

__all__ = ["Periodic"]

logger = get_logger(__name__)


class Periodic:
    """Calls ``job`` every ``interval`` seconds while started; a failing call is logged."""

    __slots__ = ("_task", "interval", "job")

    def __init__(self, job: Callable[[], object], interval: float) -> None:
        self.job = job
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start, if not running (needs a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.job()
            except Exception:
                logger.exception("periodic job %r failed", self.job)
