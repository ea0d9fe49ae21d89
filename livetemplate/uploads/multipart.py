"""Reading a ``multipart/form-data`` body as it streams in (python-multipart's parser), with
every limit enforced on the way: fields up to a byte budget, files only for declared uploads,
at most ``max_entries`` per upload, each checked by name, by content (its first bytes) and by
size as its bytes arrive. Volume files are staged in the upload folder; proxied ones are
handed to their upload's receiver chunk by chunk; nothing is held in memory but one body
chunk and a file's first bytes, whatever the file size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..request import BodyTooLarge, body_chunks
from ..types import Receive
from ..wire import ACTION_FIELDS
from .config import Upload, UploadPart, UploadTooLarge
from .entries import Entries, Entry
from .staging import Staging

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["BodyRefused", "Form", "read_form"]

logger = logging.getLogger(__name__)

#: Room for the headers and boundaries of each part, in the bound on a body's size.
_PART_OVERHEAD = 16 * 1024
#: Chunks waiting for a proxied upload's receiver.
_QUEUED = 4


class BodyRefused(Exception):
    """The request is refused as a whole: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass
class Form:
    """A read form: its fields (a list for a repeated name) and its files' entries."""

    fields: dict[str, Any] = field(default_factory=dict)
    entries: Entries = field(default_factory=Entries)


def body_limit(configs: Mapping[str, Upload], max_fields: int) -> int:
    """The largest body a form of these uploads can need."""
    files = sum(c.max_file_size * c.max_entries + _PART_OVERHEAD * c.max_entries for c in configs.values())
    return max_fields + files + 64 * 1024


class _Part:
    """The part being read."""

    def __init__(self) -> None:
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, str] = {}
        self.name = ""
        self.filename: str | None = None
        self.value = bytearray()
        self.entry: Entry | None = None
        self.skip = False
        self.held: list[bytes] = []  # a proxied file's bytes until its content is checked
        self.queue: asyncio.Queue[bytes | BaseException | None] | None = None
        self.task: asyncio.Task[str | None] | None = None


class _Reader:
    def __init__(
        self,
        configs: Mapping[str, Upload],
        staging: Staging,
        max_fields: int,
        group_id: str,
    ) -> None:
        self.configs = configs
        self.staging = staging
        self.max_fields = max_fields
        self.group_id = group_id
        self.form = Form()
        self.events: list[tuple[str, bytes]] = []
        self.part = _Part()
        self.field_bytes = 0
        self.counts: dict[str, int] = {}
        self.finished = False

    # -- parser callbacks: record, handled after each write ----------------------------------

    def callbacks(self) -> MultipartCallbacks:
        def mark(kind: str) -> Any:
            return lambda: self.events.append((kind, b""))

        def data(kind: str) -> Any:
            return lambda buffer, start, end: self.events.append((kind, bytes(buffer[start:end])))

        callbacks: MultipartCallbacks = {
            "on_part_begin": mark("begin"),
            "on_header_field": data("field"),
            "on_header_value": data("value"),
            "on_header_end": mark("header_end"),
            "on_headers_finished": mark("headers_done"),
            "on_part_data": data("data"),
            "on_part_end": mark("end"),
            "on_end": mark("finished"),
        }
        return callbacks

    async def handle_events(self) -> None:
        events, self.events = self.events, []
        for kind, payload in events:
            part = self.part
            if kind == "begin":
                self.part = _Part()
            elif kind == "field":
                part.header_field += payload
            elif kind == "value":
                part.header_value += payload
            elif kind == "header_end":
                part.headers[part.header_field.decode("latin-1").strip().lower()] = part.header_value.decode(
                    "utf-8", "replace"
                )
                part.header_field.clear()
                part.header_value.clear()
            elif kind == "headers_done":
                await self._begin(part)
            elif kind == "data":
                await self._data(part, payload)
            elif kind == "end":
                await self._end(part)
            else:
                self.finished = True

    # -- parts ---------------------------------------------------------------------------------

    async def _begin(self, part: _Part) -> None:
        disposition, params = parse_options_header(part.headers.get("content-disposition", ""))
        if disposition != b"form-data":
            raise BodyRefused(400, "Bad Request: a part without Content-Disposition: form-data")
        part.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            return
        part.filename = filename.decode("utf-8", "replace")
        if part.filename == "":
            part.skip = True  # a file input left empty
            return
        config = self.configs.get(part.name)
        if config is None:
            raise BodyRefused(400, f"Bad Request: a file for {part.name[:64]!r}, which is not a declared upload")
        declared = part.headers.get("content-type", "")
        entry = part.entry = Entry(part.name, config, part.filename, declared, 0)
        self.form.entries.add(entry)
        count = self.counts[part.name] = self.counts.get(part.name, 0) + 1
        if config.mode == "external":
            entry.error = f"{entry.name}: this upload goes straight to storage, not through the server"
        elif count > config.max_entries:
            entry.error = f"{entry.name}: too many files (at most {config.max_entries})"
        else:
            entry.error = config.check_name(entry.name, declared)
        if entry.error is None and config.mode == "volume":
            try:
                entry.staged = self.staging.create()
            except OSError as exc:
                logger.error("staging upload %s (%s) failed: %s", entry.upload, entry.name, exc)
                entry.error = f"{entry.name}: the server could not store the file"

    async def _data(self, part: _Part, data: bytes) -> None:
        entry = part.entry
        if part.filename is None:
            self.field_bytes += len(data)
            if self.field_bytes > self.max_fields:
                raise BodyRefused(413, f"Payload Too Large: form fields beyond {self.max_fields} bytes")
            part.value += data
            return
        if entry is None:
            if data and part.skip:
                raise BodyRefused(400, "Bad Request: a file part without a file name")
            return
        entry.received += len(data)
        entry.size = entry.received
        if entry.error is not None or entry.done:  # refused, or its receiver took what it wanted
            return
        if entry.received > entry.config.max_file_size:
            await self._fail(part, entry, f"{entry.name}: too large (at most {entry.config.max_file_size} bytes)")
            return
        if not entry.inspect(data):
            await self._fail(part, entry, None)
            return
        await self._write(part, entry, data)

    async def _write(self, part: _Part, entry: Entry, data: bytes) -> None:
        if entry.staged is not None:
            try:
                entry.staged.write(data)
            except OSError as exc:
                logger.error("staging upload %s (%s) failed: %s", entry.upload, entry.name, exc)
                entry.fail(f"{entry.name}: the server could not store the file")
            return
        if not entry.sniffed:
            part.held.append(data)
            return
        if part.task is None:
            self._start_receiver(part, entry)
        assert part.task is not None and part.queue is not None
        for chunk in [*part.held, data]:
            if chunk:
                await self._feed(part, entry, chunk)
        part.held.clear()

    def _start_receiver(self, part: _Part, entry: Entry) -> None:
        receiver = entry.config.receiver
        assert receiver is not None
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(_QUEUED)
        fields = {k: v for k, v in self.form.fields.items() if k not in ACTION_FIELDS}
        upload_part = UploadPart(entry.upload, entry.name, entry.content_type, fields, self.group_id, _drain(queue))
        part.queue = queue

        async def receive() -> str | None:
            return await receiver(upload_part)

        part.task = asyncio.get_running_loop().create_task(receive())

    async def _feed(self, part: _Part, entry: Entry, item: bytes | BaseException | None) -> None:
        """Give the receiver ``item``, unless it has stopped (then the entry fails with why)."""
        assert part.task is not None and part.queue is not None
        put = asyncio.ensure_future(part.queue.put(item))
        done, _ = await asyncio.wait({put, part.task}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
        if part.task.done() and item is not None and not isinstance(item, BaseException):
            await self._settle(part, entry)

    async def _settle(self, part: _Part, entry: Entry) -> None:
        """The receiver finished: its reference, or why it failed."""
        assert part.task is not None
        try:
            ref = await part.task
        except UploadTooLarge:
            entry.fail(entry.error or f"{entry.name}: too large (at most {entry.config.max_file_size} bytes)")
        except Exception:
            logger.exception("the receiver of upload %s failed on %s", entry.upload, entry.name)
            entry.fail(f"{entry.name}: the server could not store the file")
        else:
            if entry.error is None:
                entry.ref = ref
                entry.done = True
        part.task = None

    async def _fail(self, part: _Part, entry: Entry, message: str | None) -> None:
        if message is not None:
            entry.fail(message)
        if part.task is not None:
            await self._feed(part, entry, UploadTooLarge(entry.error or "refused"))
            await self._settle(part, entry)
        part.held.clear()

    async def _end(self, part: _Part) -> None:
        entry = part.entry
        if part.filename is None:
            try:
                value: str = part.value.decode("utf-8")
            except UnicodeDecodeError:
                raise BodyRefused(400, "Bad Request: a form field that is not UTF-8") from None
            fields = self.form.fields
            previous = fields.get(part.name)
            if previous is None:
                fields[part.name] = value
            else:
                fields[part.name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            return
        if entry is None or entry.error is not None or entry.done:
            return
        if not entry.inspect(b"", final=True):
            await self._fail(part, entry, None)
            return
        if entry.staged is not None:
            entry.staged.finish()
            entry.done = True
            return
        if part.task is None:
            self._start_receiver(part, entry)
            for chunk in part.held:
                await self._feed(part, entry, chunk)
            part.held.clear()
        if part.task is not None and entry.error is None:
            await self._feed(part, entry, None)
            await self._settle(part, entry)

    async def abort(self) -> None:
        """Stop a receiver still running and drop every file (the body was refused)."""
        task = self.part.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.form.entries.clear()


async def _drain(queue: asyncio.Queue[bytes | BaseException | None]) -> AsyncIterator[bytes]:
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


async def read_form(
    receive: Receive,
    content_type: str,
    content_length: int | None,
    configs: Mapping[str, Upload],
    staging: Staging,
    *,
    max_fields: int,
    group_id: str = "",
) -> Form:
    """Read a multipart body from ``receive``. Raises :class:`BodyRefused` (nothing is kept)
    or :class:`~livetemplate.request.ClientGone`. The caller owns the returned entries' staged files."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BodyRefused(400, "Bad Request: multipart/form-data without a boundary")
    limit = body_limit(configs, max_fields)
    if content_length is not None and content_length > limit:
        raise BodyRefused(413, f"Payload Too Large: at most {limit} bytes")
    reader = _Reader(configs, staging, max_fields, group_id)
    try:
        parser = MultipartParser(boundary, reader.callbacks(), max_size=limit)
    except (MultipartParseError, ValueError) as exc:
        raise BodyRefused(400, f"Bad Request: {exc}") from None
    try:
        try:
            async for body in body_chunks(receive, limit):
                if body:
                    try:
                        parser.write(body)
                    except MultipartParseError as exc:
                        raise BodyRefused(400, f"Bad Request: malformed multipart body ({exc})") from None
                    await reader.handle_events()
        except BodyTooLarge:
            raise BodyRefused(413, f"Payload Too Large: at most {limit} bytes") from None
        parser.finalize()
        await reader.handle_events()
        if not reader.finished:
            raise BodyRefused(400, "Bad Request: the multipart body ended before its closing boundary")
    except BaseException:
        await reader.abort()
        raise
    return reader.form
