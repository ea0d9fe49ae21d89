"""Baseline measured in the same run: Jinja2 rendering the same template in full, the
floor of any approach that re-renders the whole page per action (the Go library's and
pyview's approach)."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from tests.support.engine_independent import engine  # noqa: F401  (runs once, on the default engine)

from .scenarios import SIZES, TABLE, table


@pytest.mark.parametrize("n", SIZES)
def test_jinja2_full_render(benchmark: Any, n: int) -> None:
    template = jinja2.Environment(autoescape=True).from_string(TABLE)
    state = table(n)
    html = benchmark(lambda: template.render(title=state.title, rows=state.rows))
    benchmark.extra_info["bytes"] = len(html.encode())
