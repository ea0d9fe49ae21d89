"""The in-process broadcast timer: every round reaches every tab, and each is timed."""

from __future__ import annotations

import gc

import pytest

from benchmarks.load.apps import create_app
from benchmarks.recipient import WARM_UP, time_broadcasts
from tests.support.engine_independent import engine  # noqa: F401  (runs on the engine in use)

pytestmark = pytest.mark.anyio


async def test_each_timed_broadcast_runs_the_action_on_every_tab() -> None:
    app = create_app()
    try:
        times = await time_broadcasts(app, 12, 3)
    finally:
        gc.unfreeze()  # the timer freezes the heap, as a server does
    assert len(times) == 3
    assert all(seconds > 0 for seconds in times)
    views = list(app.hub.views)
    assert len(views) == 12
    assert {view.state.count for view in views} == {WARM_UP + 3}
