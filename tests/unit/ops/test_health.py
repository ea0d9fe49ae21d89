"""HealthChecks: liveness never looks at dependencies; readiness runs every check concurrently
under its timeout and fails on any failure or while draining; the report carries latencies,
figures and counts, and never a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from livetemplate import InProcessBroadcaster, MemorySessionStore, StoreUnavailable
from livetemplate.ops.health import HealthChecks

pytestmark = pytest.mark.anyio

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def decode(answer: tuple[int, bytes]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    return status, json.loads(body)


async def passing() -> None:
    return None


async def failing() -> None:
    raise ConnectionError("connection refused")


async def hanging() -> None:
    await asyncio.Event().wait()


class Counting:
    """A check that counts its runs and can be told to fail."""

    def __init__(self) -> None:
        self.runs = 0
        self.error: Exception | None = None

    async def __call__(self) -> dict[str, int]:
        self.runs += 1
        await asyncio.sleep(0.01)
        if self.error is not None:
            raise self.error
        return {"runs": self.runs}


class PingingBroadcaster(InProcessBroadcaster):
    def __init__(self) -> None:
        super().__init__()
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1


class UnreachableStore(MemorySessionStore):
    async def ping(self) -> None:
        raise StoreUnavailable("redis://:hunter2@cache:6379/0 is unreachable")


async def test_live_answers_without_checking_anything() -> None:
    health = HealthChecks()
    check = Counting()
    health.register_check("database", check)
    health.draining = True
    status, body = decode(await health.live())
    assert status == 200
    assert body["status"] == "healthy"
    assert RFC3339_UTC.match(body["timestamp"])
    assert check.runs == 0


async def test_ready_without_checks_is_ready() -> None:
    status, body = decode(await HealthChecks().ready())
    assert status == 200 and body["status"] == "healthy" and body["checks"] == {}


async def test_ready_passes_when_every_check_passes() -> None:
    health = HealthChecks()
    health.register_check("a", passing)
    health.register_check("b", Counting())
    status, body = decode(await health.ready())
    assert status == 200
    assert body["checks"] == {"a": {"status": "ok"}, "b": {"status": "ok"}}
    assert RFC3339_UTC.match(body["timestamp"]) and body["total_time_ms"] >= 0


async def test_one_failing_check_makes_the_app_unready() -> None:
    health = HealthChecks()
    health.register_check("a", passing)
    health.register_check("b", failing)
    status, body = decode(await health.ready())
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["b"] == {"status": "error", "error": "ConnectionError: connection refused"}


async def test_a_check_that_hangs_times_out() -> None:
    health = HealthChecks()
    health.register_check("slow", hanging, timeout=0.05)
    status, body = decode(await health.ready())
    assert status == 503
    assert body["checks"]["slow"] == {"status": "error", "error": "timed out after 0.05 s"}


async def test_checks_run_concurrently() -> None:
    """Each check waits for the other: both pass only if they run at the same time."""
    first, second = asyncio.Event(), asyncio.Event()

    async def a() -> None:
        first.set()
        await second.wait()

    async def b() -> None:
        second.set()
        await first.wait()

    health = HealthChecks()
    health.register_check("a", a, timeout=1)
    health.register_check("b", b, timeout=1)
    assert (await health.ready())[0] == 200


async def test_draining_answers_503_without_running_the_checks() -> None:
    health = HealthChecks()
    check = Counting()
    health.register_check("database", check)
    assert (await health.ready())[0] == 200
    health.draining = True
    status, body = decode(await health.ready())
    assert status == 503 and body["status"] == "draining"
    assert check.runs == 1
    status, body = decode(await health.report())
    assert status == 503 and body["status"] == "draining"
    assert body["checks"]["database"]["status"] == "ok"


async def test_report_has_latencies_figures_and_counts() -> None:
    health = HealthChecks(connections=lambda: 42, groups=lambda: 7)

    async def pool() -> dict[str, Any]:
        return {"connection_pool": {"in_use": 9, "max_open": 10}, "warning": "high", "status": "not mine"}

    health.register_check("database", pool)
    health.register_check("cache", passing)
    status, body = decode(await health.report())
    assert status == 200
    assert body["status"] == "healthy" and RFC3339_UTC.match(body["timestamp"])
    database = body["checks"]["database"]
    assert database["status"] == "ok"
    assert database["connection_pool"] == {"in_use": 9, "max_open": 10}
    assert database["warning"] == "high"
    assert database["latency_ms"] >= 0
    assert body["checks"]["cache"]["status"] == "ok"
    assert body["active_connections"] == 42 and body["active_groups"] == 7
    assert body["total_time_ms"] >= 0


async def test_report_of_a_failure_is_503_with_the_error() -> None:
    health = HealthChecks()
    health.register_check("database", failing)
    status, body = decode(await health.report())
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"]["database"]["error"] == "ConnectionError: connection refused"
    assert "active_connections" not in body


async def test_a_failed_check_that_knows_its_figures_reports_them() -> None:
    class Pool:
        async def __call__(self) -> None:
            raise ConnectionError("gone")

        def figures(self) -> dict[str, Any]:
            return {"pool_utilization_percent": 100.0}

    class Broken:
        async def __call__(self) -> None:
            raise ConnectionError("gone")

        def figures(self) -> dict[str, Any]:
            raise RuntimeError("no figures either")

    health = HealthChecks()
    health.register_check("database", Pool())
    health.register_check("other", Broken())
    _, body = decode(await health.report())
    assert body["checks"]["database"]["pool_utilization_percent"] == 100.0
    assert set(body["checks"]["other"]) == {"status", "error", "latency_ms"}


async def test_errors_are_short_and_keep_secrets() -> None:
    async def leaky() -> None:
        raise ConnectionError("cannot reach postgresql://app:hunter2@db:5432/app\n" + "detail " * 200)

    health = HealthChecks()
    health.register_check("database", leaky)
    health.register_check("silent", _raise(ConnectionResetError()))
    health.register_backends(UnreachableStore(), InProcessBroadcaster())
    status, raw = await health.report()
    assert status == 503 and b"hunter2" not in raw
    checks = json.loads(raw)["checks"]
    assert checks["database"]["error"] == "ConnectionError: cannot reach postgresql://app:[redacted]@db:5432/app"
    assert checks["silent"]["error"] == "ConnectionResetError"
    assert checks["session_store"]["error"].startswith("StoreUnavailable: redis://:[redacted]@cache")

    async def long() -> None:
        raise ValueError("x" * 1000)

    health = HealthChecks()
    health.register_check("long", long)
    _, body = decode(await health.ready())
    assert len(body["checks"]["long"]["error"]) == 200


def _raise(exc: Exception) -> Any:
    async def check() -> None:
        raise exc

    return check


async def test_a_check_must_return_figures_or_nothing() -> None:
    async def wrong() -> Any:
        return ["not", "figures"]

    async def unencodable() -> Any:
        return {"handle": object()}

    health = HealthChecks()
    health.register_check("wrong", wrong)
    health.register_check("unencodable", unencodable)
    status, body = decode(await health.report())
    assert status == 503
    assert body["checks"]["wrong"]["error"] == "TypeError: returned list, not a mapping of figures"
    assert body["checks"]["unencodable"]["error"].startswith("TypeError")


async def test_concurrent_requests_share_one_run() -> None:
    health = HealthChecks()
    check = Counting()
    health.register_check("database", check)
    answers = await asyncio.gather(*(health.ready() for _ in range(10)), health.report())
    assert {status for status, _ in answers} == {200}
    assert check.runs == 1
    await health.ready()
    assert check.runs == 2


async def test_a_cancelled_request_does_not_cancel_the_others() -> None:
    health = HealthChecks()
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)

    health.register_check("slow", slow)
    first = asyncio.ensure_future(health.ready())
    await started.wait()
    second = asyncio.ensure_future(health.ready())
    first.cancel()
    assert (await second)[0] == 200
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_built_in_checks_ping_the_store_and_the_broadcaster() -> None:
    health = HealthChecks()
    broadcaster = PingingBroadcaster()
    health.register_backends(MemorySessionStore(), broadcaster)
    assert health.names == ["session_store", "broadcaster"]
    assert (await health.ready())[0] == 200
    assert broadcaster.pings == 1

    health = HealthChecks()
    health.register_backends(UnreachableStore(), InProcessBroadcaster())
    assert health.names == ["session_store"]  # the in-process broadcaster has no ping
    assert (await health.ready())[0] == 503


async def test_registration_is_checked() -> None:
    health = HealthChecks()
    health.register_check("database", passing)
    with pytest.raises(ValueError, match="already registered"):
        health.register_check("database", passing)
    with pytest.raises(ValueError, match="non-empty name"):
        health.register_check("", passing)
    with pytest.raises(ValueError, match="timeout must be positive"):
        health.register_check("cache", passing, timeout=0)
    with pytest.raises(TypeError, match="async callable"):
        health.register_check("cache", "redis://localhost")  # type: ignore[arg-type]


async def test_metrics_record_each_run() -> None:
    registry = CollectorRegistry()
    health = HealthChecks(registry=registry)
    check = Counting()
    health.register_check("database", check)
    await health.ready()
    assert registry.get_sample_value("livetemplate_health_check_up", {"check": "database"}) == 1
    check.error = ConnectionError("down")
    await health.report()
    assert registry.get_sample_value("livetemplate_health_check_up", {"check": "database"}) == 0
    assert registry.get_sample_value("livetemplate_health_check_duration_seconds_count", {"check": "database"}) == 2


async def test_a_failure_and_the_recovery_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    health = HealthChecks()
    check = Counting()
    health.register_check("database", check)
    check.error = ConnectionError("down")
    with caplog.at_level(logging.INFO, "livetemplate.ops.health"):
        await health.ready()
        await health.ready()
        check.error = None
        await health.ready()
        await health.ready()
    messages = [record.getMessage() for record in caplog.records if record.name == "livetemplate.ops.health"]
    assert messages == ["health check database failing: ConnectionError: down", "health check database passing again"]
