"""A fixture that leaves the library's logging as the test found it (for tests that configure it)."""

from __future__ import annotations

from collections.abc import Iterator

import picologging
import pytest

from livetemplate.ops import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the library's picologging logger as the test found it."""
    root = picologging.getLogger(logs.ROOT)
    handlers, level = list(root.handlers), root.level
    output, own = logs._output, logs._bridge.writes_own_lines
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logs._output, logs._bridge.writes_own_lines = output, own
