"""HTML equality for client-rendered trees.

The server re-spells the ``<root>`` / ``</root>`` tags the client would otherwise delete: as
``<root >`` / ``</root >`` when a static or a value holds them, and, when statics and a value
form them together, with the value's tag-name letters upper case (or its ``>`` after a space,
or its first character as a character reference inside an attribute value). These mean the same
to a browser, so HTML from the client is compared with the template's HTML exactly, or else as
parsed HTML (tag names are lower-cased by the parser).
"""

from __future__ import annotations

from html.parser import HTMLParser

Event = tuple[object, ...]


class _Events(HTMLParser):
    """Collects start tags (attribute values unescaped), end tags and text (references decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[Event] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, tuple(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        if self.events and self.events[-1][0] == "text":
            self.events[-1] = ("text", f"{self.events[-1][1]}{data}")
        else:
            self.events.append(("text", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl))

    def handle_pi(self, data: str) -> None:
        self.events.append(("pi", data))

    def unknown_decl(self, data: str) -> None:
        self.events.append(("unknown_decl", data))


def html_events(html: str) -> list[Event]:
    """``html`` as the sequence of start tags, end tags and text a parser sees."""
    parser = _Events()
    parser.feed(html)
    parser.close()
    return parser.events


def assert_same_html(got: str, want: str) -> None:
    """``got`` is ``want``, byte for byte or else as parsed HTML."""
    if got == want:
        return
    assert html_events(got) == html_events(want), f"HTML differs:\n got: {got!r}\nwant: {want!r}"
