"""The compiled engine is really in use, and both engines offer the same interface."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import livetemplate
from livetemplate import _engine, _render_py, encode_frame
from tests.conftest import NO_EXTENSIONS
from tests.support.engine_independent import engine  # noqa: F401  (runs once, on the default engine)


def test_the_compiled_engine_is_selected_unless_disabled() -> None:
    if NO_EXTENSIONS:
        assert livetemplate.implementation() == "python"
        assert _engine.engine is _render_py
        return
    compiled = importlib.import_module("livetemplate._render_c")
    assert _engine.engine is compiled
    assert livetemplate.implementation() == "compiled"
    assert compiled.COMPILED is True
    assert type(compiled.render_tree).__name__ == "cython_function_or_method"
    assert _render_py.COMPILED is False


def test_both_engines_provide_what_the_stub_declares() -> None:
    stub = ast.parse(Path(_render_py.__file__).with_suffix(".pyi").read_text())
    declared = {
        node.name if not isinstance(node, ast.AnnAssign) else node.target.id  # type: ignore[union-attr]
        for node in stub.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AnnAssign))
    }
    modules = [_render_py] if NO_EXTENSIONS else [_render_py, importlib.import_module("livetemplate._render_c")]
    for module in modules:
        missing = sorted(name for name in declared if not hasattr(module, name))
        assert missing == [], f"{module.__name__} lacks {missing}"


def test_encode_frame_writes_compact_json() -> None:
    frame = encode_frame({"s": ["<p>", "</p>"], "0": "héllo \u2028"}, {"success": True, "errors": {}})
    assert frame == b'{"tree":{"s":["<p>","</p>"],"0":"h\xc3\xa9llo \xe2\x80\xa8"},"meta":{"success":true,"errors":{}}}'


def test_encode_frame_is_the_same_in_both_engines() -> None:
    if NO_EXTENSIONS:
        return
    compiled = importlib.import_module("livetemplate._render_c")
    tree = {"0": [["u", "k", {"1": "x"}], ["o", ["k", "j"]]], "1": {"d": []}}
    assert compiled.encode_frame(tree, {"action": "save"}) == _render_py.encode_frame(tree, {"action": "save"})
