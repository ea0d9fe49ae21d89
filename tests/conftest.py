"""Shared fixtures. Every test runs once per engine: the compiled one and its pure-Python
twin. A module that tests nothing engine-specific overrides ``engine`` with a plain
fixture (see ``tests/support/engine_independent.py``) and runs once."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from livetemplate import _engine, _render_py

NO_EXTENSIONS = os.environ.get("LIVETEMPLATE_NO_EXTENSIONS", "").lower() in {"1", "true", "yes", "on", "y"}
ENGINES = ["python"] if NO_EXTENSIONS else ["compiled", "python"]


def engine_module(name: str) -> ModuleType:
    if name == "python":
        return _render_py
    return importlib.import_module("livetemplate._render_c")


@pytest.fixture(params=ENGINES, autouse=True)
def engine(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Select the engine that templates constructed in the test bind."""
    saved = _engine.engine
    _engine.engine = engine_module(request.param)
    try:
        yield _engine.engine
    finally:
        _engine.engine = saved
