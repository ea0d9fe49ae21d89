"""Benchmarks run per engine, like the tests."""

from __future__ import annotations

from tests.conftest import engine  # noqa: F401
