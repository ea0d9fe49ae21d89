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
