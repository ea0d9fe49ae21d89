"""LiveTemplate for Python: real-time server-rendered web apps.

Templates use Jinja2 syntax. A :class:`Template` renders HTML; its :class:`Renderer`
produces the LiveTemplate tree that the official browser client ``@livetemplate/client``
applies, then only the minimal updates as the data changes.
"""

from __future__ import annotations

from ._engine import implementation
from .app import LiveApp, mount
from .backends.memory import InProcessBroadcaster, MemorySessionStore
from .broadcast import Broadcaster
from .context import Context
from .errors import FieldError, NotAvailable, TemplateError, TopicForbidden
from .frames import encode_frame
from .helpers import Helpers
from .hub import Session
from .options import Options
from .sessions import SessionStore, Snapshot, StaleVersion, StoreUnavailable
from .state import Persist
from .template import Environment, Renderer, Template
from .uploads import PendingUpload, Presigned, Upload, UploadedFile, UploadPart, UploadTooLarge

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
    "PendingUpload",
    "Persist",
    "Presigned",
    "Renderer",
    "Session",
    "SessionStore",
    "Snapshot",
    "StaleVersion",
    "StoreUnavailable",
    "Template",
    "TemplateError",
    "TopicForbidden",
    "Upload",
    "UploadPart",
    "UploadTooLarge",
    "UploadedFile",
    "encode_frame",
    "implementation",
    "mount",
]

__version__ = "0.1.0"
