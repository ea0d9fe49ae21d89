"""Serving an app with uvicorn, with the settings this project recommends:

- ``ws_max_size`` from the app's ``max_message_size``: a bigger frame is refused by the
  protocol (close 1009) before uvicorn buffers it, not after (its default is 16 MiB);
- per-message deflate off: it costs 100-300 KB per connection;
- proxy headers only when the app trusts them (``trust_forwarded_headers``);
- a graceful-shutdown timeout a little longer than the app's own ``shutdown_timeout``.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from .app import LiveApp

__all__ = ["run", "uvicorn_config"]


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


def run(app: LiveApp, *, host: str = "127.0.0.1", port: int = 8000, **overrides: Any) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM shut it down gracefully)."""
    uvicorn.Server(uvicorn_config(app, host=host, port=port, **overrides)).run()
