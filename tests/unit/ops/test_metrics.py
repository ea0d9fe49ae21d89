"""Batched metrics: what they expose equals what Prometheus's own metrics expose for the
same updates, once flushed; they flush by themselves when full and before every scrape."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from livetemplate.ops.metrics import BATCH, BatchedCounter, BatchedHistogram, Metrics

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_a_flushed_batch_exposes_what_one_observe_per_value_exposes() -> None:
    plain_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    plain = Histogram("h", "h", buckets=BOUNDS, registry=plain_registry)
    batched = BatchedHistogram(Histogram("h", "h", buckets=BOUNDS, registry=batched_registry))
    rng = random.Random(7)
    # on the bounds, between them, below the first, past the last, zero and negative
    values = [*BOUNDS, 0.0, -1.0, 5.0, *(rng.uniform(0, 2) for _ in range(100))]
    for value in values:
        plain.observe(value)
        batched.observe(value)
    batched.flush()
    assert samples(batched_registry) == samples(plain_registry)
    assert samples(batched_registry)[("h_count", ())] == len(values)


def test_a_value_observed_times_over_is_each_of_those_observations() -> None:
    plain_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    plain = Histogram("h", "h", buckets=BOUNDS, registry=plain_registry)
    batched = BatchedHistogram(Histogram("h", "h", buckets=BOUNDS, registry=batched_registry))
    for value, times in ((0.005, 3), (0.3, 1), (2.0, BATCH + 5)):  # the last fills a batch on its own
        for _ in range(times):
            plain.observe(value)
        batched.observe_times(value, times)
    assert samples(batched_registry)[("h_count", ())] == 4 + BATCH + 5  # flushed when full
    batched.flush()
    assert samples(batched_registry) == samples(plain_registry)


def test_a_histogram_flushes_itself_when_its_batch_is_full() -> None:
    registry = CollectorRegistry()
    batched = BatchedHistogram(Histogram("h", "h", buckets=BOUNDS, registry=registry))
    for _ in range(BATCH - 1):
        batched.observe(0.005)
    assert samples(registry)[("h_count", ())] == 0  # held back
    batched.observe(0.005)
    assert samples(registry)[("h_count", ())] == BATCH
    assert batched.pending == []


def test_without_the_internals_it_knows_each_value_is_observed_one_by_one() -> None:
    class Elsewhere:  # a histogram of another prometheus_client, without _upper_bounds and _buckets
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    elsewhere = Elsewhere()
    batched = BatchedHistogram(elsewhere)  # type: ignore[arg-type]
    for value in (0.5, 0.25, 2.0):
        batched.observe(value)
    batched.flush()
    assert elsewhere.seen == [0.5, 0.25, 2.0]


def test_a_counter_adds_its_increments_at_once() -> None:
    registry = CollectorRegistry()
    counter = BatchedCounter(Counter("c", "c", registry=registry))
    counter.inc()
    counter.inc(2.5)
    assert samples(registry)[("c_total", ())] == 0
    counter.flush()
    counter.flush()  # nothing pending: adds nothing
    assert samples(registry)[("c_total", ())] == 3.5


def test_a_scrape_sees_every_update_made_before_it() -> None:
    metrics = Metrics()
    metrics.actions_processed.inc()
    metrics.action_duration.observe(0.003)
    metrics.update_payload.observe(300)
    text = metrics.exposition().decode()
    assert "livetemplate_actions_processed_total 1.0" in text
    assert 'livetemplate_action_duration_seconds_bucket{le="0.0025"} 0.0' in text
    assert 'livetemplate_action_duration_seconds_bucket{le="0.005"} 1.0' in text
    assert 'livetemplate_update_payload_bytes_bucket{le="1024.0"} 1.0' in text


@pytest.mark.anyio
async def test_the_loop_lag_tick_flushes_the_batches() -> None:
    metrics = Metrics()
    metrics.template_duration.observe(0.002)
    histogram = metrics.template_duration.histogram
    monitor = metrics.loop_lag_monitor(interval=0.01)
    monitor.start()
    try:
        async with asyncio.timeout(5):
            while metrics.template_duration.pending:
                await asyncio.sleep(0.01)
    finally:
        await monitor.stop()
    assert histogram._sum.get() == 0.002  # in the histogram itself, without a scrape
