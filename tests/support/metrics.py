"""Reading an app's metrics in tests."""

from __future__ import annotations

from livetemplate.ops.metrics import Metrics


def renders(metrics: Metrics) -> float:
    """Renders done so far: the template durations observed."""
    metrics.flush()
    samples = metrics.template_duration.histogram.collect()[0].samples
    return next(sample.value for sample in samples if sample.name.endswith("_count"))
