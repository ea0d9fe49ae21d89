"""The server process of a load run: one target on a free loopback port, announced on stdout
as ``PORT=<n>``.

    python -m benchmarks.load.serve --target lt       # this project, livetemplate.server's settings
    python -m benchmarks.load.serve --target pyview   # pyview-web, uvicorn --ws wsproto (as it ships)
    python -m benchmarks.load.serve --target floor    # bare asyncio: the same bytes, nothing else
    python -m benchmarks.load.serve --target uvicorn  # a stateless ASGI app sending the same bytes
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import threading
import time
import tracemalloc

import uvicorn

from .probe import Stats, probe


def _listen(backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock


def serve_lt(sock: socket.socket, backlog: int, inline: bool, ping: bool, deflate: bool) -> None:
    from livetemplate.server import Server, uvicorn_config

    from .apps import TOPIC, create_app

    app = create_app(sync_actions="inline") if inline else create_app()
    stats = Stats(lambda: len(app.runtime.connections), lambda: app.publish(TOPIC, "increment"))
    extra: dict[str, object] = {} if ping else {"ws_ping_interval": None}
    if deflate:
        extra["ws_per_message_deflate"] = True
    config = uvicorn_config(app, log_level="warning", backlog=backlog, interface="asgi3", **extra)
    config.app = probe(app, stats)  # the same settings, the probe in front
    Server(config, app).run(sockets=[sock])


def serve_uvicorn(sock: socket.socket, backlog: int) -> None:
    from .apps import EchoApp

    app = EchoApp()
    stats = Stats(lambda: len(app.sends), app.publish)
    config = uvicorn.Config(
        probe(app, stats), interface="asgi3", ws_per_message_deflate=False, log_level="warning", backlog=backlog
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_pyview(sock: socket.socket, backlog: int, ws: str, deflate: bool) -> None:
    from . import pyview_counter

    app = pyview_counter.create_app()
    stats = Stats(lambda: int(app.live_handler.sessions), pyview_counter.publish)
    config = uvicorn.Config(
        probe(app, stats),
        interface="asgi3",
        ws=ws,
        ws_per_message_deflate=deflate,
        log_level="warning",
        backlog=backlog,
    )
    uvicorn.Server(config).run(sockets=[sock])


def watch_parent(limit: float) -> None:
    """Exit when the orchestrator is gone, or after ``limit`` seconds in any case."""
    parent, deadline = os.getppid(), time.monotonic() + limit

    def watch() -> None:
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("lt", "pyview", "floor", "uvicorn"), required=True)
    parser.add_argument("--ws", default="wsproto", help="pyview: uvicorn's WebSocket implementation")
    parser.add_argument("--no-deflate", action="store_true", help="pyview: turn uvicorn's per-message deflate off")
    parser.add_argument("--inline", action="store_true", help="lt: sync actions run inline, not in a thread")
    parser.add_argument("--no-ping", action="store_true", help="lt: no uvicorn keep-alive pings")
    parser.add_argument("--deflate", action="store_true", help="lt: per-message deflate on (off by default)")
    parser.add_argument("--tracemalloc", action="store_true", help="trace allocations (slow; for the breakdown)")
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument("--max-seconds", type=float, default=3600, help="exit after this long in any case")
    args = parser.parse_args(argv)
    watch_parent(args.max_seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.tracemalloc:
        tracemalloc.start(1)
    sock = _listen(args.backlog)
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    if args.target == "lt":
        serve_lt(sock, args.backlog, args.inline, not args.no_ping, args.deflate)
    elif args.target == "uvicorn":
        serve_uvicorn(sock, args.backlog)
    elif args.target == "pyview":
        serve_pyview(sock, args.backlog, args.ws, not args.no_deflate)
    else:
        from .floor import serve_floor

        serve_floor(sock)


if __name__ == "__main__":
    main(sys.argv[1:])
