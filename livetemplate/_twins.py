"""Choosing between a compiled module and its pure-Python twin.

Each hot module has one source, ``livetemplate/<name>_py.py``, that the build also
compiles (with the static types of ``ext/<name>_c.pxd``) as ``livetemplate.<name>_c``.
``LIVETEMPLATE_NO_EXTENSIONS=1`` selects the twins; so does a build without extensions.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def extensions_disabled() -> bool:
    """Whether ``LIVETEMPLATE_NO_EXTENSIONS`` asks for the pure-Python twins."""
    return os.environ.get("LIVETEMPLATE_NO_EXTENSIONS", "").lower() in {"1", "true", "yes", "on", "y"}


def compiled(name: str) -> ModuleType:
    """``livetemplate.<name>_c``; ImportError when it was not built."""
    module = importlib.import_module(f"{__package__}.{name}_c")
    if not getattr(module, "COMPILED", False):  # pragma: no cover - a .py left where the build puts the .so
        raise ImportError(f"{module.__name__} is not compiled")
    return module


def twin(name: str) -> ModuleType:
    """``livetemplate.<name>_py``, the pure-Python twin."""
    return importlib.import_module(f"{__package__}.{name}_py")


def auto(name: str) -> ModuleType:
    """The compiled module unless extensions are disabled or were not built, else the twin."""
    if extensions_disabled():
        return twin(name)
    try:
        return compiled(name)
    except ImportError:
        return twin(name)
