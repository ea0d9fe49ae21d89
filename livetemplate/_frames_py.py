"""Frame encoding: an update frame ``{"tree": ..., "meta": ...}`` as JSON bytes.

This is the pure-Python twin of ``livetemplate._frames_c``: the build compiles this same
source with the static types declared in ``ext/_frames_c.pxd``. Use it through
:mod:`livetemplate.frames`.
"""

from __future__ import annotations

import msgspec

try:
    import cython

    COMPILED: bool = cython.compiled
except ImportError:  # pragma: no cover - without Cython this module is certainly not compiled
    COMPILED = False

_encoder = msgspec.json.Encoder()


def encode_frame(tree, meta):
    """Encode an update frame ``{"tree": tree, "meta": meta}`` (just ``{"tree": tree}``
    when ``meta`` is None: the client then runs no form lifecycle for it) to JSON bytes."""
    if meta is None:
        return _encoder.encode({"tree": tree})
    return _encoder.encode({"tree": tree, "meta": meta})


#: The first two bytes of a text frame whose payload is under 126 bytes, by its length.
#: PERF: one lookup, where ``bytes((0x81, size))`` built a tuple and iterated it.
_SHORT_HEADERS = tuple(bytes((0x81, size)) for size in range(126))


def websocket_text_frame(payload):
    """``payload`` (UTF-8 text) as one final, unmasked WebSocket text frame: what a server
    writes to the socket (RFC 6455 section 5.2; a server never masks)."""
    size = len(payload)
    if size < 126:
        return _SHORT_HEADERS[size] + payload
    if size < 65536:
        return bytes((0x81, 126, size >> 8, size & 0xFF)) + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload
