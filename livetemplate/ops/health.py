"""Health checks, without ASGI: liveness, readiness and a detailed report.

Each of :meth:`HealthChecks.live`, :meth:`~HealthChecks.ready` and :meth:`~HealthChecks.report`
returns ``(status_code, json_body)``; the app's routes send them as ``application/json``.

* live (``/health/live``): 200 while the process answers; no dependency is checked, so a database
  outage never makes an orchestrator restart the app.
* ready (``/health/ready``): every registered check, concurrently, each under its own timeout;
  503 if one fails or times out, and at once while the app is draining.
* report (``/health``): the same checks with each one's latency and figures (pool statistics),
  the active connections and groups; 503 unless healthy. For monitoring, not for probes.

A check is an async callable that returns ``None`` or a mapping of figures and raises when the
dependency is unusable. A check object with a ``figures()`` method (see :class:`ReportsFigures`)
has those figures reported even when it fails or times out. Concurrent requests share one run
of the checks, so a flood of probes does not become a flood of queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec
from prometheus_client import CollectorRegistry, Gauge, Histogram

from .logs import get_logger, redact

__all__ = ["CONTENT_TYPE", "Check", "HealthChecks", "ReportsFigures"]

logger = get_logger(__name__)

CONTENT_TYPE = "application/json"

Figures = Mapping[str, Any]
Check = Callable[[], Awaitable[Figures | None]]

OK = 200
UNAVAILABLE = 503

#: Keys of a check's entry in the report that its figures cannot replace.
_RESERVED = frozenset({"status", "error", "latency_ms"})
_MAX_ERROR = 200
_LATENCY = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@runtime_checkable
class ReportsFigures(Protocol):
    """A check that can tell its figures without I/O (a pool's statistics), so that they are
    reported even when the check itself fails or times out."""

    def figures(self) -> Figures: ...


@dataclass(frozen=True)
class _Registered:
    name: str
    check: Check
    timeout: float


@dataclass(frozen=True)
class _Result:
    name: str
    error: str | None
    latency: float
    figures: Figures = field(default_factory=dict)

    def entry(self, *, detailed: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": "ok" if self.error is None else "error"}
        if self.error is not None:
            entry["error"] = self.error
        if detailed:
            entry["latency_ms"] = round(self.latency * 1000, 3)
            entry.update((key, value) for key, value in self.figures.items() if key not in _RESERVED)
        return entry


class HealthChecks:
    """The registered checks of one app and the three health answers.

    ``connections`` and ``groups`` (callables returning counts) are reported by :meth:`report`.
    With a ``registry``, each run records ``livetemplate_health_check_duration_seconds`` and
    ``livetemplate_health_check_up`` (1 or 0), labelled by check. Set :attr:`draining` when
    the app starts shutting down: readiness answers 503 from then on.
    """

    def __init__(
        self,
        *,
        connections: Callable[[], int] | None = None,
        groups: Callable[[], int] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.draining = False
        self._connections = connections
        self._groups = groups
        self._checks: dict[str, _Registered] = {}
        self._running: asyncio.Future[list[_Result]] | None = None
        self._failing: set[str] = set()
        self._encoder = msgspec.json.Encoder()
        self._duration: Histogram | None = None
        self._up: Gauge | None = None
        if registry is not None:
            self._duration = Histogram(
                "livetemplate_health_check_duration_seconds",
                "Time a health check took",
                ["check"],
                registry=registry,
                buckets=_LATENCY,
            )
            self._up = Gauge(
                "livetemplate_health_check_up",
                "1 if the health check passed on its last run, else 0",
                ["check"],
                registry=registry,
                multiprocess_mode="livemin",
            )

    @property
    def names(self) -> list[str]:
        """The registered checks, in registration order."""
        return list(self._checks)

    def register_check(self, name: str, check: Check, *, timeout: float = 1.0) -> None:
        """Run ``check`` for readiness and the report, cancelled after ``timeout`` seconds."""
        if not name or not isinstance(name, str):
            raise ValueError("a health check needs a non-empty name")
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already registered")
        if not callable(check):
            raise TypeError(f"health check {name!r} must be an async callable, got {type(check).__name__}")
        if not timeout > 0:
            raise ValueError(f"health check {name!r}: timeout must be positive")
        self._checks[name] = _Registered(name, check, float(timeout))

    def register_backends(self, store: Any, broadcaster: Any, *, timeout: float = 1.0) -> None:
        """The built-in checks: ``session_store`` (``store.ping()``) and ``broadcaster``
        (its ``ping()``, if it has one)."""
        self.register_check("session_store", store.ping, timeout=timeout)
        ping = getattr(broadcaster, "ping", None)
        if callable(ping):
            self.register_check("broadcaster", ping, timeout=timeout)

    # -- the three answers ---------------------------------------------------------------------

    async def live(self) -> tuple[int, bytes]:
        """200 ``{status, timestamp}`` while the process answers."""
        return OK, self._encoder.encode({"status": "healthy", "timestamp": _timestamp()})

    async def ready(self) -> tuple[int, bytes]:
        """200 if every check passes; 503 on a failure, a timeout, or while draining."""
        if self.draining:
            return UNAVAILABLE, self._encoder.encode({"status": "draining", "timestamp": _timestamp()})
        started = time.perf_counter()
        results = await self._results()
        healthy = all(result.error is None for result in results)
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "timestamp": _timestamp(),
            "checks": {result.name: result.entry(detailed=False) for result in results},
            "total_time_ms": _ms(time.perf_counter() - started),
        }
        return (OK if healthy else UNAVAILABLE), self._encoder.encode(body)

    async def report(self) -> tuple[int, bytes]:
        """Every check with its status, error, latency and figures, the active connections and
        groups; 200 if healthy, else 503."""
        started = time.perf_counter()
        results = await self._results()
        healthy = all(result.error is None for result in results)
        status = "draining" if self.draining else "healthy" if healthy else "unhealthy"
        body: dict[str, Any] = {
            "status": status,
            "timestamp": _timestamp(),
            "checks": {result.name: result.entry(detailed=True) for result in results},
        }
        if self._connections is not None:
            body["active_connections"] = self._connections()
        if self._groups is not None:
            body["active_groups"] = self._groups()
        body["total_time_ms"] = _ms(time.perf_counter() - started)
        return (OK if status == "healthy" else UNAVAILABLE), self._encoder.encode(body)

    # -- running the checks ----------------------------------------------------------------------

    async def _results(self) -> list[_Result]:
        """The results of one run of every check, shared by the callers that arrive while it
        is in progress."""
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._run_all())
            running.add_done_callback(self._finished)
        return await asyncio.shield(running)

    def _finished(self, running: asyncio.Future[list[_Result]]) -> None:
        if self._running is running:
            self._running = None

    async def _run_all(self) -> list[_Result]:
        results = await asyncio.gather(*(self._run(registered) for registered in self._checks.values()))
        for result in results:
            self._record(result)
        return results

    async def _run(self, registered: _Registered) -> _Result:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(registered.timeout):
                figures = await registered.check()
            if figures is not None and not isinstance(figures, Mapping):
                raise TypeError(f"returned {type(figures).__name__}, not a mapping of figures")
            figures = msgspec.to_builtins(figures or {})
        except TimeoutError:
            error = f"timed out after {registered.timeout:g} s"
        except Exception as exc:
            error = _describe(exc)
        else:
            return _Result(registered.name, None, time.perf_counter() - started, figures)
        return _Result(registered.name, error, time.perf_counter() - started, _figures_of(registered.check))

    def _record(self, result: _Result) -> None:
        if self._duration is not None and self._up is not None:
            self._duration.labels(result.name).observe(result.latency)
            self._up.labels(result.name).set(0 if result.error else 1)
        if result.error is not None and result.name not in self._failing:
            self._failing.add(result.name)
            logger.warning("health check %s failing: %s", result.name, result.error)
        elif result.error is None and result.name in self._failing:
            self._failing.discard(result.name)
            logger.info("health check %s passing again", result.name)


def _figures_of(check: Check) -> Figures:
    """The figures of a failed check that can tell them without I/O, else none."""
    if not isinstance(check, ReportsFigures):
        return {}
    try:
        return dict(msgspec.to_builtins(check.figures()))
    except Exception:
        return {}


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a check's failure."""
    lines = str(exc).strip().splitlines()
    description = redact(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)
    return description if len(description) <= _MAX_ERROR else description[: _MAX_ERROR - 3] + "..."


def _timestamp() -> str:
    """Now, RFC 3339 in UTC to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
