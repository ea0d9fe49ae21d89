"""Frames: the compiled encoder is in use, and both twins write the same compact JSON."""

from __future__ import annotations

from types import ModuleType

import pytest
from websockets.frames import Frame, Opcode

import livetemplate
from livetemplate import _frames_py, _twins, frames
from tests.support.engine_independent import engine  # noqa: F401  (runs once: frames do not use the engine)
from tests.support.engines import NO_EXTENSIONS


def encoders() -> list[ModuleType]:
    return [_frames_py] if NO_EXTENSIONS else [_frames_py, _twins.compiled("_frames")]


def test_the_compiled_encoder_is_in_use_unless_disabled() -> None:
    assert livetemplate.encode_frame is frames.encode_frame
    if NO_EXTENSIONS:
        assert frames.encode_frame is _frames_py.encode_frame
        return
    assert frames.encode_frame is _twins.compiled("_frames").encode_frame
    assert type(frames.encode_frame).__name__ == "cython_function_or_method"


@pytest.mark.parametrize("module", encoders(), ids=lambda m: m.__name__)
def test_encode_frame_writes_compact_json(module: ModuleType) -> None:
    frame = module.encode_frame({"s": ["<p>", "</p>"], "0": "héllo \u2028"}, {"success": True, "errors": {}})
    assert frame == b'{"tree":{"s":["<p>","</p>"],"0":"h\xc3\xa9llo \xe2\x80\xa8"},"meta":{"success":true,"errors":{}}}'
    assert module.encode_frame({"0": [["r", "k"]]}, None) == b'{"tree":{"0":[["r","k"]]}}'  # no meta at all


@pytest.mark.parametrize("module", encoders(), ids=lambda m: m.__name__)
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_001])
def test_websocket_text_frame_is_what_websockets_writes(module: ModuleType, size: int) -> None:
    payload = ("é" * size).encode()[:size]
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])  # an independent writer
    assert module.websocket_text_frame(payload) == expected
