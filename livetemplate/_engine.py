"""Selects the compiled render engine, or its pure-Python twin.

``LIVETEMPLATE_NO_EXTENSIONS=1`` selects the twin; so does a build without extensions.
Templates bind the engine that is selected when they are constructed.
"""

from __future__ import annotations

import os
from types import ModuleType

from . import _render_py


def _select() -> ModuleType:
    if os.environ.get("LIVETEMPLATE_NO_EXTENSIONS", "").lower() in {"1", "true", "yes", "on", "y"}:
        return _render_py
    try:
        from . import _render_c  # type: ignore[attr-defined]
    except ImportError:
        return _render_py
    return _render_c  # type: ignore[no-any-return]


engine: ModuleType = _select()


def implementation() -> str:
    """``"compiled"`` when the Cython engine is in use, else ``"python"``."""
    return "compiled" if engine.COMPILED else "python"
