"""``livetemplate serve``: run an app under uvicorn with the project's recommended settings.

The settings come from the app's own options (:func:`livetemplate.server.recommended_settings`):
``ws_max_size`` from ``max_message_size``, per-message deflate off, proxy headers as the app
trusts them, a graceful-shutdown timeout past the app's drain; and on SIGTERM the app drains
before uvicorn closes the sockets (:class:`livetemplate.server.Server`), also in every worker
and after every reload.

``--reload`` restarts the server when Python code or a template changes; open pages are closed
with 1012 (service restart), the official client reconnects and receives the new page.
"""

from __future__ import annotations

import argparse
import atexit
import inspect
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.supervisors import ChangeReload, multiprocess

from ..backends.memory import MemorySessionStore
from ..ops.logs import LEVEL_ENV as LOG_LEVEL_VARIABLE
from ..ops.logs import configure_logging
from ..server import Server, find_live_app, recommended_settings
from ._help import HelpFormatter
from ._load import import_object
from .check import TEMPLATE_SUFFIXES

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "RELOAD_INCLUDES", "build_config", "worker_warnings"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: What --reload watches: Python code and templates.
RELOAD_INCLUDES = ["*.py", *(f"*{suffix}" for suffix in TEMPLATE_SUFFIXES)]
STARTUP_FAILURE = 3  # uvicorn's exit status when the server did not start


class _Server(Server):
    """The draining server, configuring the library's logging in its own process (the server
    process itself, each reloaded one, every worker) from ``LIVETEMPLATE_LOG_LEVEL`` and
    ``LIVETEMPLATE_LOG_FORMAT``."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        configure_logging()
        await super().startup(sockets)


class _DrainingProcess(multiprocess.Process):
    """A worker of ``uvicorn --workers`` that runs :class:`livetemplate.server.Server`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = _Server(self.config)
        return self._server


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run an app with uvicorn and the recommended settings",
        description=(
            "Run the ASGI app MODULE:ATTRIBUTE with uvicorn, configured from the app's options "
            "(WebSocket message limit, no per-message deflate, graceful drain on SIGTERM)."
        ),
        epilog=(
            "With --workers N each worker is a process of its own: with the default in-memory "
            "session store every worker keeps its own sessions, and a page and its WebSocket can "
            "reach different workers. Use Redis (LIVETEMPLATE_BACKEND=redis://...) and one "
            "LIVETEMPLATE_SECRET_KEY for all of them."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("app", metavar="MODULE:ATTRIBUTE", help="the app, for example examples.todos.app:app")
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind to this address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="bind to this port")
    parser.add_argument(
        "--reload",
        action="store_true",
        help="development: restart on changes to Python files and templates; open pages reconnect",
    )
    parser.add_argument(
        "--reload-dir",
        metavar="DIR",
        action="append",
        dest="reload_dirs",
        help="directories to watch with --reload (repeatable) [default: the current directory]",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes ($WEB_CONCURRENCY); more than one needs Redis for sessions (see below)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="uvicorn's log level and the library's [default: info, the library's from $LIVETEMPLATE_LOG_LEVEL]",
    )
    parser.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "believe X-Forwarded-For/-Proto from --forwarded-allow-ips; only behind your own proxy "
            "[default: the app's trust_forwarded_headers]"
        ),
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="proxies whose forwarded headers are believed [default: $FORWARDED_ALLOW_IPS or 127.0.0.1]",
    )
    parser.add_argument("--root-path", default="", help="the ASGI root_path, when mounted below a prefix")
    parser.add_argument("--app-dir", default=".", help="look for the app's module here first")
    parser.add_argument("--factory", action="store_true", help="MODULE:ATTRIBUTE is a function that returns the app")
    parser.set_defaults(run=run)


def build_config(args: argparse.Namespace, app: Any) -> uvicorn.Config:
    """The uvicorn configuration for the parsed command line; ``app`` is the loaded app (None
    when it could not be loaded, which --reload tolerates: the server reports it and waits for
    a fix)."""
    settings = recommended_settings(find_live_app(app))
    settings.update(
        host=args.host,
        port=args.port,
        log_level=args.log_level or "info",
        root_path=args.root_path,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    if args.proxy_headers is not None:
        settings["proxy_headers"] = args.proxy_headers
    if args.reload:
        settings.update(reload=True, reload_dirs=args.reload_dirs, reload_includes=RELOAD_INCLUDES)
    if args.workers > 1:
        settings["workers"] = args.workers
    if args.reload or args.workers > 1:
        # each process (the reloaded server, every worker) imports the app itself
        return uvicorn.Config(args.app, factory=args.factory, **settings)
    return uvicorn.Config(app, **settings)


def worker_warnings(app: Any, workers: int) -> list[str]:
    """What goes wrong with ``workers`` processes serving ``app`` as configured."""
    live = find_live_app(app)
    if workers < 2 or live is None:
        return []
    found = []
    if isinstance(live.store, MemorySessionStore):
        found.append(
            f"--workers {workers} with the in-memory session store: each worker keeps its own sessions and a "
            "page and its WebSocket may reach different workers; use Redis (LIVETEMPLATE_BACKEND=redis://...)"
        )
    if live.options.secret_key is None:
        found.append(
            f"--workers {workers} without a secret key: each worker signs session cookies with a key of its own "
            "and refuses the others'; set LIVETEMPLATE_SECRET_KEY"
        )
    return found


def _metrics_directory() -> None:
    """Workers write their metrics to a directory that ``/metrics`` aggregates; make one when
    PROMETHEUS_MULTIPROC_DIR is not set (removed at exit)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = tempfile.mkdtemp(prefix="livetemplate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _load(args: argparse.Namespace) -> Any:
    app = import_object(args.app)
    return app() if args.factory else app


def run(args: argparse.Namespace) -> int:
    if args.reload and args.workers > 1:
        raise SystemExit("livetemplate serve: error: --reload and --workers exclude each other")
    if args.workers < 1:
        raise SystemExit("livetemplate serve: error: --workers must be at least 1")
    if args.log_level is not None:  # the library logs at this level too, in every process
        os.environ[LOG_LEVEL_VARIABLE] = "debug" if args.log_level == "trace" else args.log_level
    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        app = _load(args)
    except Exception as exc:  # the user's module failed to import
        if not args.reload:
            raise SystemExit(f"livetemplate serve: error: cannot load {args.app}: {exc}") from exc
        print(f"livetemplate serve: {args.app} does not load yet ({exc}); watching for a fix", file=sys.stderr)
        app = None
    if app is not None and find_live_app(app) is None:
        print(
            f"livetemplate serve: {args.app} is not a mounted LiveTemplate app: the default options' settings "
            "apply, and no drain precedes the close on shutdown",
            file=sys.stderr,
        )
    for warning in worker_warnings(app, args.workers):
        print(f"livetemplate serve: warning: {warning}", file=sys.stderr)
    config = build_config(args, app)
    server = _Server(config)
    if config.should_reload:
        ChangeReload(config, target=server.run, sockets=[config.bind_socket()]).run()
        return 0
    if config.workers > 1:
        _metrics_directory()
        _run_workers(config, server)
        return 0
    server.run()
    return 0 if server.started else STARTUP_FAILURE


def _run_workers(config: uvicorn.Config, server: Server) -> None:
    sockets = [config.bind_socket()]
    if "target" in inspect.signature(multiprocess.Multiprocess).parameters:  # pragma: no cover (older uvicorn)
        multiprocess.Multiprocess(config, target=server.run, sockets=sockets).run()  # type: ignore[call-arg]
        return
    # Newer uvicorn makes its workers' servers itself, from this module-level name.
    plain = multiprocess.Process
    multiprocess.Process = _DrainingProcess  # type: ignore[misc]
    try:
        multiprocess.Multiprocess(config, sockets=sockets).run()
    finally:
        multiprocess.Process = plain  # type: ignore[misc]
