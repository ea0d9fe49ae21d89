"""These tests exercise nothing engine-specific: they run once, on the default engine."""

from __future__ import annotations

from tests.support.engine_independent import engine

__all__ = ["engine"]
