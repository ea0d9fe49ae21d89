# Typing of the frame encoder (also compiled by Cython, with ext/_frames_c.pxd).
from collections.abc import Mapping
from typing import Any

COMPILED: bool

def encode_frame(tree: Mapping[str, Any], meta: Mapping[str, Any] | None) -> bytes: ...
