"""The app of the browser upload tests: files (volume, up to 64 MiB, two at a time) whose
digest the completion action records, and photos that go straight to S3 (moto) when an
endpoint is given."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec

import livetemplate
from livetemplate import Context, Persist, Upload

TEMPLATE = """<main>
<input type="file" id="files" lvt-upload="files" multiple>
<input type="file" id="photos" lvt-upload="photos" accept="image/*">
<ul id="entries">{% for e in lvt.uploads("files") %}
<li data-entry="{{ e.id }}" data-progress="{{ e.progress }}">{{ e.name }} {{ e.progress }}%{% if e.error %}
<span class="error">{{ e.error }}</span>{% endif %}</li>{% endfor %}</ul>
<p id="error">{{ lvt.upload_error("files") }}{{ lvt.upload_error("photos") }}</p>
<ol id="received">{% for line in received %}<li>{{ line }}</li>{% endfor %}</ol>
</main>"""


class Received(msgspec.Struct):
    received: Annotated[list[str], Persist] = []


class Files:
    def upload_files_complete(self, state: Received, ctx: Context) -> Received:
        for file in ctx.uploads("files"):
            digest = hashlib.sha256()
            with file.open() as stream:
                while block := stream.read(1 << 20):
                    digest.update(block)
            state.received.append(f"{file.client_name} {file.size} {digest.hexdigest()}")
        return state

    def upload_photos_complete(self, state: Received, ctx: Context) -> Received:
        state.received += [f"s3 {file.client_name} {file.ref}" for file in ctx.uploads("photos")]
        return state


def files(
    upload_dir: str, s3_endpoint: str | None = None, bucket: str = "photos", **options: Any
) -> livetemplate.LiveApp:
    uploads = {"files": Upload(accept=[".bin", ".png", "image/*"], max_entries=2, max_file_size=64 * 1024 * 1024)}
    if s3_endpoint is not None:
        from tests.support.s3 import presigner

        uploads["photos"] = Upload(mode="external", presign=presigner(s3_endpoint, bucket), accept=["image/*"])
    return livetemplate.mount(Files(), Received(), template=TEMPLATE, uploads=uploads, upload_dir=upload_dir, **options)
