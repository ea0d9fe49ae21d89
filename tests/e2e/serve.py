"""Serve an ASGI app with uvicorn on a free loopback port, for the browser tests.

    python -m tests.e2e.serve examples.todos.app:app
    python -m tests.e2e.serve examples.todos.app:create_app --factory --options '{"websocket_disabled": true}'

The port is chosen here (bound before uvicorn starts, so no other process can take it in
between) and announced on stdout as ``LIVETEMPLATE_E2E_PORT=<port>``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import socket
import sys
from typing import Any

from livetemplate.server import Server, uvicorn_config

PORT_LINE = "LIVETEMPLATE_E2E_PORT="


def load(target: str, factory: bool, options: dict[str, Any]) -> Any:
    """The app named ``module:attr``; with ``factory``, the result of calling it with ``options``."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise SystemExit(f"expected module:attr, got {target!r}")
    obj = getattr(importlib.import_module(module_name), attr)
    if factory:
        return obj(**options)
    if options:
        raise SystemExit("--options needs --factory")
    return obj


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="module:attr of the app (or of its factory, with --factory)")
    parser.add_argument("--factory", action="store_true", help="call the target with the options to get the app")
    parser.add_argument("--options", default="{}", help="JSON object of keyword arguments for the factory")
    args = parser.parse_args(argv)
    app = load(args.target, args.factory, json.loads(args.options))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn_config(app, log_level="info")
    print(f"{PORT_LINE}{sock.getsockname()[1]}", flush=True)
    Server(config, app).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
