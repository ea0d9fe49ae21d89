"""The heap policy: open connections' objects are frozen in batches, young garbage is
collected first, and cyclic garbage frozen with them is reclaimed once enough of the frozen
connections have closed. Connections of a mounted app are counted in and out."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import msgspec
import pytest

import livetemplate
from livetemplate import runtime
from livetemplate.ops.heap import Heap
from livetemplate.testing import LiveClient


class Node:
    """An object in a reference cycle with itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    """Give the process's heap back to the collector after each test."""
    yield
    gc.unfreeze()


def old_garbage() -> weakref.ref[Node]:
    """A cycle that survived a full collection (it sits in the oldest generation), then
    became garbage."""
    node = Node()
    gc.collect()
    ref = weakref.ref(node)
    del node
    return ref


def young_garbage() -> weakref.ref[Node]:
    return weakref.ref(Node())


def test_open_connections_are_frozen_in_batches() -> None:
    heap = Heap(freeze_every=3)
    gc.unfreeze()
    for _ in range(2):
        heap.connection_opened()
    assert gc.get_freeze_count() == 0 and heap.opened == 2
    heap.connection_opened()
    assert gc.get_freeze_count() > 0
    assert heap.frozen == 3 and heap.opened == 0


def test_young_garbage_is_collected_before_the_freeze() -> None:
    heap = Heap(freeze_every=1)
    young = young_garbage()
    assert young() is not None  # a cycle: reference counting alone does not free it
    heap.connection_opened()
    assert young() is None


def test_frozen_garbage_is_reclaimed_once_enough_frozen_connections_closed() -> None:
    heap = Heap(freeze_every=4, collect_share=0.25)
    old = old_garbage()
    for _ in range(4):
        heap.connection_opened()
    gc.collect()
    assert old() is not None  # frozen: out of the collector's reach
    for _ in range(3):
        heap.connection_closed()
    gc.collect()
    assert old() is not None  # fewer than freeze_every closed: still waiting
    heap.connection_closed()
    assert old() is None  # given back, collected, and the rest frozen again
    assert gc.get_freeze_count() > 0
    assert heap.frozen == 0 and heap.closed == 0


def test_closing_connections_before_any_freeze_collects_nothing_early() -> None:
    heap = Heap(freeze_every=10)
    gc.unfreeze()
    for _ in range(50):
        heap.connection_closed()
    assert gc.get_freeze_count() == 0 and heap.frozen == 0


class Count(msgspec.Struct):
    count: int = 0


class Nothing:
    pass


@pytest.mark.anyio
async def test_an_apps_connections_are_counted_in_and_out(monkeypatch: pytest.MonkeyPatch) -> None:
    heap = Heap(freeze_every=1000)
    monkeypatch.setattr(runtime, "heap", heap)
    app = livetemplate.mount(Nothing(), Count(), template="<p>{{ count }}</p>")
    async with LiveClient(app) as client, client.connect(), client.connect():
        assert heap.opened == 2 and heap.closed == 0
    assert heap.closed == 2


@pytest.mark.anyio
async def test_connections_opening_and_closing_keep_the_frozen_heap_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    heap = Heap(freeze_every=50)
    monkeypatch.setattr(runtime, "heap", heap)
    app = livetemplate.mount(Nothing(), Count(), template="<p>{{ count }}</p>")
    async with LiveClient(app) as client:
        for _ in range(100):
            async with client.connect():
                pass
        settled = gc.get_freeze_count()
        for _ in range(400):
            async with client.connect():
                pass
        grown = gc.get_freeze_count() - settled
    # a connection holds about a hundred objects; what grows is asyncio's cancelled timers, dropped in bulk later
    assert grown < 2 * 400
