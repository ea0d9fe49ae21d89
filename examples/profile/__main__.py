"""Serve the profile example on http://127.0.0.1:8000."""

from __future__ import annotations

from livetemplate.server import run

from .app import app


def main() -> None:
    run(app, host="127.0.0.1", port=8000, log_level="info")


if __name__ == "__main__":
    main()
