"""Turn a pytest-benchmark JSON file into the README's table.

python -m benchmarks.report bench.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from typing import Any

LABELS = {
    "test_counter_unchanged": "counter, unchanged",
    "test_counter_changed": "counter, changed",
    "test_list_first_render": "first render",
    "test_list_unchanged": "no change",
    "test_list_title_changed": "one field (title) changed",
    "test_list_one_row_edited": "one row edited",
    "test_list_one_row_inserted": "one row inserted",
}


def _time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def table(results: dict[str, Any]) -> str:
    medians: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    sizes: dict[tuple[str, str], int] = {}
    baseline: dict[str, float] = {}
    for bench in results["benchmarks"]:
        name = bench["name"]
        median = bench["stats"]["median"]
        match = re.match(r"(\w+)\[(.*)\]", name)
        func, params = (match.group(1), match.group(2)) if match else (name, "")
        parts = params.split("-")
        if func == "test_jinja2_full_render":
            baseline[parts[-1]] = median
            continue
        engine = parts[0]
        n = parts[1] if len(parts) > 1 else ""
        medians[(func, n)][engine] = median
        sizes[(func, n)] = bench["extra_info"].get("bytes", 0)
    lines = [
        "| scenario | rows | compiled | pure Python | twin ÷ compiled "
        "| Jinja2 full render | Jinja2 ÷ compiled | bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (func, n), by_engine in medians.items():
        compiled, python = by_engine.get("compiled"), by_engine.get("python")
        base = baseline.get(n)
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                LABELS.get(func, func),
                f"{int(n):,}" if n else "",
                _time(compiled) if compiled else "",
                _time(python) if python else "",
                f"{python / compiled:.1f}x" if compiled and python else "",
                _time(base) if base and n else "",
                f"{base / compiled:.1f}x" if base and compiled and n else "",
                f"{sizes[(func, n)]:,}",
            )
        )
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
