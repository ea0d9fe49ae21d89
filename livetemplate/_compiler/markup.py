"""Where in HTML each slot of a block stands, read from the block's statics.

A small tokenizer in the spirit of the HTML standard's, run at compile time over the
statics of one block, with every slot taken for one character of text (as an escaped
value is). It tells markup (text and tags, where ``<root>`` is a tag and tag names are
case-insensitive) from text whose character references are decoded (attribute values,
``<title>``/``<textarea>``) and from text taken as it is (``<script>``, ``<style>``,
comments). A block is read as if it started in markup; blocks nested in an attribute
value or a script are not told apart.
"""

from __future__ import annotations

from collections.abc import Sequence

MARKUP = 1  # text and tags
TEXT = 2  # character references are decoded: attribute values, RCDATA
VERBATIM = 3  # nothing is decoded: raw text elements, comments

_RAW_TEXT = frozenset({"script", "style", "xmp", "iframe", "noembed", "noframes", "plaintext"})
_RCDATA = frozenset({"title", "textarea"})
_SPACE = frozenset(" \t\n\r\f")
_SLOT = "\0"  # stands for a slot: one character of text

# tokenizer states
_DATA, _TAG_OPEN, _TAG_NAME, _TAG, _VALUE_START, _VALUE_QUOTED, _VALUE, _COMMENT, _RAW = range(9)


def slot_contexts(statics: Sequence[str]) -> list[int]:
    """MARKUP, TEXT or VERBATIM for each slot between ``statics``."""
    scanner = _Scanner()
    contexts = []
    for i, static in enumerate(statics):
        scanner.feed(static)
        if i < len(statics) - 1:
            contexts.append(scanner.context())
            scanner.feed(_SLOT)
    return contexts


class _Scanner:
    def __init__(self) -> None:
        self.state = _DATA
        self.name = ""  # the tag being read, or the raw text element being inside
        self.end_tag = False
        self.quote = ""
        self.raw_kind = VERBATIM
        self.pending = ""  # text that may close a comment or a raw text element

    def context(self) -> int:
        if self.state in (_VALUE_START, _VALUE_QUOTED, _VALUE):
            return TEXT
        if self.state == _COMMENT:
            return VERBATIM
        if self.state == _RAW:
            return self.raw_kind
        return MARKUP

    def feed(self, text: str) -> None:
        for c in text:
            self.step(c)

    def step(self, c: str) -> None:
        state = self.state
        if state == _DATA:
            if c == "<":
                self.state, self.pending = _TAG_OPEN, ""
        elif state == _TAG_OPEN:
            self.tag_open(c)
        elif state == _TAG_NAME:
            if c in _SPACE or c == "/":
                self.state = _TAG
            elif c == ">":
                self.close_tag()
            else:
                self.name += c.lower()
        elif state == _TAG:
            if c == ">":
                self.close_tag()
            elif c == "=":
                self.state = _VALUE_START
        elif state == _VALUE_START:
            if c in ('"', "'"):
                self.state, self.quote = _VALUE_QUOTED, c
            elif c == ">":
                self.close_tag()
            elif c not in _SPACE:
                self.state = _VALUE
        elif state == _VALUE_QUOTED:
            if c == self.quote:
                self.state = _TAG
        elif state == _VALUE:
            if c in _SPACE:
                self.state = _TAG
            elif c == ">":
                self.close_tag()
        elif state == _COMMENT:
            self.pending = (self.pending + c)[-3:]
            if self.pending == "-->":
                self.state = _DATA
        else:
            self.raw_text(c)

    def tag_open(self, c: str) -> None:
        self.pending += c
        if self.pending == "!--":
            self.state, self.pending = _COMMENT, ""
        elif "!--".startswith(self.pending):
            return
        elif c == "/" and self.pending == "/":
            self.end_tag = True
        elif c.isalpha() or c == _SLOT:
            self.state, self.name, self.end_tag = _TAG_NAME, c.lower(), self.pending.startswith("/")
        else:  # not a tag after all (or a bogus comment, read as text)
            self.state = _DATA

    def close_tag(self) -> None:
        if not self.end_tag and self.name in _RAW_TEXT | _RCDATA:
            self.state, self.pending = _RAW, ""
            self.raw_kind = TEXT if self.name in _RCDATA else VERBATIM
        else:
            self.state = _DATA

    def raw_text(self, c: str) -> None:
        """Inside a raw text or RCDATA element: only its end tag ends it."""
        closing = f"</{self.name}"
        if self.pending == closing:
            if c in _SPACE or c in "/>":
                self.state, self.end_tag = _TAG, True
                if c == ">":
                    self.close_tag()
            self.pending = ""
            return
        self.pending = (self.pending + c.lower())[-len(closing) :]
        if not closing.startswith(self.pending):
            self.pending = "<" if c == "<" else ""
