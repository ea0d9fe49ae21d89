"""Find the ``data-key`` of a loop item's root element in a block's statics.

The client keys range items by ``_k`` and matches rows in the DOM by their
``data-key`` / ``data-lvt-key`` attribute, so the server takes the key from the same
attribute: the first start tag of the item, read across statics and slots.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

KEY_ATTRIBUTES = ("data-key", "data-lvt-key")
_SPACE = frozenset(" \t\n\r\f")
_NAME_PUNCTUATION = frozenset("-_:")
_NAME_END = frozenset("=>/")


def find_key_attribute(statics: Sequence[str], outputs: Container[int]) -> list[str | int] | None:
    """The parts of the root element's key attribute value: static text and the indexes
    of the output slots in it. None when there is no such attribute, when the tag is
    not plain markup in the first static, when a part is not a plain output slot, or
    when a slot that could write attributes comes before it (HTML keeps the first of
    two equal attributes)."""
    tokens: list[Token] = []  # characters of the statics, slot indexes between them
    for i, static in enumerate(statics):
        tokens.extend(static)
        if i < len(statics) - 1:
            tokens.append(i)
    pos = _first_tag(tokens)
    if pos is None:
        return None
    attributes = _attributes(tokens, pos)
    if attributes is None:
        return None
    for name in KEY_ATTRIBUTES:
        value = attributes.get(name)
        if value is not None:
            if any(isinstance(p, int) and p not in outputs for p in value):
                return None
            return _merge(value)
    return None


Token = str | int  # a character of the statics, or the index of a slot


def _first_tag(tokens: list[Token]) -> int | None:
    """Index just past ``<name`` of the first start tag, skipping comments and text."""
    i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        if isinstance(t, int):
            return None  # a slot before the first tag: the root element is not static
        if t == "<":
            if "".join(str(x) for x in tokens[i : i + 4]) == "<!--":
                end = _find(tokens, "-->", i + 4)
                if end is None:
                    return None
                i = end + 3
                continue
            j = i + 1
            name = ""
            while j < n:
                c = tokens[j]
                if not isinstance(c, str) or not (c.isalnum() or c in _NAME_PUNCTUATION):
                    break
                name += c
                j += 1
            if name and name[0].isalpha():
                return j
        i += 1
    return None


def _find(tokens: list[Token], text: str, start: int) -> int | None:
    for i in range(start, len(tokens) - len(text) + 1):
        if all(tokens[i + k] == text[k] for k in range(len(text))):
            return i
    return None


def _attributes(tokens: list[Token], i: int) -> dict[str, list[Token]] | None:
    """Attributes of the start tag whose name ends before ``i``, up to the first slot
    standing where an attribute name should be (it could write any attribute)."""
    attributes: dict[str, list[Token]] = {}
    n = len(tokens)
    while i < n:
        t = tokens[i]
        if isinstance(t, int):
            return attributes
        if t in _SPACE or t == "/":
            i += 1
            continue
        if t == ">":
            return attributes
        name = ""
        while i < n:
            c = tokens[i]
            if not isinstance(c, str) or c in _SPACE or c in _NAME_END:
                break
            name += c
            i += 1
        if i < n and isinstance(tokens[i], int):
            return attributes if not name else None
        while i < n and tokens[i] in _SPACE:
            i += 1
        value: list[Token] = []
        if i < n and tokens[i] == "=":
            i += 1
            while i < n and tokens[i] in _SPACE:
                i += 1
            if i < n and tokens[i] in ('"', "'"):
                quote = tokens[i]
                i += 1
                while i < n and tokens[i] != quote:
                    value.append(tokens[i])
                    i += 1
                i += 1
            else:
                while i < n and (isinstance(tokens[i], int) or (tokens[i] not in _SPACE and tokens[i] != ">")):
                    value.append(tokens[i])
                    i += 1
        attributes.setdefault(name.lower(), value)
    return None


def _merge(value: list[Token]) -> list[Token]:
    """Join runs of characters into strings."""
    parts: list[Token] = []
    for part in value:
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return parts
