"""Benchmarks run per engine, like the tests."""

from __future__ import annotations

from tests.support.engines import engine  # noqa: F401  (each benchmark runs on both engines)
