"""Prometheus metrics, named as the Go library names them (``livetemplate_...``), so its
dashboards and alert rules work unchanged.

Each app has its own :class:`Metrics` on its own registry (several apps in one process do not
collide); ``/metrics`` exposes it. Under ``uvicorn --workers N`` set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory shared by the workers: values are then written there and ``/metrics``
aggregates every worker (gauges are summed; the per-process callback gauges are left out).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..periodic import Periodic

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
_BYTES = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections_active = Gauge(
            "livetemplate_connections_active", "Open WebSocket connections", registry=r, multiprocess_mode="livesum"
        )
        self.groups_active = Gauge(
            "livetemplate_groups_active", "Session groups held in memory", registry=r, multiprocess_mode="livesum"
        )
        self.connections_rejected = Counter(
            "livetemplate_connections_rejected", "Connections refused, by reason", ["reason"], registry=r
        )
        self.actions_processed = Counter("livetemplate_actions_processed", "Actions run (pushes included)", registry=r)
        self.errors = Counter("livetemplate_errors", "Failures, by kind", ["kind"], registry=r)
        self.action_duration = Histogram(
            "livetemplate_action_duration_seconds", "Time to run an action and commit", registry=r, buckets=_LATENCY
        )
        self.template_duration = Histogram(
            "livetemplate_template_duration_seconds",
            "Time to render a state into a tree update (build and diff)",
            registry=r,
            buckets=_LATENCY,
        )
        self.update_payload = Histogram(
            "livetemplate_update_payload_bytes", "Encoded size of update frames", registry=r, buckets=_BYTES
        )
        self.full_tree_sends = Counter("livetemplate_full_tree_sends", "Frames with a complete tree", registry=r)
        self.dynamics_only_sends = Counter(
            "livetemplate_dynamics_only_sends", "Frames with changed values only", registry=r
        )
        self.publishes_sent = Counter(
            "livetemplate_publishes_sent", "Pushed actions, counted per receiving connection", registry=r
        )
        self.websocket_buffer_full = Counter(
            "livetemplate_websocket_buffer_full", "Times a connection's send budget was exceeded", registry=r
        )
        self.websocket_slow_client_closes = Counter(
            "livetemplate_websocket_slow_client_closes", "Connections closed for not reading", registry=r
        )
        self.websocket_write_errors = Counter(
            "livetemplate_websocket_write_errors", "Failed writes to a WebSocket", registry=r
        )
        self.session_store_errors = Counter(
            "livetemplate_session_store_errors", "Session store operations that failed", ["operation"], registry=r
        )
        self.session_store_evictions = Counter(
            "livetemplate_session_store_evictions",
            "Sessions the memory store dropped to stay within max_sessions",
            registry=r,
        )
        self.session_store_fallback = Gauge(
            "livetemplate_session_store_fallback",
            "1 while the session store serves from memory because Redis is unreachable",
            registry=r,
            multiprocess_mode="max",
        )
        self.connections_max = Gauge(
            "livetemplate_connections_max",
            "The connection limit (max_connections; 0: none)",
            registry=r,
            multiprocess_mode="livesum",
        )
        if not _multiprocess():  # process_resident_memory_bytes and friends (the memory alert)
            ProcessCollector(registry=r)
        self.event_loop_lag = Gauge(
            "livetemplate_event_loop_lag_seconds",
            "How late the event loop ran a timer, last measured",
            registry=r,
            multiprocess_mode="max",
        )

    def loop_lag_monitor(self, interval: float = 1.0) -> Periodic:
        """A job that measures how late the event loop wakes a timer (a callback hogging the
        loop shows here) into ``livetemplate_event_loop_lag_seconds``; start it in a loop."""
        last = [time.monotonic()]

        def tick() -> None:
            now = time.monotonic()
            self.event_loop_lag.set(max(0.0, now - last[0] - interval))
            last[0] = now

        return Periodic(tick, interval)

    def watch(self, gauge: Gauge, value: Callable[[], float]) -> None:
        """Let ``gauge`` read ``value`` when scraped (not in multiprocess mode, where each
        worker's value is set as it changes instead)."""
        if not _multiprocess():
            gauge.set_function(value)

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers."""
        if _multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
