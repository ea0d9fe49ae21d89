"""Regression gate for the compiled engine: render, diff, encode and a fan-out's per-connection
work, each timed on the compiled engine and on its pure-Python twin in the same run, in
alternating short rounds (load from other processes falls on both alike). The figure is the
twin's time over the compiled time (the speed-up); a test fails when it dropped more than 20%
below the speed-up stored in ``regression_baseline.json`` (the compiled path regressed by
more than 20% relative to the twin).

    python -m pytest benchmarks/test_regression.py
    LIVETEMPLATE_BENCH_UPDATE=1 python -m pytest benchmarks/test_regression.py   # store new speed-ups

A change that makes the twin faster lowers the speed-up too: re-store the baseline then,
with the reason in the commit message.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from livetemplate import Template, _engine
from livetemplate._engine import Engine
from livetemplate._twins import compiled, twin
from tests.support.engine_independent import engine  # noqa: F401  (both engines are used inside each test)

from .scenarios import COUNTER, TABLE, Counter, table

BASELINE = Path(__file__).with_name("regression_baseline.json")
TOLERANCE = 1.2  # the compiled path may get 20% slower relative to the twin, no more
UPDATE = os.environ.get("LIVETEMPLATE_BENCH_UPDATE", "") == "1"
META = {"success": True, "errors": {}}

COMPILED = _engine.load("compiled")  # raises when it was not built: a gate of the compiled engine needs it
PURE = _engine.load("python")
#: The frame encoder of each: compiled beside the compiled engine, the twin beside the twin.
ENCODERS = {id(COMPILED): compiled("_frames").encode_frame, id(PURE): twin("_frames").encode_frame}


def _template(chosen: Engine, source: str) -> Template:
    saved = _engine.implementation()
    _engine.select(engine_name(chosen))
    try:
        return Template(source)
    finally:
        _engine.select(saved)


def engine_name(chosen: Engine) -> str:
    return "compiled" if chosen is COMPILED else "python"


def render_first(module: Engine) -> Callable[[], Any]:
    template, state = _template(module, TABLE), table(100)
    return lambda: template.renderer().render(state)


def diff_row_edited(module: Engine) -> Callable[[], Any]:
    state = table(1000)
    renderer = _template(module, TABLE).renderer()
    renderer.render(state)
    row, edits = state.rows[500], iter(range(10**9))

    def step() -> Any:
        row.title = f"edited {next(edits)}"
        return renderer.render(state)

    return step


def diff_unchanged(module: Engine) -> Callable[[], Any]:
    state = table(1000)
    renderer = _template(module, TABLE).renderer()
    renderer.render(state)
    return lambda: renderer.render(state)


def encode_medium(module: Engine) -> Callable[[], Any]:
    tree = _template(module, TABLE).renderer().render(table(50))
    encode = ENCODERS[id(module)]
    return lambda: encode(tree, META)


def fanout_1000(module: Engine) -> Callable[[], Any]:
    """A broadcast's per-connection work: 1,000 clients of the counter, each rendered and encoded."""
    template = _template(module, COUNTER)
    state = Counter(0)
    renderers = [template.renderer() for _ in range(1000)]
    for renderer in renderers:
        renderer.render(state)
    encode = ENCODERS[id(module)]

    def step() -> Any:
        state.count += 1
        return [encode(r.render(state), META) for r in renderers]

    return step


SCENARIOS: dict[str, Callable[[Engine], Callable[[], Any]]] = {
    "render_first_100_rows": render_first,
    "diff_one_row_of_1000": diff_row_edited,
    "diff_unchanged_1000": diff_unchanged,
    "encode_medium_frame": encode_medium,
    "fanout_render_encode_1000": fanout_1000,
}


def _round(call: Callable[[], Any], budget: float) -> float:
    """Seconds per call, over calls filling about ``budget`` seconds."""
    count, started = 0, time.perf_counter()
    while True:
        call()
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return elapsed / count


def interleaved(compiled: Callable[[], Any], pure: Callable[[], Any], rounds: int = 40) -> dict[str, float]:
    best_c = best_p = float("inf")
    for _ in range(rounds):
        best_c = min(best_c, _round(compiled, 0.01))
        best_p = min(best_p, _round(pure, 0.01))
    return {"compiled_us": best_c * 1e6, "python_us": best_p * 1e6, "speedup": best_p / best_c}


def _baseline() -> dict[str, Any]:
    return json.loads(BASELINE.read_text()) if BASELINE.exists() else {}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_compiled_speedup(benchmark: Any, scenario: str) -> None:
    make = SCENARIOS[scenario]
    compiled, pure = make(COMPILED), make(PURE)
    figures = benchmark.pedantic(lambda: interleaved(compiled, pure), rounds=1, iterations=1)
    stored = _baseline()
    if UPDATE:  # the median of three runs
        runs = sorted([figures["speedup"]] + [interleaved(compiled, pure)["speedup"] for _ in range(2)])
        stored[scenario] = round(runs[1], 2)
        BASELINE.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
        return
    if scenario not in stored:
        pytest.fail(f"no stored speed-up for {scenario}: run with LIVETEMPLATE_BENCH_UPDATE=1")
    floor = stored[scenario] / TOLERANCE
    for _ in range(2):  # noise from other processes passes on a retry; a real regression does not
        if figures["speedup"] >= floor:
            break
        again = interleaved(compiled, pure)
        if again["speedup"] > figures["speedup"]:
            figures = again
    benchmark.extra_info.update(figures)
    print(f"\n{scenario}: speed-up {figures['speedup']:.2f} (stored {stored[scenario]}, gate {floor:.2f})")
    assert figures["speedup"] >= floor, (
        f"{scenario}: the compiled path is {figures['speedup']:.2f}x the twin's speed, "
        f"below {floor:.2f} (stored {stored[scenario]} / {TOLERANCE})"
    )
