"""Serve the chat.

    python -m examples.chat [--host 127.0.0.1] [--port 8000] [--backend redis://localhost:6379]

The port may also come from ``PORT``; the backend from ``LIVETEMPLATE_REDIS_URL`` (or
``LIVETEMPLATE_BACKEND``), the secret that signs session cookies from
``LIVETEMPLATE_SECRET_KEY`` (the same on every instance). See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os

from livetemplate.server import run

from .app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat", description="Serve the chat example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--backend", help="memory:// or a Redis URL (default: LIVETEMPLATE_REDIS_URL, else memory)")
    args = parser.parse_args(argv)
    options = {"backend": args.backend} if args.backend else {}
    run(create_app(**options), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
