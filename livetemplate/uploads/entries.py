"""Upload entries: the server's record of each file (:class:`Entry`), what an action gets
(:class:`UploadedFile`), what a template shows (:class:`UploadStatus`), and the set of one
tab's or one request's entries (:class:`Entries`)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .config import Upload, display_name
from .sniff import SNIFF_LENGTH, sniff
from .staging import StagedFile

__all__ = ["Entries", "Entry", "UploadStatus", "UploadedFile", "errors_by_upload"]


class UploadStatus:
    """An entry as templates see it (``{% for e in lvt.uploads("avatar") %}``)."""

    __slots__ = ("done", "error", "id", "name", "progress", "size", "type", "valid")

    def __init__(self, entry: Entry) -> None:
        self.id = entry.id
        self.name = entry.name  # the file's name (a display name: no path)
        self.size = entry.size
        self.type = entry.content_type
        self.progress = entry.progress
        self.done = entry.done
        self.valid = entry.error is None
        self.error = entry.error or ""

    @property
    def client_name(self) -> str:
        return self.name

    @property
    def errors(self) -> list[str]:
        """The entry's error as a list (empty when valid)."""
        return [self.error] if self.error else []

    def __repr__(self) -> str:
        return f"<UploadStatus {self.name!r} {self.progress}%{' ' + self.error if self.error else ''}>"


class UploadedFile:
    """A completed upload, as an action gets it from ``ctx.uploads(name)``.

    ``path`` is the staged file (volume uploads): read it, :meth:`open` it, or
    :meth:`move_to` a place of the app's (otherwise it is deleted once the action has
    committed, or when the tab closes). ``ref`` is where external and proxied uploads went.
    """

    __slots__ = ("_entry", "client_name", "client_type", "content_type", "path", "ref", "size", "upload")

    def __init__(self, entry: Entry) -> None:
        self._entry = entry
        self.upload = entry.upload
        self.client_name = entry.name
        self.client_type = entry.client_type
        self.content_type = entry.content_type
        self.size = entry.received if entry.staged is not None or entry.mode == "proxied" else entry.size
        self.path: Path | None = entry.staged.path if entry.staged is not None else None
        self.ref = entry.ref

    def open(self) -> IO[bytes]:
        """The staged file, open for reading."""
        if self.path is None:
            raise FileNotFoundError(f"{self.client_name}: this upload has no local file (see .ref)")
        return self.path.open("rb")

    def read_bytes(self) -> bytes:
        with self.open() as file:
            return file.read()

    def move_to(self, destination: str | os.PathLike[str]) -> Path:
        """Move the staged file to ``destination`` (a file path; its folder must exist) and
        keep it there: it is no longer the upload's to delete. Refuses to overwrite."""
        if self.path is None:
            raise FileNotFoundError(f"{self.client_name}: this upload has no local file (see .ref)")
        target = Path(destination)
        if target.exists():
            raise FileExistsError(f"{target} exists")
        shutil.move(self.path, target)
        self.path = target
        self._entry.staged = None  # moved away: nothing left to clean up
        return target

    def __repr__(self) -> str:
        return f"<UploadedFile {self.upload}: {self.client_name!r} {self.content_type} {self.size} bytes>"


class Entry:
    """One file of an upload, from the client's announcement to its consumption."""

    def __init__(self, upload: str, config: Upload, client_name: str, client_type: str, size: int) -> None:
        self.id = secrets.token_urlsafe(12)
        self.upload = upload
        self.config = config
        self.mode = config.mode
        self.client_name = client_name  # as the client sent it: it matches its file by it
        self.name = display_name(client_name)
        self.client_type = client_type[:255]
        self.size = size  # as announced (multipart: as received)
        self.received = 0
        self.absorbed = 0  # bytes of chunks dropped after the entry failed or was cancelled
        self.head = b""  # the first bytes, until sniffed
        self.sniffed = False
        self.content_type = config.content_type(self.name, client_type, None)
        self.error: str | None = None
        self.done = False
        self.staged: StagedFile | None = None
        self.ref: str | None = None
        self.external: dict[str, Any] | None = None

    @property
    def progress(self) -> int:
        if self.done:
            return 100
        return self.received * 100 // self.size if self.size else 0

    @property
    def active(self) -> bool:
        """Still waiting for bytes."""
        return not self.done and self.error is None

    def fail(self, message: str) -> None:
        """Mark the entry failed and drop what was received."""
        if self.error is None:
            self.error = message
        self.discard()

    def discard(self) -> None:
        if self.staged is not None:
            staged, self.staged = self.staged, None
            staged.discard()

    def inspect(self, data: bytes, *, final: bool = False) -> bool:
        """Collect the first bytes and, once there are enough (or the file ended), check the
        content against the upload's accept list; False when it is refused."""
        if self.sniffed:
            return True
        if len(self.head) < SNIFF_LENGTH:
            self.head += data[: SNIFF_LENGTH - len(self.head)]
        if len(self.head) < SNIFF_LENGTH and not final:
            return True
        self.sniffed = True
        found = sniff(self.head)
        self.head = b""
        problem = self.config.check_content(self.name, self.client_type, found)
        if problem is not None:
            self.fail(problem)
            return False
        self.content_type = self.config.content_type(self.name, self.client_type, found)
        return True

    def answer(self) -> dict[str, Any]:
        """The entry in the reply to ``upload_start``."""
        out: dict[str, Any] = {
            "entry_id": self.id,
            "client_name": self.client_name,
            "valid": self.error is None,
            "auto_upload": self.config.auto_upload,
            "mode": self.config.wire_mode,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.external is not None:
            out["external"] = self.external
        return out

    def __repr__(self) -> str:
        return f"<Entry {self.upload}/{self.id} {self.name!r} {self.received}/{self.size}>"


class Entries:
    """The entries of one tab (or one HTTP request), in the order they were announced."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def add(self, entry: Entry) -> None:
        self._entries[entry.id] = entry

    def remove(self, entry: Entry) -> None:
        entry.discard()
        self._entries.pop(entry.id, None)

    def take(self, entry: Entry) -> None:
        """Hand ``entry`` (and its staged file) over to another owner."""
        self._entries.pop(entry.id, None)

    def of(self, upload: str) -> list[Entry]:
        return [e for e in self._entries.values() if e.upload == upload]

    # -- what actions and templates see -----------------------------------------------------

    def completed(self, upload: str) -> list[UploadedFile]:
        """The completed, valid files of ``upload`` (``ctx.uploads(name)``)."""
        return [UploadedFile(e) for e in self._entries.values() if e.upload == upload and e.done and e.error is None]

    def consume(self, files: Iterable[UploadedFile]) -> None:
        """Forget files an action took (after it committed), deleting what it did not move."""
        for file in files:
            entry = self._entries.get(file._entry.id)
            if entry is file._entry:
                self.remove(entry)

    def statuses(self, upload: str) -> list[UploadStatus]:
        return [UploadStatus(e) for e in self._entries.values() if e.upload == upload]

    def error(self, upload: str) -> str:
        for entry in self._entries.values():
            if entry.upload == upload and entry.error is not None:
                return entry.error
        return ""

    def clear(self) -> None:
        """Delete every staged file and forget every entry."""
        for entry in list(self._entries.values()):
            entry.discard()
        self._entries.clear()


def errors_by_upload(entries: Iterable[Entry]) -> dict[str, str]:
    """The first error of each upload among ``entries`` (the refused files), by upload name."""
    errors: dict[str, str] = {}
    for entry in entries:
        if entry.error is not None:
            errors.setdefault(entry.upload, entry.error)
    return errors
