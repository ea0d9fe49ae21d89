"""The upload protocol of one tab (section 1.9 of the protocol), without I/O but the
staged files: ``upload_start`` announces files and gets entries back (valid, or with the
reason why not), ``upload_chunk`` carries base64 bytes at checked offsets, ``upload_complete``
ends them, ``cancel_upload`` drops one. Each message gives a :class:`Step`: the frames to send
and what the tab must do next (render its entries, run the upload's completion action).
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..wire import ERROR_TYPE, UPLOAD_PROGRESS, CancelUpload, UploadChunk, UploadComplete, UploadStart
from .config import MAX_NAME_LENGTH, PendingUpload, Presigned, Upload
from .entries import Entries, Entry
from .staging import Staging

__all__ = ["Step", "TabUploads", "announce", "completion_action"]

logger = logging.getLogger(__name__)

#: Error codes of the ``{"type": "error", "code": ...}`` envelope (the client fires ``lvt:error``).
UNKNOWN_ENTRY = "upload_unknown_entry"
UNKNOWN_UPLOAD = "upload_unknown"
#: Entries a tab remembers after cancelling them, to absorb the chunks still on their way.
_CLOSED_KEPT = 64
#: Most files one ``upload_start`` gets an answer for (those past an upload's limit included).
MAX_ANNOUNCED = 64

_encode = msgspec.json.encode


def completion_action(upload: str) -> str:
    """The action an upload's completed files are handed to: ``upload_<name>_complete``."""
    return f"upload_{upload}_complete"


def error_envelope(code: str) -> bytes:
    return _encode({"type": ERROR_TYPE, "code": code})


@dataclass
class Step:
    """What handling one upload message gives: ``frames`` to send now; ``render`` when the
    entries changed (a template may show them); ``completed`` names the upload whose files
    completed (its completion action runs, with ``data``)."""

    frames: list[bytes] = field(default_factory=list)
    render: bool = False
    completed: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


async def announce(configs: Mapping[str, Upload], message: UploadStart, group_id: str) -> tuple[list[Entry], bytes]:
    """Entries for the files ``message`` announces, each valid or with its error (presigned for
    an external upload), and the reply to send."""
    name = message.upload_name[:MAX_NAME_LENGTH]
    config = configs.get(name)
    entries: list[Entry] = []
    for index, file in enumerate(message.files[:MAX_ANNOUNCED]):
        entry = Entry(name, config or _UNKNOWN, file.name[:1024], file.type, file.size)
        entries.append(entry)
        if config is None:
            entry.error = f"no upload named {name!r}"
        elif len(file.name) > MAX_NAME_LENGTH:
            entry.error = f"{entry.name}: the file name is too long"
        elif index >= config.max_entries:
            entry.error = f"{entry.name}: too many files (at most {config.max_entries})"
        elif file.size > config.max_file_size:
            entry.error = f"{entry.name}: too large (at most {_size(config.max_file_size)})"
        else:
            entry.error = config.check_name(entry.name, file.type)
        if entry.error is None and config is not None and config.presign is not None:
            await _presign(entry, config, group_id)
    reply = _encode({"upload_name": name, "entries": [entry.answer() for entry in entries]})
    return entries, reply


_UNKNOWN = Upload()


async def _presign(entry: Entry, config: Upload, group_id: str) -> None:
    assert config.presign is not None
    pending = PendingUpload(entry.upload, entry.id, entry.name, entry.content_type, entry.size, group_id)
    try:
        result = config.presign(pending)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Presigned):
            raise TypeError(f"presign returned {type(result).__name__}, not Presigned")
    except Exception:
        logger.exception("presigning upload %s (%s) failed", entry.upload, entry.name)
        entry.error = f"{entry.name}: the upload could not be prepared"
        return
    entry.external = result.meta()
    entry.ref = result.location


def _size(size: int) -> str:
    """A size for people: 512 bytes, 9.77 KiB, 5 MiB."""
    if size < 1024:
        return f"{size} bytes"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.3g} {unit}"


class TabUploads(Entries):
    """The uploads of one tab: its entries, and the protocol messages that change them."""

    def __init__(self, configs: Mapping[str, Upload], staging: Staging, group_id: str) -> None:
        super().__init__()
        self.configs = configs
        self.staging = staging
        self.group_id = group_id
        self.frame_limit = max((c.frame_limit for c in configs.values() if c.mode == "volume"), default=0)
        self._closed: OrderedDict[str, Entry] = OrderedDict()  # cancelled: absorbing late chunks

    # -- the transport asks -------------------------------------------------------------------

    def receiving(self, entry_id: str) -> bool:
        """Whether chunks for ``entry_id`` are expected (or absorbed): those are not rate-limited
        and may be as large as a chunk."""
        entry = self.get(entry_id) or self._closed.get(entry_id)
        if entry is None or entry.mode != "volume" or entry.done:
            return False
        return (
            entry.received < entry.size if entry.active and entry.id in self._entries else entry.absorbed < entry.size
        )

    # -- messages ----------------------------------------------------------------------------------

    async def start(self, message: UploadStart) -> Step:
        """New files replace the entries of the same upload that no action took yet."""
        for entry in self.of(message.upload_name):
            self._close(entry)
        entries, reply = await announce(self.configs, message, self.group_id)
        for entry in entries:
            if message.upload_name in self.configs:
                self.add(entry)
        return Step([reply], render=True)

    def chunk(self, message: UploadChunk) -> Step:
        entry = self.get(message.entry_id)
        closed = self._closed.get(message.entry_id)
        data = message.chunk_base64
        if entry is None and closed is not None:
            closed.absorbed += len(data)  # cancelled: absorb what was on its way
            return Step()
        if entry is None:
            return Step([error_envelope(UNKNOWN_ENTRY)])
        if entry.error is not None or entry.done:
            entry.absorbed += len(data)  # failed (or complete): absorb the rest quietly
            return Step()
        problem = self._check(entry, message)
        if problem is None and len(data) > entry.config.chunk_size:
            problem = "the chunk is too large"
        if problem is None and entry.received + len(data) > entry.size:
            problem = "more bytes than announced"
        if problem is not None:
            entry.fail(f"{entry.name}: {problem}")
            entry.absorbed = entry.received + len(data)
            return Step(render=True)
        before = entry.progress
        if not self._store(entry, data, final=entry.received + len(data) == entry.size):
            return Step(render=True)
        progress = _encode(
            {
                "type": UPLOAD_PROGRESS,
                "upload_name": entry.upload,
                "entry_id": entry.id,
                "client_name": entry.client_name,
                "progress": entry.progress,
                "bytes_recv": entry.received,
                "bytes_total": entry.size,
            }
        )
        return Step([progress], render=entry.progress != before)

    def complete(self, message: UploadComplete) -> Step:
        name = message.upload_name
        finished: list[Entry] = []
        for entry_id in message.entry_ids[:MAX_ANNOUNCED]:
            entry = self.get(entry_id)
            if entry is None or entry.upload != name or entry.done:
                continue
            if entry.error is None:
                self._finish(entry)
            finished.append(entry)
        if not finished:
            return Step([error_envelope(UNKNOWN_ENTRY)])
        errors = [e.error for e in finished if e.error is not None]
        reply: dict[str, object] = {"upload_name": name, "success": not errors}
        if errors:
            reply["error"] = errors[0]
        completed = name if any(e.done for e in finished) else None
        return Step([_encode(reply)], render=True, completed=completed)

    def cancel(self, message: CancelUpload) -> Step:
        entry = self.get(message.entry_id)
        if entry is None:
            return Step()
        self._close(entry)
        return Step(render=True)

    def adopt(self, arrived: list[Entry], data: Mapping[str, Any]) -> Step:
        """Take over files that came by a multipart POST for entries this tab announced
        (proxied uploads, and volume ones while the socket was down): the POST's entry
        replaces the announced one."""
        names = {e.upload for e in arrived}
        for entry in arrived:
            waiting = self.waiting_for(entry.upload, entry.client_name)
            if waiting is not None:
                self._entries.pop(waiting.id, None)
                entry.id = waiting.id
            self.add(entry)
        completed = next((n for n in names if any(e.done and e.upload == n for e in arrived)), None)
        return Step(render=True, completed=completed, data=dict(data))

    def waiting_for(self, upload: str, client_name: str) -> Entry | None:
        """The announced entry of ``upload`` for the file ``client_name`` still waiting for
        its bytes by a multipart POST (a proxied upload), if any."""
        for entry in self.of(upload):
            if entry.client_name == client_name and entry.active and entry.received == 0 and entry.staged is None:
                return entry
        return None

    def close(self) -> None:
        """The tab closed: delete every staged file."""
        self.clear()
        self._closed.clear()

    # -- internals ----------------------------------------------------------------------------------

    def _check(self, entry: Entry, message: UploadChunk) -> str | None:
        if entry.mode != "volume":
            return "this upload does not take chunks"
        if message.total != entry.size:
            return f"the chunk says the file has {message.total} bytes, not {entry.size}"
        if message.offset != entry.received:
            return f"chunk at offset {message.offset}, expected {entry.received}"
        return None

    def _store(self, entry: Entry, data: bytes, *, final: bool) -> bool:
        if not entry.inspect(data, final=final):
            entry.absorbed = entry.received = entry.received + len(data)
            return False
        try:
            if entry.staged is None:
                entry.staged = self.staging.create()
            entry.staged.write(data)
        except OSError as exc:
            logger.error("staging upload %s (%s) failed: %s", entry.upload, entry.name, exc)
            entry.fail(f"{entry.name}: the server could not store the file")
            entry.absorbed = entry.received = entry.received + len(data)
            return False
        entry.received += len(data)
        return True

    def _finish(self, entry: Entry) -> None:
        if entry.mode == "volume":
            if entry.received != entry.size:
                entry.fail(f"{entry.name}: incomplete ({entry.received} of {entry.size} bytes)")
                return
            if not entry.inspect(b"", final=True):
                return
            if entry.staged is None:  # an empty file
                try:
                    entry.staged = self.staging.create()
                except OSError as exc:
                    logger.error("staging upload %s (%s) failed: %s", entry.upload, entry.name, exc)
                    entry.fail(f"{entry.name}: the server could not store the file")
                    return
            entry.staged.finish()
        elif entry.mode == "proxied":
            return  # its bytes come by a multipart POST, not by this message
        entry.done = True

    def _close(self, entry: Entry) -> None:
        self.remove(entry)
        entry.absorbed = entry.received
        if entry.mode == "volume" and entry.received < entry.size and not entry.done:
            self._closed[entry.id] = entry
            while len(self._closed) > _CLOSED_KEPT:
                self._closed.popitem(last=False)
