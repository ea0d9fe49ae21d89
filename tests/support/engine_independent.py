"""Import ``engine`` from here into a test module that tests nothing engine-specific: it
replaces the parametrized autouse fixture, so the module's tests run once."""

from __future__ import annotations

import pytest


@pytest.fixture
def engine() -> None:
    """No engine selection: the default engine stays in place."""
