"""These tests exercise nothing engine-specific: they run once, on the default engine. Serving
configures the library's logging and may set LIVETEMPLATE_LOG_LEVEL and (for workers)
PROMETHEUS_MULTIPROC_DIR: all are put back, or later tests' metrics would be multiprocess ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.logging_state import _restore_logging

__all__ = ["_restore_logging"]


@pytest.fixture(autouse=True)
def _restore_log_level(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LIVETEMPLATE_LOG_LEVEL", "info")  # recorded: undone after the test
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # recorded as it was, then removed
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    yield
