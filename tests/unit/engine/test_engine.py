"""The engine registry: the compiled engine is really in use, both twins provide the typed
interface (the Engine protocol and the stub), and the test fixture selects each of them."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import livetemplate
from livetemplate import Template, _engine, _render_py
from livetemplate._engine import Engine
from tests.support.engines import ENGINES, NO_EXTENSIONS, engine_module

STUB = Path(_render_py.__file__).with_suffix(".pyi")


def twins() -> list[ModuleType]:
    return [_render_py] if NO_EXTENSIONS else [_render_py, _engine.load("compiled")]


def test_the_compiled_engine_is_selected_unless_disabled(engine: Engine) -> None:
    assert _engine.load("python") is _render_py
    assert _engine.load("auto") is _engine.load(ENGINES[0])
    if NO_EXTENSIONS:
        assert _engine.load("auto") is _render_py
        return
    compiled = _engine.load("compiled")
    assert compiled.COMPILED is True
    assert type(compiled.render_tree).__name__ == "cython_function_or_method"
    assert _render_py.COMPILED is False


def test_an_unknown_engine_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine 'fast': choose compiled, python or auto"):
        _engine.load("fast")


def test_the_fixture_selects_the_engine_templates_bind(request: pytest.FixtureRequest, engine: Engine) -> None:
    selected = engine_module(request.node.callspec.params["engine"])
    assert engine is selected
    assert _engine.current() is selected
    assert Template("{{ x }}")._engine is selected
    assert livetemplate.implementation() == ("compiled" if selected.COMPILED else "python")


def protocol_members() -> dict[str, object]:
    return {name: value for name, value in vars(Engine).items() if not name.startswith("_")}


@pytest.mark.parametrize("module", twins(), ids=lambda m: m.__name__)
def test_both_twins_satisfy_the_engine_protocol(module: ModuleType) -> None:
    """Every member of the protocol exists; functions take the parameters it declares."""
    for name, member in protocol_members().items():
        assert hasattr(module, name), f"{module.__name__} lacks {name}"
        if inspect.isfunction(member):
            declared = list(inspect.signature(member).parameters.values())[1:]  # without self
            actual = list(inspect.signature(getattr(module, name)).parameters.values())
            assert [(p.name, p.kind) for p in actual] == [(p.name, p.kind) for p in declared], name


@pytest.mark.parametrize("module", twins(), ids=lambda m: m.__name__)
def test_both_twins_provide_what_the_stub_declares(module: ModuleType) -> None:
    """Every class, function and constant of the stub, and every attribute its classes declare."""
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert hasattr(module, node.target.id), node.target.id
        elif isinstance(node, ast.FunctionDef):
            assert hasattr(module, node.name), node.name
        elif isinstance(node, ast.ClassDef):
            cls = getattr(module, node.name)
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    assert hasattr(cls, item.target.id), f"{node.name}.{item.target.id}"
                elif isinstance(item, ast.FunctionDef):
                    assert hasattr(cls, item.name), f"{node.name}.{item.name}"


def test_the_protocol_is_what_the_stub_declares() -> None:
    """The protocol's functions have the stub's signatures (so mypy's check of the stub
    against the protocol covers the compiled twin too)."""
    stub = {node.name: node for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.FunctionDef)}
    for name, member in protocol_members().items():
        if inspect.isfunction(member):
            declared = [p.name for p in list(inspect.signature(member).parameters.values())[1:]]
            assert [a.arg for a in stub[name].args.args] == [n for n in declared if n not in ("args", "kwargs")]
