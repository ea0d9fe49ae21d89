"""Serving an app with uvicorn, with the settings this project recommends:

- ``ws_max_size`` from the app's ``max_message_size``: a bigger frame is refused by the
  protocol (close 1009) before uvicorn buffers it, not after (its default is 16 MiB);
- per-message deflate off: it costs 100-300 KB per connection;
- proxy headers only when the app trusts them (``trust_forwarded_headers``);
- a graceful-shutdown timeout a little longer than the app's own ``shutdown_timeout``;
- on SIGTERM the app drains before uvicorn closes the connections (:class:`Server`).
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from .app import LiveApp
from .ops.logs import configure_logging

__all__ = ["Server", "run", "uvicorn_config"]


def uvicorn_config(app: LiveApp, *, host: str = "127.0.0.1", port: int = 8000, **overrides: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app``; keyword arguments override the recommended settings."""
    options = app.options
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "ws_max_size": options.max_message_size,
        "ws_per_message_deflate": False,
        "proxy_headers": options.trust_forwarded_headers,
        "lifespan": "on",
        "timeout_graceful_shutdown": options.shutdown_timeout + 2,
    }
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


class Server(uvicorn.Server):
    """uvicorn's server, draining the app before uvicorn closes its connections: on SIGTERM
    uvicorn would close every WebSocket at once (1012), losing the replies of actions in
    flight; this lets them finish and go out first (:meth:`LiveApp.drain`)."""

    def __init__(self, config: uvicorn.Config, app: LiveApp) -> None:
        super().__init__(config)
        self.live_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.live_app.drain()
        await super().shutdown(sockets)


def run(app: LiveApp, *, host: str = "127.0.0.1", port: int = 8000, **overrides: Any) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM drain it, then shut it down). The
    library's logging is configured from ``LIVETEMPLATE_LOG_LEVEL`` / ``..._FORMAT``."""
    configure_logging()
    Server(uvicorn_config(app, host=host, port=port, **overrides), app).run()
