"""The upload folder: where volume uploads are staged as files.

Each app takes a folder of its own inside the configured one (``upload_dir``, by default the
system's temporary directory), created on first use with owner-only permissions and removed
with everything in it when the app shuts down. A staged file is named by the server (random
hex), never by the client, is created exclusively (never through an existing file or link),
and lives directly in that folder: nothing is written anywhere else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

__all__ = ["StagedFile", "Staging"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class StagedFile:
    """A file being written in the upload folder."""

    __slots__ = ("_fd", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._fd: int | None = os.open(path, _FLAGS, 0o600)

    def write(self, data: bytes | memoryview) -> None:
        if self._fd is None:
            raise ValueError("the staged file is closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def finish(self) -> None:
        """Close the file; it stays until :meth:`discard` (or moved away by the app)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def discard(self) -> None:
        """Close and delete the file (a file the app moved away is left alone)."""
        self.finish()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __repr__(self) -> str:
        return f"<StagedFile {self.path.name} {self.size} bytes>"


class Staging:
    """The app's folder inside ``folder`` (None: the system's temporary directory)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        """The app's own folder, created on first use."""
        if self._root is None:
            base = self.folder if self.folder is not None else Path(tempfile.gettempdir())
            base.mkdir(parents=True, exist_ok=True)
            self._root = Path(tempfile.mkdtemp(prefix="livetemplate-uploads-", dir=base)).resolve()
        return self._root

    def create(self) -> StagedFile:
        """A new, empty file with a name of the server's choosing."""
        path = self.root / f"{secrets.token_hex(16)}.part"
        if path.parent != self.root:  # cannot happen with a hex name; checked all the same
            raise ValueError(f"refusing to write outside the upload folder: {path}")
        return StagedFile(path)

    def close(self) -> None:
        """Remove the app's folder and every file still in it."""
        if self._root is not None:
            root, self._root = self._root, None
            shutil.rmtree(root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<Staging {self._root or self.folder or 'temporary'}>"
