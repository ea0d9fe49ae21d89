"""Shared fixtures. Every test that renders templates runs once per engine: the
compiled one and its pure-Python twin (modules that test something engine-independent
set ``ENGINE_INDEPENDENT = True``)."""

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        if getattr(metafunc.module, "ENGINE_INDEPENDENT", False):
            return
        metafunc.fixturenames.append("engine")
    metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Select the engine new templates bind (``compiled`` or ``python``)."""
    saved = _engine.engine
    _engine.engine = engine_module(request.param)
    try:
        yield _engine.engine
    finally:
        _engine.engine = saved
