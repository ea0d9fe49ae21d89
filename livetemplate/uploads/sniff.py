"""What a file's first bytes say it is: the signatures of common binary formats, and markup
(HTML, SVG) that a browser would run if the file were served back.

Used to check an upload's content against what its upload accepts, whatever its name says.
"""

from __future__ import annotations

__all__ = ["SNIFFABLE", "SNIFF_LENGTH", "ZIP_BASED", "sniff"]

#: Bytes of a file's start that :func:`sniff` looks at.
SNIFF_LENGTH = 512

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),  # an empty archive
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"MZ", "application/x-msdownload"),
    (0, b"\x00asm", "application/wasm"),
)

#: ISO base media brands (bytes 8-11 after ``ftyp`` at 4).
_BRANDS = {b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic", b"heix": "image/heic"}

#: Markup a browser renders as a document (and runs scripts of), after optional whitespace.
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<meta", b"<style")

#: Types :func:`sniff` recognises by signature: a file claiming one of them (by its name or
#: declared type) whose content does not show its signature is not what it claims.
SNIFFABLE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/tiff",
        "image/bmp",
        "image/avif",
        "image/heic",
        "application/pdf",
        "application/zip",
        "application/gzip",
    }
)

#: Formats that are zip archives inside: content sniffed as a zip satisfies them.
ZIP_BASED = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/epub+zip",
        "application/java-archive",
        "application/vnd.android.package-archive",
    }
)


def sniff(head: bytes) -> str | None:
    """The media type the start of a file shows, or None when it shows none we know."""
    for offset, signature, media_type in _SIGNATURES:
        if head.startswith(signature, offset):
            return media_type
    if head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00":  # reserved fields of a bitmap header
        return "image/bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _BRANDS.get(head[8:12], "video/mp4")
    return _markup(head)


def _markup(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()  # a UTF-8 byte order mark, then whitespace
    if text.startswith(_HTML_STARTS):
        return "text/html"
    if text.startswith(b"<svg") or (text.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in text):
        return "image/svg+xml"
    if text.startswith(b"<?xml"):
        return "application/xml"
    return None
