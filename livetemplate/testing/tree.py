"""A Python model of how the official client (``@livetemplate/client`` 0.25.1) keeps and renders trees.

``ClientTree`` mirrors the client's tree semantics (its merge rules, range operations and HTML
reconstruction, including the quirks that follow from its path-keyed side tables), so tests and,
later, an in-process test client can apply the server's ``tree`` messages and assert on the HTML a
browser would show, without running JavaScript.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ..wire import (
    ELSE,
    ID_KEY,
    ITEM_KEY,
    ITEMS,
    OP_APPEND,
    OP_INSERT_AFTER,
    OP_ORDER,
    OP_PREPEND,
    OP_REMOVE,
    OP_UPDATE,
    RANGE_META,
    STATICS,
)

Json = Any
"""A JSON value as decoded by :mod:`json`: dict, list, str, int, float, bool or None."""

_DIGITS = re.compile(r"[0-9]+")
_RANGE_OPS = (OP_REMOVE, OP_UPDATE, OP_APPEND, OP_PREPEND, OP_INSERT_AFTER, OP_ORDER)
_ROOT_TAGS = ("<root>", "</root>")
_MAX_RANGE_SEARCH_DEPTH = 50


def _truthy(value: Json) -> bool:
    """JavaScript truthiness (empty lists and objects are truthy there)."""
    if value is None:
        return False
    if isinstance(value, bool | str):
        return bool(value)
    if isinstance(value, int | float):
        return value != 0 and not math.isnan(value)
    return True


def _double(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def js_number(value: int | float) -> str:
    """``String(n)`` for a JavaScript number (shortest round-trip digits, JS exponent thresholds)."""
    x = _double(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    parts = Decimal(repr(abs(x))).as_tuple()
    point = len(parts.digits) + int(parts.exponent)  # value == 0.<digits> * 10**point
    digits = "".join(map(str, parts.digits)).rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        text = digits + "0" * (point - k)
    elif 0 < point <= 21:
        text = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if point > 0 else '-'}{abs(point - 1)}"
    return sign + text


def _js_string(value: Json) -> str:
    """``String(value)`` (also what ``html += value`` appends)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    if isinstance(value, list):
        return ",".join("" if item is None else _js_string(item) for item in value)
    return "[object Object]"


def _prop(obj: Json, key: str) -> Json:
    """``obj[key]`` with JavaScript property semantics for JSON values; None stands for undefined."""
    if obj is None:
        raise TypeError(f"Cannot read properties of null (reading '{key}')")
    if isinstance(obj, dict):
        return obj.get(key)
    if isinstance(obj, str | list):
        if key == "length":
            return len(obj)
        if _DIGITS.fullmatch(key) and (key == "0" or key[0] != "0") and int(key) < len(obj):
            return obj[int(key)]
    return None


def _identity(value: Json) -> tuple[str, Json] | None:
    """What ``===`` compares: None for objects and arrays, which are never equal to a fresh JSON value."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", _double(value))
    if isinstance(value, str):
        return ("string", value)
    return None


def _js_key_order(obj: Mapping[str, Json]) -> list[str]:
    """Own-key order of a JavaScript object: array indices ascending, then the rest as inserted."""

    def is_index(key: str) -> bool:
        return bool(_DIGITS.fullmatch(key)) and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1

    indices = sorted((key for key in obj if is_index(key)), key=int)
    return indices + [key for key in obj if not is_index(key)]


def _is_range(node: Json) -> bool:
    return isinstance(node, dict) and isinstance(node.get(ITEMS), list) and isinstance(node.get(STATICS), list)


def _is_op_list(value: Json) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and isinstance(value[0], list)
        and len(value[0]) > 0
        and isinstance(value[0][0], str)
    )


def _contains_range(node: Json, depth: int = 0) -> bool:
    if depth > _MAX_RANGE_SEARCH_DEPTH or not isinstance(node, dict):
        return False
    if _is_range(node):
        return True
    return any(_DIGITS.fullmatch(key) and _contains_range(child, depth + 1) for key, child in node.items())


def _replaces_outright(existing: dict[str, Json], update: dict[str, Json]) -> bool:
    """An update with statics replaces instead of merging on a range->non-range change or a lost slot."""
    if not isinstance(update.get(STATICS), list):
        return False
    if _contains_range(existing) and not _contains_range(update):
        return True
    return any(_DIGITS.fullmatch(key) and key not in update for key in existing)


def _thaw(value: Json) -> Json:
    """A private deep copy of a JSON-like value, with mappings as dicts and sequences as lists."""
    if isinstance(value, Mapping):
        return {str(key): _thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class ClientTree:
    """The client's tree state for one connection; feed it every ``tree`` value in order."""

    def __init__(self) -> None:
        self._tree: dict[str, Json]
        # Side tables the client keys by dotted path ("3", "3.1", "3.item.2", "3.0.2"): the last
        # items and statics seen for a range (used when an op list lands where no range is), and
        # the idKey used to find items.  They outlive the nodes they came from, as in the client.
        self._range_memory: dict[str, tuple[list[Json], Json]]
        self._id_keys: dict[str, Json]
        self._html: str
        self.reset()

    def reset(self) -> None:
        """Forget all state, as the client does on reconnect."""
        self._tree = {}
        self._range_memory = {}
        self._id_keys = {}
        self._html = ""

    def html(self) -> str:
        """The HTML the client produced for the last successfully applied update ("" before any)."""
        return self._html

    def apply(self, update: Mapping[str, Json]) -> None:
        """Apply one ``tree`` value (the first full tree or any later diff) and re-render.

        Raises TypeError where the client throws (an item that is null, an ``o`` key list that is
        not iterable); like the client, the state keeps whatever was merged before the failure.
        """
        for key, value in _thaw(update).items():
            if _is_op_list(value):
                current = self._tree.get(key)
                if _is_range(current):
                    target = copy.deepcopy(self._tree[key])
                    self._tree[key] = target
                    self._apply_to_range(target, value, key)
                else:
                    self._tree[key] = value  # kept as is; rendering decides what it means
            elif isinstance(value, dict):
                self._tree[key] = self._merge(self._tree.get(key), value, key)
            else:
                self._tree[key] = value
        self._html = self._render_node(self._tree, "")

    # -- merging -------------------------------------------------------------------------------

    def _merge(self, existing: Json, update: Json, path: str) -> Json:
        if not isinstance(update, dict) or not isinstance(existing, dict):
            return update
        if _replaces_outright(existing, update):
            return update
        merged = dict(existing)
        for key, value in update.items():
            child_path = _join(path, key)
            current = merged.get(key)
            if _is_op_list(value) and _is_range(current):
                target = copy.deepcopy(merged[key])
                self._apply_to_range(target, value, child_path)
                merged[key] = target
            elif isinstance(value, dict) and isinstance(current, dict):
                merged[key] = self._merge(current, value, child_path)
            else:
                merged[key] = value
        return merged

    def _apply_to_range(self, node: dict[str, Json], ops: list[Json], path: str) -> None:
        meta = node.get(RANGE_META)
        if isinstance(meta, dict) and isinstance(meta.get(ID_KEY), str):
            self._id_keys[path] = meta[ID_KEY]
        node[STATICS] = self._run_ops(node[ITEMS], node[STATICS], ops, path, keep_falsy_adds=True)
        self._range_memory[path] = (node[ITEMS], node[STATICS])

    def _run_ops(self, items: list[Json], statics: Json, ops: list[Json], path: str, *, keep_falsy_adds: bool) -> Json:
        """Apply range ops to ``items`` in place; return the (possibly replaced) statics."""
        for op in ops:
            if not isinstance(op, list) or len(op) < 2 or op[0] not in _RANGE_OPS:  # unknown ops: skipped
                continue
            kind, arg = op[0], op[1]
            extra = op[2] if len(op) > 2 else None
            if kind in (OP_REMOVE, OP_UPDATE, OP_INSERT_AFTER):
                index = self._find(items, arg, path)
                if index < 0:
                    continue
                if kind == OP_REMOVE:
                    del items[index]
                elif kind == OP_UPDATE and _truthy(extra):
                    items[index] = self._merge(items[index], extra, f"{path}.item")
                elif kind == OP_INSERT_AFTER:
                    items[index + 1 : index + 1] = extra if isinstance(extra, list) else [extra]
            elif kind in (OP_APPEND, OP_PREPEND):
                if _truthy(extra):
                    statics = extra
                if keep_falsy_adds or _truthy(arg):
                    added = arg if isinstance(arg, list) else [arg]
                    if kind == OP_APPEND:
                        items.extend(added)
                    else:
                        items[0:0] = added
                meta = op[3] if kind == OP_APPEND and len(op) > 3 else None
                if isinstance(meta, dict) and _truthy(meta.get(ID_KEY)):
                    self._id_keys[path] = meta[ID_KEY]
            else:  # "o": exactly the listed keys, in order; unknown keys skipped, repeats duplicate
                self._reorder(items, arg, path)
        return statics

    def _reorder(self, items: list[Json], order: Json, path: str) -> None:
        by_key: dict[tuple[str, Json], Json] = {}
        for item in items:
            key = self._item_key(item, path)
            ident = _identity(key) if key is not None else None
            if ident is not None:
                by_key[ident] = item
        if isinstance(order, str):
            wanted: list[Json] = list(order)
        elif isinstance(order, list):
            wanted = order
        else:
            raise TypeError(f"{_js_string(order)} is not iterable")
        picked = []
        for key in wanted:
            ident = _identity(key)
            item = by_key.get(ident) if ident is not None else None
            if _truthy(item):
                picked.append(item)
        items[:] = picked

    def _item_key(self, item: Json, path: str) -> Json:
        """``_k`` if it is a non-empty string, else the truthy value of the idKey slot, else None."""
        own = _prop(item, ITEM_KEY)
        if isinstance(own, str) and own:
            return own
        id_key = self._id_keys.get(path) if path else None
        if not _truthy(id_key):
            return None
        value = _prop(item, _js_string(id_key))
        return value if _truthy(value) else None

    def _find(self, items: list[Json], key: Json, path: str) -> int:
        wanted = _identity(key)  # None for an object key, which matches nothing
        for index, item in enumerate(items):
            found = _identity(self._item_key(item, path))  # evaluated (and may raise) item by item
            if wanted is not None and found == wanted:
                return index
        return -1

    # -- rendering -----------------------------------------------------------------------------

    def _weave(self, statics: Json, slot: Callable[[str], Json], prefix: str) -> str:
        segments = list(statics) if isinstance(statics, list | str) else []
        out: list[str] = []
        for i, segment in enumerate(segments):
            out.append(_js_string(segment))
            if i < len(segments) - 1:
                value = slot(str(i))
                if value is not None:  # null and missing slots both render as ""
                    out.append(self._render(value, str(i), f"{prefix}{i}"))
        return "".join(out)

    def _render_node(self, node: dict[str, Json], path: str) -> str:
        if not isinstance(node.get(STATICS), list):
            return self._render(node, "", path)
        html = self._weave(node[STATICS], node.get, f"{path}." if path else "")
        for tag in _ROOT_TAGS:
            html = html.replace(tag, "")
        return html

    def _render_item(self, item: Json, index: int, statics: Json, path: str) -> str:
        return self._weave(statics, lambda key: _prop(item, key), f"{path}.{index}." if path else f"{index}.")

    def _render(self, value: Json, field: str, path: str) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return "" if value.startswith("{{") and value.endswith("}}") else value
        if isinstance(value, bool | int | float):
            return _js_string(value)
        if isinstance(value, list):
            if _is_op_list(value):
                return self._replay_ops(value, path)
            return "".join(
                self._render_node(item, _join(path, str(i)))
                if isinstance(item, dict) and _truthy(item.get(STATICS))
                else self._render(item, str(i), _join(path, str(i)))
                for i, item in enumerate(value)
            )
        if not isinstance(value, dict):
            return ""
        if _is_range(value):
            memo_key = path or field
            if memo_key:
                self._range_memory[memo_key] = (value[ITEMS], value[STATICS])
                meta = value.get(RANGE_META)
                if isinstance(meta, dict) and isinstance(meta.get(ID_KEY), str):
                    self._id_keys[memo_key] = meta[ID_KEY]
            if not value[ITEMS]:
                fallback = value.get(ELSE)
                return self._render(fallback, ELSE, _join(path, ELSE)) if _truthy(fallback) else ""
            return "".join(self._render_item(item, i, value[STATICS], path) for i, item in enumerate(value[ITEMS]))
        if isinstance(value.get(STATICS), list):
            return self._render_node(value, path)
        keys = _js_key_order(value)
        if keys and all(_DIGITS.fullmatch(key) for key in keys):
            ordered = sorted(keys, key=lambda key: _double(int(key)))
            return "".join(self._render(value[key], key, _join(path, key)) for key in ordered)
        return ""  # plain data object, not a tree node

    def _replay_ops(self, ops: list[Json], path: str) -> str:
        """An op list where no range was merged: replayed on the last range remembered at ``path``.

        The client does this on every render, stores the result as a range under the *top-level*
        key ``path`` (for nested paths that is a stray dotted key), and renders nothing when it
        has never rendered a range at ``path``.
        """
        if not path or path not in self._range_memory:
            return ""
        remembered_items, statics = self._range_memory[path]
        items = list(remembered_items)
        statics = self._run_ops(items, statics, ops, path, keep_falsy_adds=False)
        self._range_memory[path] = (items, statics)
        self._tree[path] = {ITEMS: items, STATICS: statics}
        return "".join(self._render_item(item, i, statics, path) for i, item in enumerate(items))
