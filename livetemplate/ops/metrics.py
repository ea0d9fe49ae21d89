"""Prometheus metrics, named as the Go library names them (``livetemplate_...``), so its
dashboards and alert rules work unchanged.

Each app has its own :class:`Metrics` on its own registry (several apps in one process do not
collide); ``/metrics`` exposes it. Under ``uvicorn --workers N`` set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory shared by the workers: values are then written there and ``/metrics``
aggregates every worker (gauges are summed; the per-process callback gauges are left out).

The metrics that every action and every render update (the action and template durations,
payload sizes, tree kinds) are batched: an update is a list append or an integer addition,
and the batch goes into the Prometheus metric in bulk once it holds 256 values, every
second (the loop-lag tick) and before every scrape. A broadcast to thousands of
connections then costs no lock per recipient (at 2 µs an observation, they were a tenth of
its cost). These are updated from the event loop's thread only.
"""

from __future__ import annotations

import itertools
import os
import time
from bisect import bisect_right
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..periodic import Periodic

__all__ = ["CONTENT_TYPE", "BatchedCounter", "BatchedHistogram", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
_BYTES = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


#: Values a batched histogram holds before it adds them to the Prometheus metric.
BATCH = 256


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class BatchedHistogram:
    """A Prometheus histogram whose observations are added in bulk (see the module)."""

    __slots__ = ("histogram", "pending")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.pending: list[float] = []

    def observe(self, value: float) -> None:
        pending = self.pending
        pending.append(value)
        if len(pending) >= BATCH:
            self.flush()

    def observe_times(self, value: float, times: int) -> None:
        """:meth:`observe` ``value`` ``times`` times."""
        pending = self.pending
        pending.extend(itertools.repeat(value, times))
        if len(pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Add the pending observations to the histogram: one addition per bucket they fall
        in and one to the sum (one ``observe`` each where its internals differ)."""
        values, self.pending = self.pending, []
        if not values:
            return
        histogram = self.histogram
        bounds = getattr(histogram, "_upper_bounds", None)
        buckets = getattr(histogram, "_buckets", None)
        total = getattr(histogram, "_sum", None)
        if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
            for value in values:
                histogram.observe(value)
            return
        # PERF: sorted, each bucket's count is a bisection (not a bisection per value): a
        # value falls in the first bucket whose bound is >= it (the last bound is +Inf)
        total.inc(sum(values))  # in the order observed, as one observe each adds them
        values.sort()
        below = 0
        for bucket, bound in zip(buckets, bounds, strict=True):
            upto = bisect_right(values, bound)
            if upto > below:
                bucket.inc(upto - below)
                below = upto


class BatchedCounter:
    """A Prometheus counter whose increments are added in bulk (see the module)."""

    __slots__ = ("counter", "pending")

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.pending = 0.0

    def inc(self, amount: float = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        amount, self.pending = self.pending, 0.0
        if amount:
            self.counter.inc(amount)


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
        self.actions_processed = BatchedCounter(
            Counter("livetemplate_actions_processed", "Actions run (pushes included)", registry=r)
        )
        self.errors = Counter("livetemplate_errors", "Failures, by kind", ["kind"], registry=r)
        self.action_duration = BatchedHistogram(
            Histogram(
                "livetemplate_action_duration_seconds", "Time to run an action and commit", registry=r, buckets=_LATENCY
            )
        )
        self.template_duration = BatchedHistogram(
            Histogram(
                "livetemplate_template_duration_seconds",
                "Time to render a state into a tree update (build and diff)",
                registry=r,
                buckets=_LATENCY,
            )
        )
        self.update_payload = BatchedHistogram(
            Histogram("livetemplate_update_payload_bytes", "Encoded size of update frames", registry=r, buckets=_BYTES)
        )
        self.full_tree_sends = BatchedCounter(
            Counter("livetemplate_full_tree_sends", "Frames with a complete tree", registry=r)
        )
        self.dynamics_only_sends = BatchedCounter(
            Counter("livetemplate_dynamics_only_sends", "Frames with changed values only", registry=r)
        )
        self._batched: tuple[BatchedCounter | BatchedHistogram, ...] = (
            self.actions_processed,
            self.action_duration,
            self.template_duration,
            self.update_payload,
            self.full_tree_sends,
            self.dynamics_only_sends,
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
        loop shows here) into ``livetemplate_event_loop_lag_seconds``, and flushes the
        batched metrics; start it in a loop."""
        last = [time.monotonic()]

        def tick() -> None:
            now = time.monotonic()
            self.event_loop_lag.set(max(0.0, now - last[0] - interval))
            last[0] = now
            self.flush()

        return Periodic(tick, interval)

    def watch(self, gauge: Gauge, value: Callable[[], float]) -> None:
        """Let ``gauge`` read ``value`` when scraped (not in multiprocess mode, where each
        worker's value is set as it changes instead)."""
        if not _multiprocess():
            gauge.set_function(value)

    def flush(self) -> None:
        """Add what the batched metrics hold to their Prometheus metrics."""
        for batched in self._batched:
            batched.flush()

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers."""
        self.flush()
        if _multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
