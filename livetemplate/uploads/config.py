"""Declaring an upload: ``mount(..., uploads={"avatar": Upload(accept=["image/*"])})``.

An :class:`Upload` says what files an ``<input type="file" lvt-upload="avatar">`` may send
(types, sizes, how many) and where their bytes go:

``volume``   (default) through the server, staged as a file in the app's upload folder;
             over the WebSocket in base64 chunks, or one multipart POST without it.
``proxied``  through the server without touching its disk: one multipart POST per file,
             streamed to the upload's ``receiver``.
``external`` from the browser straight to object storage (S3 and compatible), with the URL
             the upload's ``presign`` callback returns; the server only hears of the result.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .sniff import SNIFFABLE, ZIP_BASED

__all__ = [
    "CLIENT_CHUNK_SIZE",
    "PendingUpload",
    "Presigned",
    "Receiver",
    "Upload",
    "UploadPart",
    "UploadTooLarge",
    "display_name",
]

Mode = Literal["volume", "proxied", "external"]
#: How each mode is named on the wire (the client's ``direct`` is external storage).
WIRE_MODES: Mapping[str, str] = {"volume": "volume", "proxied": "proxied", "external": "direct"}
#: The chunk size of ``@livetemplate/client`` 0.25.1 (not configurable in the browser).
CLIENT_CHUNK_SIZE = 256 * 1024
#: Longest file name accepted from a client, in characters.
MAX_NAME_LENGTH = 255

_UPLOAD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/([a-z0-9][a-z0-9!#$&^_.+-]*|\*)\Z")
_EXTENSION = re.compile(r"\.[a-z0-9][a-z0-9_+-]*\Z")
#: Types a wildcard never matches: markup that runs scripts when served back.
_SCRIPTABLE = frozenset({"image/svg+xml", "text/html", "application/xhtml+xml", "application/xml", "text/xml"})


@dataclass(frozen=True)
class PendingUpload:
    """A file about to go to external storage, as the ``presign`` callback sees it."""

    upload: str  # the upload's name
    entry_id: str
    client_name: str  # a display name: the client's, without any path or control characters
    content_type: str
    size: int
    group_id: str


@dataclass(frozen=True)
class Presigned:
    """Where the browser puts the file: a presigned ``PUT`` to ``url`` with ``headers``
    (``fields`` for a presigned ``POST`` form, which client 0.25.1 does not send).
    ``ref`` names the stored object for the app (by default the URL without its query)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)
    uploader: str = "s3"
    ref: str | None = None

    @property
    def location(self) -> str:
        return self.ref if self.ref is not None else self.url.split("?", 1)[0]

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uploader": self.uploader, "url": self.url}
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.headers:
            out["headers"] = dict(self.headers)
        return out


class UploadTooLarge(Exception):
    """A proxied file went past its upload's ``max_file_size`` while streaming."""


class UploadPart:
    """A proxied file on its way through the server: iterate it for its bytes (``async for
    chunk in part``). Past the upload's ``max_file_size`` the iteration raises
    :class:`~livetemplate.uploads.UploadTooLarge`, so a receiver never stores a cut file."""

    def __init__(
        self,
        upload: str,
        client_name: str,
        content_type: str,
        fields: Mapping[str, Any],
        group_id: str,
        chunks: AsyncIterator[bytes],
    ) -> None:
        self.upload = upload
        self.client_name = client_name
        self.content_type = content_type
        self.fields = dict(fields)  # the form fields sent before the file
        self.group_id = group_id
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    def __repr__(self) -> str:
        return f"<UploadPart {self.upload}: {self.client_name!r}>"


#: The presigner of an external upload: the URL to put the file to (sync or async).
Presigner = Callable[[PendingUpload], "Presigned | Awaitable[Presigned]"]
#: The receiver of a proxied upload: stores the part's bytes, returns a reference to them.
Receiver = Callable[[UploadPart], Awaitable["str | None"]]


def display_name(raw: str) -> str:
    """A client's file name made safe to show and log: its last path component, without
    control characters, at most :data:`MAX_NAME_LENGTH` characters. Never a path."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "file"
    return name[:MAX_NAME_LENGTH]


def _type_of(name: str) -> str | None:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed.lower() if guessed else None


@dataclass(frozen=True, kw_only=True)
class Upload:
    """What an upload accepts and where its files go (see the module's documentation).

    ``accept`` lists extensions (``".png"``), media types (``"image/png"``) and wildcards
    (``"image/*"``; a wildcard never admits SVG or other markup: name those explicitly);
    empty accepts any file. A file must be accepted by its name *and* by its content (its
    first bytes, for the formats :mod:`~livetemplate.uploads.sniff` knows).
    ``chunk_size`` is the largest WebSocket chunk taken (the official client sends 256 KiB).
    """

    accept: Sequence[str] = ()
    max_entries: int = 1
    max_file_size: int = 8 * 1024 * 1024
    auto_upload: bool = True
    chunk_size: int = CLIENT_CHUNK_SIZE
    mode: Mode = "volume"
    presign: Presigner | None = None
    receiver: Receiver | None = None

    def __post_init__(self) -> None:
        if isinstance(self.accept, str):
            raise TypeError("accept is a list of types, for example ['.png', 'image/*']")
        accept = tuple(item.strip().lower() for item in self.accept)
        for item in accept:
            if not (_EXTENSION.match(item) or _MEDIA_TYPE.match(item)):
                raise ValueError(f"accept: {item!r} is neither an extension ('.png') nor a media type ('image/*')")
        object.__setattr__(self, "accept", accept)
        if self.max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if self.max_file_size < 1:
            raise ValueError("max_file_size must be at least 1 byte")
        if self.chunk_size < CLIENT_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be at least {CLIENT_CHUNK_SIZE} bytes: the official client sends that")
        if self.mode not in WIRE_MODES:
            raise ValueError(f"mode is 'volume', 'proxied' or 'external', not {self.mode!r}")
        if (self.mode == "external") != (self.presign is not None):
            raise ValueError("an external upload needs presign=, and only an external upload takes it")
        if (self.mode == "proxied") != (self.receiver is not None):
            raise ValueError("a proxied upload needs receiver=, and only a proxied upload takes it")

    @property
    def wire_mode(self) -> str:
        return WIRE_MODES[self.mode]

    @property
    def frame_limit(self) -> int:
        """The largest WebSocket message carrying one chunk (base64 and the JSON around it)."""
        return self.chunk_size * 4 // 3 + 4096

    def _matches(self, media_type: str | None) -> bool:
        if not media_type:
            return False
        media_type = media_type.split(";", 1)[0].strip().lower()
        for item in self.accept:
            if item.startswith("."):
                if _type_of("x" + item) == media_type:
                    return True
            elif item == media_type or (
                item.endswith("/*") and media_type.startswith(item[:-1]) and media_type not in _SCRIPTABLE
            ):
                return True
        return False

    def check_name(self, name: str, declared_type: str) -> str | None:
        """Why a file of this name and declared type is refused, or None."""
        if not self.accept:
            return None
        extension = ("." + name.rsplit(".", 1)[1].lower()) if "." in name else ""
        by_name = _type_of(name) if extension else None
        if extension in self.accept or self._matches(by_name):
            return None
        if by_name is None and self._matches(declared_type):
            return None
        return f"{name}: this type of file is not accepted"

    def check_content(self, name: str, declared_type: str, sniffed: str | None) -> str | None:
        """Why content whose first bytes show ``sniffed`` (None: nothing known) is refused
        for a file of this name, or None."""
        if not self.accept:
            return None
        if sniffed is not None:
            if self._matches(sniffed):
                return None
            claimed = self.content_type(name, declared_type, None)
            if sniffed == "application/zip" and claimed in ZIP_BASED and self._matches(claimed):
                return None
            return f"{name}: the content is {sniffed}, which is not accepted"
        claimed = self.content_type(name, declared_type, None)
        if claimed in SNIFFABLE:
            return f"{name}: the content is not {claimed}"
        return None

    @staticmethod
    def content_type(name: str, declared_type: str, sniffed: str | None) -> str:
        """The type a file is reported as: what its content shows, else what its name says,
        else what the client declared."""
        declared = declared_type.split(";", 1)[0].strip().lower()
        return sniffed or _type_of(name) or declared or "application/octet-stream"
