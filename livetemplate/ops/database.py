"""A ready-made health check for a PostgreSQL connection pool: asyncpg's ``Pool`` or a
SQLAlchemy ``AsyncEngine``.

``health.register_check("database", DatabaseCheck(pool))`` runs ``SELECT 1`` on a connection of
the pool under a timeout and reports the pool's figures, as the scaling guide's Go check does:
open, in use, idle and maximum connections, the utilization, and a warning above 80%.
Utilization is connections in use over the maximum: asyncpg opens ``min_size`` connections up
front, so open over maximum (the guide's ratio, apt for Go's lazily opened pool) would read
100% on an idle pool. Neither driver counts waits for a connection, so no wait figures are
reported; an exhausted pool shows as a check that waits, then times out, with 100% utilization.

With a ``registry``, the check also sets the gauges ``db_connections_open``,
``db_connections_in_use``, ``db_connections_idle`` and ``db_connections_max`` each time it runs.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["DatabaseCheck", "PoolStats"]

HIGH_UTILIZATION = "connection pool utilization high"

#: The gauges a registry receives, in the order of :meth:`DatabaseCheck.figures`' values.
_GAUGES = (
    ("db_connections_open", "Open database connections"),
    ("db_connections_in_use", "Database connections in use"),
    ("db_connections_idle", "Idle database connections"),
    ("db_connections_max", "Most connections the database pool opens (0: unbounded)"),
)


@dataclass(frozen=True)
class PoolStats:
    """A pool's connections at one moment; ``max`` is None for an unbounded pool."""

    open: int
    in_use: int
    idle: int
    max: int | None

    @property
    def utilization(self) -> float | None:
        """Connections in use, in percent of the maximum."""
        if not self.max:
            return None
        return round(self.in_use / self.max * 100, 1)


class _Pool(Protocol):
    async def ping(self) -> None: ...

    def stats(self) -> PoolStats | None: ...


class _AsyncpgPool:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> None:
        async with self.pool.acquire() as connection:
            await connection.fetchval("SELECT 1")

    def stats(self) -> PoolStats:
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        return PoolStats(open=size, in_use=size - idle, idle=idle, max=self.pool.get_max_size())


class _SQLAlchemyEngine:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    def stats(self) -> PoolStats | None:
        from sqlalchemy.pool import QueuePool

        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return None  # NullPool, StaticPool...: no counts to report
        idle, in_use = pool.checkedin(), pool.checkedout()
        # NOTE: the pool keeps max_overflow without a public accessor; -1 means unbounded.
        overflow = getattr(pool, "_max_overflow", -1)
        bound = pool.size() + overflow if pool.size() > 0 and overflow >= 0 else None
        return PoolStats(open=idle + in_use, in_use=in_use, idle=idle, max=bound)


def _loaded(module: str, name: str) -> type | None:
    """A class of an optional library if that library was imported (an instance of it can
    exist only then), without importing it."""
    loaded = sys.modules.get(module)
    return getattr(loaded, name, None) if loaded is not None else None


def _is_engine(pool: object) -> TypeGuard[AsyncEngine]:
    engine = _loaded("sqlalchemy.ext.asyncio", "AsyncEngine")
    return engine is not None and isinstance(pool, engine)


def _is_asyncpg_pool(pool: object) -> TypeGuard[asyncpg.Pool]:
    cls = _loaded("asyncpg.pool", "Pool")
    return cls is not None and isinstance(pool, cls)


class DatabaseCheck:
    """``SELECT 1`` under ``timeout`` seconds on a connection of ``pool`` (an asyncpg ``Pool``
    or a SQLAlchemy ``AsyncEngine``), reporting the pool's figures."""

    def __init__(
        self,
        pool: asyncpg.Pool | AsyncEngine,
        *,
        timeout: float = 3.0,
        warning_threshold: float = 80.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if _is_engine(pool):
            self._pool: _Pool = _SQLAlchemyEngine(pool)
        elif _is_asyncpg_pool(pool):
            self._pool = _AsyncpgPool(pool)
        else:
            raise TypeError(f"DatabaseCheck takes an asyncpg Pool or a SQLAlchemy AsyncEngine, not {type(pool)!r}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.warning_threshold = warning_threshold
        self._gauges = [
            Gauge(name, help, registry=registry, multiprocess_mode="livesum")
            for name, help in _GAUGES
            if registry is not None
        ]

    async def __call__(self) -> dict[str, Any]:
        """Raise if the database does not answer ``SELECT 1`` in time; else the figures."""
        async with asyncio.timeout(self.timeout):
            await self._pool.ping()
        return self.figures()

    def stats(self) -> PoolStats | None:
        """The pool's connections now (None for a SQLAlchemy pool that keeps no counts)."""
        return self._pool.stats()

    def figures(self) -> dict[str, Any]:
        """The figures of the health report, as the scaling guide's Go check names them; also
        sets the gauges."""
        stats = self.stats()
        if stats is None:
            return {}
        for gauge, value in zip(self._gauges, (stats.open, stats.in_use, stats.idle, stats.max or 0), strict=False):
            gauge.set(value)
        pool: dict[str, Any] = {"open_connections": stats.open, "in_use": stats.in_use, "idle": stats.idle}
        if stats.max is not None:
            pool["max_open"] = stats.max
        figures: dict[str, Any] = {"connection_pool": pool}
        utilization = stats.utilization
        if utilization is not None:
            figures["pool_utilization_percent"] = utilization
            if utilization > self.warning_threshold:
                figures["warning"] = HIGH_UTILIZATION
        return figures
