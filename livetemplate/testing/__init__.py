"""Testing live apps without a browser: :class:`LiveClient` drives a mounted app in-process
(HTTP and WebSockets), and :class:`ClientTree` applies the server's frames the way the
official client does, so tests assert on the HTML a browser would show.

Needs the ``testing`` extra: ``pip install livetemplate[testing]`` (httpx, beautifulsoup4).
"""

from __future__ import annotations

from .client import TIMEOUT, LiveClient, LiveSocket, UploadResult, WebSocketClosed, settle
from .dom import ElementNotFound
from .tree import ClientTree

__all__ = [
    "TIMEOUT",
    "ClientTree",
    "ElementNotFound",
    "LiveClient",
    "LiveSocket",
    "UploadResult",
    "WebSocketClosed",
    "settle",
]
