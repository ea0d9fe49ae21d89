"""A broadcast to 1,000 tabs whose states are equal (a dashboard everyone watches): one row
of a keyed list edited per broadcast, with shared renders (``shared_renders=True``, the
default: one render per distinct transition) beside a render per tab, in the same run.
In process, on both engines; socket writes are discarded (:mod:`.tabs`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import livetemplate
from livetemplate import Context

from .scenarios import TABLE, Table, table
from .tabs import broadcast, open_tabs

TABS = 1_000
TOPIC = "board"


class Board:
    def mount(self, state: Table, ctx: Context) -> Table:
        ctx.subscribe(TOPIC)
        return state

    def touch(self, state: Table, ctx: Context) -> Table:
        state.rows[ctx.get_int("row")].title = f"edited {ctx.get_int('stamp')}"
        return state


class Broadcasts:
    """An app with ``TABS`` open tabs (each its own session group) of a ``rows``-row board."""

    def __init__(self, rows: int, shared: bool) -> None:
        self.loop = asyncio.new_event_loop()
        self.rows = rows
        self.stamp = 0
        self.app = livetemplate.mount(Board(), table(rows), template=TABLE, open_topics=True, shared_renders=shared)
        self.loop.run_until_complete(open_tabs(self.app, TABS))

    def broadcast(self) -> None:
        self.stamp += 1
        data = {"row": self.stamp % self.rows, "stamp": self.stamp}
        self.loop.run_until_complete(broadcast(self.app, TOPIC, "touch", data))

    def states(self) -> list[Table]:
        return [view.state for view in self.app.hub.views]

    def close(self) -> None:
        self.loop.run_until_complete(self.app.shutdown())
        self.loop.close()


@pytest.fixture
def broadcasts(request: pytest.FixtureRequest) -> Iterator[Broadcasts]:
    rows, shared = request.param
    subject = Broadcasts(rows, shared)
    subject.broadcast()  # tabs whose first renders were each their own are merged here
    yield subject
    subject.close()


@pytest.mark.parametrize(
    "broadcasts",
    [(rows, shared) for rows in (10, 100) for shared in (False, True)],
    ids=lambda p: f"{p[0]}rows-{'shared' if p[1] else 'per-tab'}",
    indirect=True,
)
def test_broadcast_to_1000_tabs(benchmark: Any, broadcasts: Broadcasts) -> None:
    benchmark.pedantic(broadcasts.broadcast, rounds=8, warmup_rounds=1)
    states = broadcasts.states()
    assert len(states) == TABS and all(state == states[0] for state in states)
    assert states[0].rows[broadcasts.stamp % broadcasts.rows].title == f"edited {broadcasts.stamp}"
