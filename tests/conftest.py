"""Shared fixtures. Tests run on the engine selected by default (the compiled one unless
``LIVETEMPLATE_NO_EXTENSIONS=1``); the engine tests (``tests/unit/engine/``) run once per
engine with the fixture of ``tests/support/engines.py``."""

from __future__ import annotations

import pytest

from livetemplate import _engine
from livetemplate._engine import Engine
from tests.support.engines import ENGINES, NO_EXTENSIONS, engine_module

__all__ = ["ENGINES", "NO_EXTENSIONS", "engine_module"]


@pytest.fixture
def engine() -> Engine:
    """The engine templates bind (the default one)."""
    return _engine.current()
