"""Serving an app with uvicorn, with the settings this project recommends:

- the WebSocket protocol :class:`~livetemplate.transports.uvicorn_protocol.LiveWebSocketProtocol`
  (uvicorn's sans-I/O one, writing update frames to the socket without a task or an ASGI
  message per frame);
- ``ws_max_size`` from the app's ``max_message_size`` (or an upload chunk's message, if
  larger): a bigger frame is refused by the protocol (close 1009) before uvicorn buffers
  it, not after (its default is 16 MiB);
- per-message deflate off: even with uvicorn's bounded windows it costs about 46 KiB per idle
  connection, ten times one without it, and halves the broadcast rate (docs/performance.md);
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
from .options import Options

__all__ = ["Server", "find_live_app", "recommended_settings", "run", "uvicorn_config"]


def recommended_settings(app: LiveApp | None) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.Config`` this project recommends for ``app`` (host
    and port aside; None: an app not loaded yet, with the default options)."""
    options = app.options if app is not None else Options()
    uploads = app.runtime.uploads if app is not None else None
    return {
        # uvicorn's websockets-sansio protocol, writing update frames straight to the socket
        "ws": "livetemplate.transports.uvicorn_protocol:LiveWebSocketProtocol",
        "ws_max_size": max(options.max_message_size, uploads.frame_limit if uploads is not None else 0),
        "ws_per_message_deflate": False,
        # PERF: the client sends its own heartbeat; the server's pings only find connections
        # that died silently. Every 20 s (uvicorn's default) they cost 8% of a core when idle at
        # 19,000 connections (docs/performance.md); every 60 s a dead peer still goes within 90 s.
        "ws_ping_interval": 60.0,
        "ws_ping_timeout": 30.0,
        "proxy_headers": options.trust_forwarded_headers,
        "lifespan": "on",
        "timeout_graceful_shutdown": options.shutdown_timeout + 2,
    }


def uvicorn_config(app: LiveApp, *, host: str = "127.0.0.1", port: int = 8000, **overrides: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app``; keyword arguments override the recommended settings."""
    settings: dict[str, Any] = {"host": host, "port": port, **recommended_settings(app)}
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


class Server(uvicorn.Server):
    """uvicorn's server, draining the app before uvicorn closes its connections: on SIGTERM
    uvicorn would close every WebSocket at once (1012), losing the replies of actions in
    flight; this lets them finish and go out first (:meth:`LiveApp.drain`). Without ``app``,
    the :class:`LiveApp` is found in what uvicorn loaded (directly or inside middleware)."""

    def __init__(self, config: uvicorn.Config, app: LiveApp | None = None) -> None:
        super().__init__(config)
        self.live_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.live_app is None:  # loaded from an import string (reload, workers): find it
            self.live_app = find_live_app(self.config.loaded_app)
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.live_app is not None:
            await self.live_app.drain()
        await super().shutdown(sockets)


def find_live_app(app: Any) -> LiveApp | None:
    """The :class:`LiveApp` that ``app`` is, or wraps as middleware does (``.app``)."""
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        if isinstance(app, LiveApp):
            return app
        seen.add(id(app))
        app = getattr(app, "app", None)
    return None


def run(app: LiveApp, *, host: str = "127.0.0.1", port: int = 8000, **overrides: Any) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM drain it, then shut it down). The
    library's logging is configured from ``LIVETEMPLATE_LOG_LEVEL`` / ``..._FORMAT``."""
    configure_logging()
    Server(uvicorn_config(app, host=host, port=port, **overrides), app).run()
