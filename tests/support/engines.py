"""The engines the tests run on, and the fixture that runs a test on each of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from livetemplate import _engine
from livetemplate._engine import Engine
from livetemplate._twins import extensions_disabled

NO_EXTENSIONS = extensions_disabled()
ENGINES = ["python"] if NO_EXTENSIONS else ["compiled", "python"]


def engine_module(name: str) -> Engine:
    """The engine called ``name`` (``compiled`` or ``python``)."""
    return _engine.load(name)


@pytest.fixture(params=ENGINES, autouse=True)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Run the test once per engine: templates constructed in it bind that engine."""
    saved = _engine.implementation()
    selected = _engine.select(request.param)
    try:
        yield selected
    finally:
        _engine.select(saved)
