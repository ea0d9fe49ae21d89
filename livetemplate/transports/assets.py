"""The client's bundle, served under a versioned name below the app's path."""

from __future__ import annotations

from functools import cache
from importlib import resources

from .response import Responder

__all__ = ["check_client_asset", "client_asset_name", "serve_asset"]

_BUNDLE = "livetemplate-client.browser.js"


@cache
def client_version() -> str:
    return _static("client-version.txt").decode().strip()


@cache
def client_asset_name() -> str:
    """The bundle's file name, with the client's version in it."""
    return f"livetemplate-client-{client_version()}.js"


@cache
def _static(name: str) -> bytes:
    return resources.files("livetemplate").joinpath("static", name).read_bytes()


async def serve_asset(name: str, method: str, respond: Responder) -> None:
    """The bundle (or its source map), cached for a year: its name changes with its version."""
    files = {client_asset_name(): _BUNDLE, client_asset_name() + ".map": _BUNDLE + ".map"}
    if name not in files or method not in ("GET", "HEAD"):
        await respond.text(404, "Not Found")
        return
    body = _static(files[name]) if method == "GET" else b""
    content_type = "application/javascript; charset=utf-8" if name.endswith(".js") else "application/json"
    await respond(200, body, content_type, cache_control="public, max-age=31536000, immutable")


def check_client_asset() -> None:
    """Fail early (at mount) when the client bundle was not built into the package."""
    try:
        client_asset_name()
    except (FileNotFoundError, OSError) as exc:
        raise RuntimeError(
            "the @livetemplate/client bundle is missing from livetemplate/static/: run scripts/fetch-client "
            "(make does), or pass client_script_url= to mount()"
        ) from exc
