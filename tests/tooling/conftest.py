"""Fixtures of the tooling tests: the CLI as a user runs it, the deploy kit, the docs' samples,
release wheels. Nothing here is engine-specific: each test runs once."""

from __future__ import annotations

from tests.support.engine_independent import engine

__all__ = ["engine"]
