"""Where in HTML a slot stands, read from the statics around it."""

from __future__ import annotations

import pytest

from livetemplate._compiler.markup import MARKUP, TEXT, VERBATIM, slot_contexts
from tests.support.engine_independent import engine  # noqa: F401  (runs once, on the default engine)


@pytest.mark.parametrize(
    ("statics", "contexts"),
    [
        (["<p>", "</p>"], [MARKUP]),
        (["<", ">x</", ">"], [MARKUP, MARKUP]),
        (['<a title="', '" href=', ' class=x data-k="', '">'], [TEXT, TEXT, TEXT]),
        (["<a title='x\">", "'>", ""], [TEXT, MARKUP]),
        (["<a ", ">"], [MARKUP]),
        (["<script>var a = '<b>", "';</script>", ""], [VERBATIM, MARKUP]),
        (["<SCRIPT type=x>", "</script >", ""], [VERBATIM, MARKUP]),
        (["<style>", "</styles>", "</style>", ""], [VERBATIM, VERBATIM, MARKUP]),
        (["<textarea>", "</textarea><title>", "</title>"], [TEXT, TEXT]),
        (["<!-- ", " -->", ""], [VERBATIM, MARKUP]),
        (["<!-", ""], [MARKUP]),
        (["a < b ", ""], [MARKUP]),
        (["<", " class=", ">"], [MARKUP, TEXT]),
    ],
)
def test_slot_contexts(statics: list[str], contexts: list[int]) -> None:
    assert slot_contexts(statics) == contexts
