"""DatabaseCheck against real PostgreSQL servers: the machine's, for the figures and a pool
driven to exhaustion, and one of the test's own for the scaling guide's drill (stop the
database: readiness 503 within 2 s; start it: 200 again), through asyncpg and SQLAlchemy."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from livetemplate.ops.database import HIGH_UTILIZATION, DatabaseCheck, PoolStats
from livetemplate.ops.health import HealthChecks

from .conftest import PostgresServer, postgres_server

pytestmark = pytest.mark.anyio

Pool = asyncpg.Pool | AsyncEngine


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


@asynccontextmanager
async def asyncpg_pool(url: str, size: int) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
    try:
        yield pool
    finally:
        pool.terminate()


@asynccontextmanager
async def sqlalchemy_engine(url: str, size: int) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(_sqlalchemy_url(url), pool_size=size // 2, max_overflow=size - size // 2)
    try:
        yield engine
    finally:
        await engine.dispose()


POOLS = {"asyncpg": asyncpg_pool, "sqlalchemy": sqlalchemy_engine}


@asynccontextmanager
async def hold(pool: Pool, count: int) -> AsyncIterator[None]:
    """Keep ``count`` connections of the pool checked out (and used)."""
    async with AsyncExitStack() as stack:
        for _ in range(count):
            if isinstance(pool, AsyncEngine):
                connection: AsyncConnection = await stack.enter_async_context(pool.connect())
                await connection.exec_driver_sql("SELECT 1")
            else:
                held = await stack.enter_async_context(pool.acquire())
                await held.fetchval("SELECT 1")
        yield


async def _within(deadline: float, probe: Callable[[], Awaitable[int]], expected: int) -> tuple[int, float]:
    """Probe until it returns ``expected`` or ``deadline`` seconds pass; the last status and
    the time it took."""
    started = time.monotonic()
    while True:
        status = await probe()
        elapsed = time.monotonic() - started
        if status == expected or elapsed > deadline:
            return status, elapsed
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", POOLS)
async def test_figures_of_an_idle_pool(kind: str, postgres_url: str) -> None:
    async with POOLS[kind](postgres_url, 10) as pool:
        check = DatabaseCheck(pool)
        figures = await check()
        connections = figures["connection_pool"]
        assert connections["max_open"] == 10
        assert connections["in_use"] == 0
        assert connections["open_connections"] == connections["idle"] >= 1
        assert figures["pool_utilization_percent"] == 0
        assert "warning" not in figures
        assert check.stats() == PoolStats(
            open=connections["open_connections"], in_use=0, idle=connections["idle"], max=10
        )


@pytest.mark.parametrize("kind", POOLS)
async def test_a_busy_pool_shows_its_utilization_and_a_warning(kind: str, postgres_url: str) -> None:
    async with POOLS[kind](postgres_url, 10) as pool, hold(pool, 9):
        figures = await DatabaseCheck(pool)()
        assert figures["connection_pool"]["in_use"] == 9
        assert figures["pool_utilization_percent"] == 90
        assert figures["warning"] == HIGH_UTILIZATION


@pytest.mark.parametrize("kind", POOLS)
async def test_an_exhausted_pool_fails_readiness_and_reports_why(kind: str, postgres_url: str) -> None:
    async with POOLS[kind](postgres_url, 4) as pool:
        health = HealthChecks()
        health.register_check("database", DatabaseCheck(pool), timeout=0.3)
        assert (await health.ready())[0] == 200
        async with hold(pool, 4):
            status, body = await health.ready()
            assert status == 503
            assert json.loads(body)["checks"]["database"] == {"status": "error", "error": "timed out after 0.3 s"}
            status, body = await health.report()
            database = json.loads(body)["checks"]["database"]
            assert status == 503
            assert database["status"] == "error"
            assert database["pool_utilization_percent"] == 100
            assert database["connection_pool"]["in_use"] == 4
            assert database["warning"] == HIGH_UTILIZATION
        assert (await health.ready())[0] == 200


@pytest.mark.parametrize("kind", POOLS)
async def test_gauges_follow_the_pool(kind: str, postgres_url: str) -> None:
    registry = CollectorRegistry()
    async with POOLS[kind](postgres_url, 6) as pool:
        check = DatabaseCheck(pool, registry=registry)
        async with hold(pool, 2):
            await check()
        value = registry.get_sample_value
        assert value("db_connections_in_use") == 2
        assert value("db_connections_max") == 6
        assert value("db_connections_open") == value("db_connections_idle") + 2
        await check()
        assert value("db_connections_in_use") == 0


async def test_a_sqlalchemy_pool_without_counts_reports_no_figures(postgres_url: str) -> None:
    engine = create_async_engine(_sqlalchemy_url(postgres_url), poolclass=NullPool)
    try:
        check = DatabaseCheck(engine, registry=CollectorRegistry())
        assert await check() == {}
        assert check.stats() is None
    finally:
        await engine.dispose()


async def test_an_unbounded_sqlalchemy_pool_has_no_maximum(postgres_url: str) -> None:
    engine = create_async_engine(_sqlalchemy_url(postgres_url), pool_size=2, max_overflow=-1)
    try:
        figures = await DatabaseCheck(engine)()
        assert "max_open" not in figures["connection_pool"]
        assert "pool_utilization_percent" not in figures
    finally:
        await engine.dispose()


async def test_the_check_has_a_timeout_of_its_own(postgres_url: str) -> None:
    async with asyncpg_pool(postgres_url, 1) as pool, hold(pool, 1):
        with pytest.raises(TimeoutError):
            await DatabaseCheck(pool, timeout=0.1)()


def test_only_pools_and_engines_are_checked() -> None:
    with pytest.raises(TypeError, match="asyncpg Pool or a SQLAlchemy AsyncEngine"):
        DatabaseCheck("postgresql://localhost/test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        DatabaseCheck(create_async_engine("postgresql+asyncpg://localhost/test"), timeout=0)


@pytest.mark.parametrize("kind", POOLS)
async def test_drill_database_stopped_then_started(kind: str, own_postgres: PostgresServer) -> None:
    """The scaling guide's drill: stop the database, readiness answers 503 within 2 s and the
    report says which check failed; start it, readiness answers 200 again."""
    async with POOLS[kind](own_postgres.url, 4) as pool:
        health = HealthChecks()
        health.register_check("database", DatabaseCheck(pool), timeout=1.0)

        async def ready() -> int:
            return (await health.ready())[0]

        assert await ready() == 200

        own_postgres.stop()
        status, elapsed = await _within(2.0, ready, 503)
        assert status == 503, f"still ready {elapsed:.1f} s after the database stopped"
        status, body = await health.report()
        report: dict[str, Any] = json.loads(body)
        assert status == 503 and report["status"] == "unhealthy"
        assert report["checks"]["database"]["status"] == "error"
        assert report["checks"]["database"]["error"]

        own_postgres.start()
        status, elapsed = await _within(10.0, ready, 200)
        assert status == 200, f"not ready {elapsed:.1f} s after the database started"


def test_the_own_server_is_removed_when_a_test_fails() -> None:
    with pytest.raises(RuntimeError, match="a failing test"), postgres_server() as server:
        assert server.running()
        raise RuntimeError("a failing test")
    assert not server.directory.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
