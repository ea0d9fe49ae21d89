"""External uploads against a real S3-compatible server (moto's server mode): presigned by
boto3, put with a real HTTP PUT, completed over the WebSocket and over HTTP."""

from __future__ import annotations

import hashlib
from typing import Annotated

import httpx
import msgspec
import pytest

import livetemplate
from livetemplate import Context, Persist, Upload
from livetemplate.testing import LiveClient
from tests.support.s3 import S3Server, presigner, s3_server  # noqa: F401  (the fixture s3)

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Gallery(msgspec.Struct):
    refs: Annotated[list[str], Persist] = []


class Photos:
    def upload_photos_complete(self, state: Gallery, ctx: Context) -> Gallery:
        state.refs += [f"{file.ref}|{file.client_name}|{file.size}" for file in ctx.uploads("photos")]
        return state


def make(s3: S3Server, bucket: str) -> livetemplate.LiveApp:
    photos = Upload(mode="external", presign=presigner(s3.url, bucket), accept=["image/*"], max_entries=2)
    template = "<ul>{% for ref in refs %}<li>{{ ref }}</li>{% endfor %}</ul>"
    return livetemplate.mount(Photos(), Gallery(), template=template, uploads={"photos": photos})


async def test_a_presigned_put_then_completion_over_the_websocket(s3: S3Server) -> None:
    bucket = s3.bucket("ws-photos")
    async with LiveClient(make(s3, bucket)) as client:
        await client.get("/")
        async with client.connect("/") as ws:
            result = await ws.start_upload("photos", [("cat.png", PNG, "image/png")])
            (entry,) = result.entries
            assert entry["mode"] == "direct" and entry["external"]["uploader"] == "s3"
            external = entry["external"]
            async with httpx.AsyncClient() as http:
                put = await http.put(external["url"], content=PNG, headers=external["headers"])
            assert put.status_code == 200
            await ws.send_json({"action": "upload_complete", "upload_name": "photos", "entry_ids": [entry["entry_id"]]})
            frames = await ws.sync()
            assert {"upload_name": "photos", "success": True} in frames
            key = f"uploads/{entry['entry_id']}"
            assert f"{key}|cat.png|{len(PNG)}" in ws.html()
    assert hashlib.sha256(s3.get(bucket, key)).digest() == hashlib.sha256(PNG).digest()


async def test_a_presigned_put_then_completion_over_http(s3: S3Server) -> None:
    bucket = s3.bucket("http-photos")
    async with LiveClient(make(s3, bucket)) as client:
        await client.get("/")
        start = {
            "action": "upload_start",
            "upload_name": "photos",
            "files": [{"name": "cat.png", "type": "image/png", "size": len(PNG)}],
        }
        reply = await client.post("/", json=start, headers={"x-lvt-upload": "start", "accept": "application/json"})
        (entry,) = reply.json()["entries"]
        async with httpx.AsyncClient() as http:
            put = await http.put(entry["external"]["url"], content=PNG, headers=entry["external"]["headers"])
        assert put.status_code == 200
        complete = {
            "action": "upload_complete",
            "upload_name": "photos",
            "entries": [
                {"client_name": "cat.png", "type": "image/png", "size": len(PNG), "ref": entry["external"]["url"]}
            ],
        }
        done = await client.post("/", json=complete, headers={"x-lvt-upload": "complete", "accept": "application/json"})
        assert done.json()["meta"] == {"success": True, "errors": {}, "action": "upload_photos_complete"}
    assert s3.keys(bucket) == [f"uploads/{entry['entry_id']}"]
