"""Render and diff: the counter and keyed lists of 10 to 10,000 rows, on both engines
(the baseline, Jinja2 rendering the same template in full, is in test_baseline.py)."""

from __future__ import annotations

from typing import Any

import pytest

from livetemplate import Renderer, Template, encode_frame

from .scenarios import COUNTER, SIZES, TABLE, Counter, Table, table

META = {"success": True, "errors": {}}


def record_bytes(benchmark: Any, update: dict[str, Any]) -> None:
    benchmark.extra_info["bytes"] = len(encode_frame(update, META))


def synced(n: int) -> tuple[Renderer, Table]:
    state = table(n)
    renderer = Template(TABLE).renderer()
    renderer.render(state)
    return renderer, state


def test_counter_unchanged(benchmark: Any) -> None:
    renderer = Template(COUNTER).renderer()
    state = Counter(1)
    renderer.render(state)
    update = benchmark(renderer.render, state)
    assert update == {}
    record_bytes(benchmark, update)


def test_counter_changed(benchmark: Any) -> None:
    renderer = Template(COUNTER).renderer()
    state = Counter(0)
    renderer.render(state)

    def step() -> dict[str, Any]:
        state.count += 1
        return renderer.render(state)

    update = benchmark(step)
    assert set(update) == {"0"}
    record_bytes(benchmark, update)


@pytest.mark.parametrize("n", SIZES)
def test_list_first_render(benchmark: Any, n: int) -> None:
    template = Template(TABLE)
    state = table(n)
    tree = benchmark(lambda: template.renderer().render(state))
    record_bytes(benchmark, tree)


@pytest.mark.parametrize("n", SIZES)
def test_list_unchanged(benchmark: Any, n: int) -> None:
    renderer, state = synced(n)
    assert benchmark(renderer.render, state) == {}


@pytest.mark.parametrize("n", SIZES)
def test_list_title_changed(benchmark: Any, n: int) -> None:
    renderer, state = synced(n)
    titles = iter(range(10**9))

    def step() -> dict[str, Any]:
        state.title = f"Rows {next(titles)}"
        return renderer.render(state)

    update = benchmark(step)
    assert set(update) == {"0"}
    record_bytes(benchmark, update)


@pytest.mark.parametrize("n", SIZES)
def test_list_one_row_edited(benchmark: Any, n: int) -> None:
    renderer, state = synced(n)
    row = state.rows[n // 2]
    edits = iter(range(10**9))

    def step() -> dict[str, Any]:
        row.title = f"edited {next(edits)}"
        return renderer.render(state)

    update = benchmark(step)
    assert update == {"1": [["u", str(row.id), {"3": row.title}]]}
    record_bytes(benchmark, update)


@pytest.mark.parametrize("n", SIZES)
def test_list_one_row_inserted(benchmark: Any, n: int) -> None:
    renderer, state = synced(n)
    extra = table(n + 1).rows[n]
    at = n // 2

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if state.rows[at] is extra:
            del state.rows[at]
            renderer.render(state)
        state.rows.insert(at, extra)
        return (), {}

    update = benchmark.pedantic(lambda: renderer.render(state), setup=setup, rounds=_rounds(n), warmup_rounds=1)
    assert update["1"][0][0] == "i"
    record_bytes(benchmark, update)


def _rounds(n: int) -> int:
    return max(5, min(200, 200_000 // max(n, 1)))
