"""Pages: the live region of a template and the HTML page around it.

The client patches only the children of one ``[data-lvt-id]`` element. For a full
document that element wraps the content of ``<body>``; for a fragment it wraps
everything. The tree sent to the client must describe exactly that content, so for a
document the template's tree is cut down to the ``<body>`` content: the block holding
``<body>`` (at the top level, or inside the parent of an ``{% extends %}`` or a
``{% block %}``) is sliced at the tags and its slots renumbered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import escape

from .errors import TemplateError
from .template import Template
from .wire import STATICS

_BODY_OPEN = re.compile(r"<body(?=[\s>/])", re.IGNORECASE)
_BODY_OPEN_TAG = re.compile(r"<body(?=[\s>/])[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class LiveRegion:
    """Where the ``<body>`` content sits in a template's tree: the scope slots leading
    to the block that holds it, and its start and end as (static index, offset)."""

    path: tuple[int, ...]
    start: tuple[int, int]
    end: tuple[int, int]

    def tree(self, full: Mapping[str, Any]) -> dict[str, Any]:
        """The region's tree, cut from the template's complete tree."""
        node = self._descend(full)
        assert node is not None and STATICS in node, "a complete tree holds every node"
        (a, start), (b, end) = self.start, self.end
        statics: list[str] = node[STATICS]
        if a == b:
            region_statics = [statics[a][start:end]]
        else:
            region_statics = [statics[a][start:], *statics[a + 1 : b], statics[b][:end]]
        out: dict[str, Any] = {STATICS: region_statics}
        out.update(self._slots(node))
        return out

    def update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """The region's part of an update of the template's tree."""
        node = self._descend(update)
        return {} if node is None else self._slots(node)

    def _descend(self, node: Mapping[str, Any]) -> Mapping[str, Any] | None:
        for index in self.path:
            child = node.get(str(index))
            if child is None:
                return None
            node = child
        return node

    def _slots(self, node: Mapping[str, Any]) -> dict[str, Any]:
        first, last = self.start[0], self.end[0]
        out = {}
        for key, value in node.items():
            if key.isdigit() and first <= int(key) < last:
                out[str(int(key) - first)] = value
        return out


def live_region(template: Template) -> LiveRegion | None:
    """The live region of a full-document template, or None for a fragment (no
    ``<body>``), whose whole tree is live."""
    program = template._program
    engine = template._engine
    found = _find_body(engine, program.root, ())
    if found is None:
        return None
    path, block, start = found
    end = _find(block.wire_statics, _BODY_CLOSE, start)
    if end is None:
        raise TemplateError("the template has <body> but no </body> after it in the same block", template=template.name)
    return LiveRegion(path, start, end)


def _find_body(engine: Any, block: Any, path: tuple[int, ...]) -> tuple[tuple[int, ...], Any, tuple[int, int]] | None:
    """The block holding ``<body`` (reached through scope slots) and where its content
    starts (just past the tag's ``>``)."""
    opening = _find(block.wire_statics, _BODY_OPEN, (0, 0))
    if opening is not None:
        index, offset = opening
        statics = block.wire_statics
        while index < len(statics):
            close = statics[index].find(">", offset)
            if close >= 0:
                return path, block, (index, close + 1)
            index, offset = index + 1, 0
        return None
    for op in block.ops:
        if op.kind == engine.K_ASSIGN:
            continue
        nested = [b for b in (op.block, op.else_block, *op.blocks) if b is not None]
        for inner in nested:
            found = _find_body(engine, inner, (*path, op.index))
            if found is None:
                continue
            if op.kind != engine.K_SCOPE:
                raise TemplateError(
                    "<body> must not be inside a condition, a loop or a macro call: the live region must always exist",
                    template=op.template,
                    lineno=op.lineno,
                )
            return found
    return None


def _find(statics: list[str], pattern: re.Pattern[str], start: tuple[int, int]) -> tuple[int, int] | None:
    index, offset = start
    while index < len(statics):
        match = pattern.search(statics[index], offset)
        if match is not None:
            return index, match.start()
        index, offset = index + 1, 0
    return None


def wrap(html: str, region: LiveRegion | None, attributes: Mapping[str, str], script: str) -> str:
    """The page: ``html`` with its live content wrapped in the ``[data-lvt-id]`` element
    and the client's script after it (``script`` is empty when the page has it)."""
    attrs = "".join(f' {name}="{escape(value)}"' for name, value in attributes.items())
    if region is None:
        return f"<div{attrs}>{html}</div>{script}"
    opening = _BODY_OPEN_TAG.search(html)
    closings = list(_BODY_CLOSE.finditer(html))
    if opening is None or not closings:
        raise TemplateError("the rendered page lost its <body> element")
    start, end = opening.end(), closings[-1].start()
    return f"{html[:start]}<div{attrs}>{html[start:end]}</div>{script}{html[end:]}"
