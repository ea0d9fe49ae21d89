"""Backends by URL: a session store and a broadcaster that belong together.

``memory://`` gives the embedded defaults (one instance); Redis URLs (``redis://``,
``rediss://``, ``redis+sentinel://``, ``redis+cluster://``) give a store and a broadcaster
shared by every instance. Each scheme names the module that builds it, imported only when
used, so a backend's client library is needed only by the apps that use it.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple
from urllib.parse import urlsplit

from ..broadcast import Broadcaster
from ..sessions import SessionStore

__all__ = ["BACKENDS", "Backend", "from_url"]


class Backend(NamedTuple):
    """A session store and the broadcaster that goes with it."""

    store: SessionStore
    broadcaster: Broadcaster


#: URL scheme -> module whose ``from_url(url) -> Backend`` builds it.
BACKENDS: dict[str, str] = {
    "memory": "livetemplate.backends.memory",
    "redis": "livetemplate.backends.redis",
    "rediss": "livetemplate.backends.redis",
    "redis+sentinel": "livetemplate.backends.redis",
    "redis+cluster": "livetemplate.backends.redis",
}


def from_url(url: str) -> Backend:
    """The backend a URL names, for example ``memory://`` or ``redis://localhost:6379/0``."""
    scheme = urlsplit(url).scheme.lower()
    module_name = BACKENDS.get(scheme)
    if module_name is None:
        known = ", ".join(f"{name}://" for name in BACKENDS)
        raise ValueError(f"unknown backend URL {url!r}: the scheme must be one of {known}")
    backend: Backend = importlib.import_module(module_name).from_url(url)
    return backend
