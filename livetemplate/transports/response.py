"""Writing an HTTP response to ASGI."""

from __future__ import annotations

from ..types import Send

__all__ = ["Responder"]


class Responder:
    """Sends one HTTP response; ``headers`` go on whatever it sends."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self._send = send
        self.headers = headers or []

    def cookie(self, value: str | None) -> None:
        """Add a ``Set-Cookie`` header (nothing for None)."""
        if value:
            self.headers.append((b"set-cookie", value.encode("latin-1")))

    async def __call__(self, status: int, body: bytes = b"", content_type: str | None = None, **extra: str) -> None:
        headers = list(self.headers)
        if content_type is not None:
            headers.append((b"content-type", content_type.encode("latin-1")))
        for name, value in extra.items():
            headers.append((name.replace("_", "-").encode("latin-1"), value.encode("latin-1")))
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def json(self, status: int, payload: bytes) -> None:
        await self(status, payload, "application/json")

    async def text(self, status: int, message: str) -> None:
        await self(status, message.encode(), "text/plain; charset=utf-8")
