"""The app the upload benchmark serves: a volume upload and a proxied one, each taken (and
dropped) by its completion action; the proxied receiver only counts the bytes."""

from __future__ import annotations

from typing import Any

import msgspec

import livetemplate
from livetemplate import Context, Upload, UploadPart

LIMIT = 1 << 30


class Totals(msgspec.Struct):
    files: int = 0
    size: int = 0


class Sink:
    def __init__(self) -> None:
        self.received = 0

    async def receive(self, part: UploadPart) -> str:
        async for chunk in part:
            self.received += len(chunk)
        return "counted"


class Uploads:
    def upload_files_complete(self, state: Totals, ctx: Context) -> Totals:
        return self._count(state, ctx, "files")

    def upload_stream_complete(self, state: Totals, ctx: Context) -> Totals:
        return self._count(state, ctx, "stream")

    def _count(self, state: Totals, ctx: Context, name: str) -> Totals:
        for file in ctx.uploads(name):
            state.files += 1
            state.size += file.size
        return state


def create(upload_dir: str, **options: Any) -> livetemplate.LiveApp:
    sink = Sink()
    uploads = {
        "files": Upload(max_file_size=LIMIT),
        "stream": Upload(mode="proxied", receiver=sink.receive, max_file_size=LIMIT),
    }
    template = "<p>{{ files }} files, {{ size }} bytes</p>"
    return livetemplate.mount(Uploads(), Totals(), template=template, uploads=uploads, upload_dir=upload_dir, **options)
