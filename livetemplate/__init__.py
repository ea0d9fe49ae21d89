"""LiveTemplate for Python: real-time server-rendered web apps.

Templates use Jinja2 syntax. A :class:`Template` renders HTML; its :class:`Renderer`
produces the LiveTemplate tree that the official browser client ``@livetemplate/client``
applies, then only the minimal updates as the data changes.
"""

from __future__ import annotations

from ._engine import implementation
from .errors import TemplateError
from .template import Environment, Renderer, Template, encode_frame

__all__ = ["Environment", "Renderer", "Template", "TemplateError", "encode_frame", "implementation"]

__version__ = "0.1.0"
