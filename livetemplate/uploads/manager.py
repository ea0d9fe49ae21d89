"""An app's uploads: the declarations, the upload folder, each tab's entries, and what the
HTTP side needs (the ``upload_start`` handshake without a socket, the completion of external
uploads, multipart forms)."""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from collections.abc import Mapping

from ..types import Receive
from ..wire import UploadComplete, UploadStart
from .config import Upload
from .entries import Entries, Entry
from .multipart import Form, read_form
from .protocol import TabUploads, announce
from .staging import Staging

__all__ = ["Uploads", "check_uploads"]

_UPLOAD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
#: External entries presigned over HTTP, remembered per session group until completed.
_PRESIGNED_PER_GROUP = 64
_PRESIGNED_GROUPS = 10_000
_PRESIGNED_TTL = 3600.0


def check_uploads(uploads: Mapping[str, Upload]) -> dict[str, Upload]:
    """The declarations of ``mount(uploads=...)``, checked: names are lowercase identifiers
    (the completion action is ``upload_<name>_complete``), values are :class:`Upload`."""
    if not isinstance(uploads, Mapping):
        raise TypeError("uploads is a mapping of names to Upload(...)")
    for name, config in uploads.items():
        if not isinstance(name, str) or not _UPLOAD_NAME.match(name):
            raise ValueError(f"upload name {name!r}: use lowercase letters, digits and '_', starting with a letter")
        if not isinstance(config, Upload):
            raise TypeError(f"uploads[{name!r}] must be an Upload, not {type(config).__name__}")
    return dict(uploads)


class Uploads:
    """The uploads of one mounted app."""

    def __init__(self, configs: Mapping[str, Upload], folder: str | os.PathLike[str] | None = None) -> None:
        self.configs = check_uploads(configs)
        self.staging = Staging(folder)
        self.frame_limit = max((c.frame_limit for c in self.configs.values() if c.mode == "volume"), default=0)
        self._presigned: OrderedDict[str, OrderedDict[str, tuple[Entry, float]]] = OrderedDict()

    def tab(self, group_id: str) -> TabUploads:
        """The uploads of a new tab of ``group_id``."""
        return TabUploads(self.configs, self.staging, group_id)

    # -- HTTP ---------------------------------------------------------------------------------

    async def start(self, message: UploadStart, group_id: str) -> bytes:
        """``upload_start`` without a socket: the entries, remembering external ones until the
        client says they are stored (no tab holds them)."""
        entries, reply = await announce(self.configs, message, group_id)
        pending = [e for e in entries if e.error is None and e.external is not None]
        if pending:
            held = self._presigned.pop(group_id, None) or OrderedDict()
            self._presigned[group_id] = held
            for entry in pending:
                assert entry.external is not None
                held[entry.external["url"]] = (entry, time.monotonic() + _PRESIGNED_TTL)
            while len(held) > _PRESIGNED_PER_GROUP:
                held.popitem(last=False)
            while len(self._presigned) > _PRESIGNED_GROUPS:
                self._presigned.popitem(last=False)
        return reply

    def complete(self, message: UploadComplete, group_id: str) -> Entries:
        """``upload_complete`` without a socket: the external entries this group had presigned,
        found by the URL the client put them to; others come back with an error."""
        out = Entries()
        held = self._presigned.get(group_id)
        now = time.monotonic()
        for stored in message.entries[:_PRESIGNED_PER_GROUP]:
            found = held.pop(stored.ref, None) if held is not None else None
            if found is not None and found[1] > now and found[0].upload == message.upload_name:
                entry = found[0]
                entry.done = True
            else:
                config = self.configs.get(message.upload_name, Upload())
                entry = Entry(message.upload_name, config, stored.client_name, stored.type, stored.size)
                entry.error = f"{entry.name}: no such upload was prepared for this session (or it expired)"
            out.add(entry)
        return out

    async def read_form(
        self, receive: Receive, content_type: str, content_length: int | None, *, max_fields: int, group_id: str
    ) -> Form:
        """A multipart form, its files checked and staged (or streamed to their receivers)."""
        return await read_form(
            receive, content_type, content_length, self.configs, self.staging, max_fields=max_fields, group_id=group_id
        )

    def close(self) -> None:
        """Delete the upload folder's files (the app shuts down)."""
        self._presigned.clear()
        self.staging.close()
