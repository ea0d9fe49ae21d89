"""Update frames, as written to the browser: ``{"tree": ..., "meta": ...}`` in JSON.

``tree`` is a tree or an update from :meth:`livetemplate.Renderer.render`; ``meta`` the
frame's metadata (``None`` leaves it out). The encoder is compiled unless extensions are
disabled (``LIVETEMPLATE_NO_EXTENSIONS=1``) or were not built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._twins import auto

__all__ = ["encode_frame", "websocket_text_frame"]

_module = auto("_frames")

#: ``encode_frame(tree, meta) -> bytes``: the frame as compact JSON (UTF-8).
encode_frame: Callable[[Mapping[str, Any], Mapping[str, Any] | None], bytes] = _module.encode_frame
#: ``websocket_text_frame(payload) -> bytes``: UTF-8 ``payload`` as one unmasked WebSocket
#: text frame, header and all, ready for a server's socket.
websocket_text_frame: Callable[[bytes], bytes] = _module.websocket_text_frame
