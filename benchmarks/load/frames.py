"""Just enough RFC 6455 for the harness: the handshake key, frame encoding (masked for a
client, plain for the floor server) and an incremental frame parser."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib

__all__ = ["FrameParser", "accept_key", "client_frame", "server_frame", "upgrade_request"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def upgrade_request(host: str, port: int, path: str, *, cookie: str = "", deflate: bool = False) -> bytes:
    """A client's WebSocket upgrade request (a browser's headers: ``Origin``, the cookie)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://{host}:{port}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _header(opcode: int, length: int, masked: bool) -> bytes:
    bit = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, bit | length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, bit | 127, length)


def server_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One unmasked frame, as a server sends it."""
    return _header(opcode, len(payload), False) + payload


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def client_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One masked frame (random key), as a client must send it."""
    key = os.urandom(4)
    return _header(opcode, len(payload), True) + key + _mask(payload, key)


class FrameParser:
    """Feeds bytes, yields ``(opcode, payload)`` of complete messages. Unmasks client
    frames; inflates compressed ones when ``inflate`` (permessage-deflate was agreed)."""

    __slots__ = ("_buffer", "_inflater")

    def __init__(self, inflate: bool = False) -> None:
        self._buffer = b""
        self._inflater = zlib.decompressobj(-15) if inflate else None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        messages: list[tuple[int, bytes]] = []
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = struct.unpack_from("!H", buffer, pos + 2)[0], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = struct.unpack_from("!Q", buffer, pos + 2)[0], 10
            masked = second & 0x80
            if masked:
                head += 4
            if size - pos < head + length:
                break
            payload = buffer[pos + head : pos + head + length]
            if masked:
                payload = _mask(payload, buffer[pos + head - 4 : pos + head])
            if first & 0x40 and self._inflater is not None:  # RSV1: compressed
                payload = self._inflater.decompress(payload + b"\x00\x00\xff\xff")
            messages.append((first & 0x0F, payload))
            pos += head + length
        self._buffer = buffer[pos:]
        return messages
