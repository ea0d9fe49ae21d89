"""The states and templates the benchmarks measure: a counter and a keyed list of rows."""

from __future__ import annotations

import msgspec

COUNTER = "<p>Count: {{ count }}</p>"

TABLE = (
    "<h1>{{ title }}</h1>\n<table>\n"
    "{% for row in rows %}"
    '<tr data-key="{{ row.id }}" class="{{ "done" if row.done }}">'
    "<td>{{ row.id }}</td><td>{{ row.title }}</td><td>{{ row.owner }}</td></tr>\n"
    "{% endfor %}</table>"
)

SIZES = (10, 100, 1_000, 10_000)


class Counter(msgspec.Struct):
    count: int


class Row(msgspec.Struct):
    id: int
    title: str
    owner: str
    done: bool = False


class Table(msgspec.Struct):
    title: str
    rows: list[Row]


def table(n: int) -> Table:
    return Table("Rows", [Row(i, f"row number {i}", f"owner {i % 7}") for i in range(n)])
