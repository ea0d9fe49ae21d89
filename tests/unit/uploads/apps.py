"""An app with uploads for the unit tests: an avatar (volume, taken by its completion action),
documents (several, taken by a form action), a proxied upload and an external one."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Annotated, Any

import msgspec

import livetemplate
from livetemplate import Context, FieldError, PendingUpload, Persist, Presigned, Upload, UploadPart
from livetemplate.types import Message

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + b"0" * 2000

TEMPLATE = """<ul id="avatar">{% for e in lvt.uploads("avatar") %}
<li>{{ e.name }} {{ e.progress }}% {{ e.error }}</li>{% endfor %}</ul>
<p id="avatar-error">{{ lvt.upload_error("avatar") }}</p>
<ul id="docs">{% for e in lvt.uploads("docs") %}
<li>{{ e.name }} {{ e.type }} {{ e.progress }}%{% if e.done %} done{% endif %}</li>{% endfor %}</ul>
<p id="general">{{ lvt.error("_general") }}{{ lvt.error("docs") }}</p>
<ol id="files">{% for f in files %}<li>{{ f }}</li>{% endfor %}</ol>"""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


class Profile(msgspec.Struct):
    files: Annotated[list[str], Persist] = []


class Stored:
    """What the proxied receiver stored, by reference."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.parts: list[UploadPart] = []
        self.fail = False

    async def receive(self, part: UploadPart) -> str:
        self.parts.append(part)
        data = bytearray()
        async for chunk in part:
            data += chunk
        if self.fail:
            raise OSError("storage is down")
        ref = f"mem://{len(self.objects)}/{part.client_name}"
        self.objects[ref] = bytes(data)
        return ref


def presign(pending: PendingUpload) -> Presigned:
    if pending.client_name.startswith("fail"):
        raise RuntimeError("no credentials")
    return Presigned(
        f"https://storage.test/bucket/{pending.entry_id}?X-Sig=abc", headers={"Content-Type": pending.content_type}
    )


class Controller:
    def __init__(self, keep: Path | None = None) -> None:
        self.keep = keep
        self.kept: list[Path] = []
        self.fail_next = False

    def _record(self, state: Profile, ctx: Context, upload: str) -> Profile:
        for file in ctx.uploads(upload):
            content = file.read_bytes() if file.path is not None else b""
            extra = f"|{file.ref}" if file.ref else ""
            state.files.append(f"{upload}:{file.client_name}|{file.content_type}|{file.size}|{digest(content)}{extra}")
            if self.keep is not None and file.path is not None:
                self.kept.append(file.move_to(self.keep / f"{len(self.kept)}-{file.client_name}"))
        return state

    def upload_avatar_complete(self, state: Profile, ctx: Context) -> Profile:
        if self.fail_next:
            self.fail_next = False
            ctx.uploads("avatar")
            raise FieldError("avatar", "not now")
        return self._record(state, ctx, "avatar")

    def upload_remote_complete(self, state: Profile, ctx: Context) -> Profile:
        state = self._record(state, ctx, "remote")
        if ctx.get_str("note"):
            state.files.append(f"note:{ctx.get_str('note')}")
        return state

    def upload_cloud_complete(self, state: Profile, ctx: Context) -> Profile:
        return self._record(state, ctx, "cloud")

    def save(self, state: Profile, ctx: Context) -> Profile:
        if not ctx.uploads("docs"):
            raise FieldError("docs", "choose a document")
        state.files.append(f"title:{ctx.get_str('title')}")
        return self._record(state, ctx, "docs")

    def refuse(self, state: Profile, ctx: Context) -> Profile:
        ctx.uploads("docs")
        raise FieldError("docs", "refused")


def make(folder: Path, controller: Controller | None = None, stored: Stored | None = None, **options: Any) -> Any:
    stored = stored or Stored()
    uploads = {
        "avatar": Upload(accept=[".png", "image/*"], max_file_size=700_000),
        "docs": Upload(accept=[".pdf", ".txt"], max_entries=3, max_file_size=10_000, auto_upload=False),
        "remote": Upload(mode="proxied", receiver=stored.receive, max_file_size=50_000, accept=["image/*"]),
        "cloud": Upload(mode="external", presign=presign, accept=["image/*"], max_entries=2),
    }
    return livetemplate.mount(
        controller or Controller(),
        Profile(),
        template=TEMPLATE,
        uploads=uploads,
        upload_dir=str(folder),
        **options,
    )


def staged(folder: Path) -> list[Path]:
    """Every file under the upload folder."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


async def call(app: Any, pieces: list[bytes], *, disconnect: bool = False) -> tuple[int, bytes]:
    """POST ``pieces`` as the body's chunks (then a disconnect): the status and body answered."""
    messages: list[Message] = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages.append({"type": "http.disconnect"} if disconnect else {"type": "http.request", "body": b""})
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> Message:
        await asyncio.sleep(0)
        return messages.pop(0)

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"multipart/form-data; boundary=B"),
        (b"accept", b"application/json"),
        (b"x-lvt-upload", b"proxied"),
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "scheme": "http",
        "server": ("testserver", 80),
        "headers": headers,
    }
    await app(scope, receive, send)
    return answer["status"], answer["body"]
