"""The test suite's engine fixture really selects the engine each test runs on."""

from __future__ import annotations

import pytest

from livetemplate import Template, _engine
from tests.conftest import engine_module


def test_a_test_that_does_not_ask_for_the_engine_still_runs_on_its_parameter(request: pytest.FixtureRequest) -> None:
    selected = engine_module(request.node.callspec.params["engine"])
    assert _engine.engine is selected
    assert Template("{{ x }}")._engine is selected
