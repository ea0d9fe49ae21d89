"""LiveTemplate for Python: real-time server-rendered web apps.

Templates use Jinja2 syntax. A :class:`Template` renders HTML; its :class:`Renderer`
produces the LiveTemplate tree that the official browser client ``@livetemplate/client``
applies, then only the minimal updates as the data changes.
"""

from __future__ import annotations

from ._engine import implementation
from .app import LiveApp, Options, Session, mount
from .broadcast import Broadcaster, InProcessBroadcaster
from .context import Context
from .errors import FieldError, NotAvailable, TemplateError, TopicForbidden
from .frames import encode_frame
from .helpers import Helpers
from .sessions import MemorySessionStore, SessionStore
from .state import Persist
from .template import Environment, Renderer, Template

__all__ = [
    "Broadcaster",
    "Context",
    "Environment",
    "FieldError",
    "Helpers",
    "InProcessBroadcaster",
    "LiveApp",
    "MemorySessionStore",
    "NotAvailable",
    "Options",
    "Persist",
    "Renderer",
    "Session",
    "SessionStore",
    "Template",
    "TemplateError",
    "TopicForbidden",
    "encode_frame",
    "implementation",
    "mount",
]

__version__ = "0.1.0"
