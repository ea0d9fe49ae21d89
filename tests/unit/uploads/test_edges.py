"""The less travelled paths: presigners that misbehave, a folder that cannot be written,
oversized chunks, stray chunks, many cancels, multipart bodies built by hand, receivers that
stop early, and the objects actions and templates get."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import livetemplate
from livetemplate import PendingUpload, Presigned, Upload, UploadPart, UploadTooLarge
from livetemplate.testing import LiveClient, LiveSocket
from livetemplate.uploads.entries import Entries, Entry, UploadedFile, UploadStatus
from livetemplate.uploads.protocol import _size
from tests.unit.uploads.apps import PNG, Controller, Profile, call, make, staged

pytestmark = pytest.mark.anyio

JSON = {"accept": "application/json"}


async def connect(client: LiveClient) -> LiveSocket:
    ws = client.websocket("/")
    await ws.__aenter__()
    await ws.receive_json()
    return ws


def test_sizes_for_people() -> None:
    assert [_size(n) for n in (512, 10_000, 5 * 2**20, 3 * 2**30, 5000 * 2**30)] == [
        "512 bytes",
        "9.77 KiB",
        "5 MiB",
        "3 GiB",
        "5e+03 GiB",
    ]


async def test_presigners_that_misbehave(tmp_path: Path) -> None:
    async def slow(pending: PendingUpload) -> Presigned:
        await asyncio.sleep(0)
        return Presigned(f"https://s.test/{pending.entry_id}", ref=f"key/{pending.entry_id}")

    def wrong(pending: PendingUpload) -> Any:
        return {"url": "https://s.test/x"}

    uploads = {
        "good": Upload(mode="external", presign=slow),
        "bad": Upload(mode="external", presign=wrong),
    }
    app = livetemplate.mount(Controller(), Profile(), template="<p></p>", uploads=uploads, upload_dir=str(tmp_path))
    async with LiveClient(app) as client:
        ws = await connect(client)
        good = await ws.start_upload("good", [("a.bin", b"x", "")])
        (entry,) = good.entries
        assert entry["external"] == {"uploader": "s3", "url": f"https://s.test/{entry['entry_id']}"}
        bad = await ws.start_upload("bad", [("a.bin", b"x", "")])
        assert bad.entries[0]["error"] == "a.bin: the upload could not be prepared"
        long = await ws.start_upload("good", [("x" * 300 + ".bin", b"x", "")])
        assert long.entries[0]["error"].endswith(": the file name is too long")


async def test_a_folder_that_cannot_be_written(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    async with LiveClient(make(blocked)) as client:
        ws = await connect(client)
        result = await ws.upload("avatar", [("a.png", PNG, "image/png")])
        assert result.complete is not None and result.complete["error"] == "a.png: the server could not store the file"
        empty = await ws.upload("docs", [("e.txt", b"", "text/plain")])
        assert empty.complete is not None and empty.complete["error"] == "e.txt: the server could not store the file"
        posted = await client.post_files("/", {"avatar": [("a.png", PNG, "image/png")]}, upload=True)
        assert posted.json()["meta"]["errors"] == {"avatar": "a.png: the server could not store the file"}
    assert blocked.read_text() == "not a folder"


async def test_chunks_larger_than_the_chunk_size_and_after_completion(tmp_path: Path) -> None:
    content = PNG + bytes(400_000)
    async with LiveClient(make(tmp_path, max_message_size=1 << 20)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", content, "image/png")])
        await ws.send_chunks(result.entries[0]["entry_id"], content, chunk_size=300_000)
        await ws.sync()
        assert "a.png: the chunk is too large" in ws.html()
        docs = await ws.upload("docs", [("d.txt", b"hello", "text/plain")])
        await ws.send_chunks(docs.entries[0]["entry_id"], b"hello")  # a stray chunk harms no complete file
        assert await ws.sync() == []
        assert "d.txt text/plain 100% done" in ws.html() and len(staged(tmp_path)) == 1


async def test_many_cancels_forget_the_oldest(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path, message_rate_limit=None)) as client:
        ws = await connect(client)
        first = await ws.start_upload("avatar", [("a.png", PNG, "image/png")])
        for _ in range(70):
            await ws.start_upload("avatar", [("a.png", PNG, "image/png")])
        await ws.send_chunks(first.entries[0]["entry_id"], PNG)  # forgotten: an unknown entry now
        assert await ws.sync() == [{"type": "error", "code": "upload_unknown_entry"}]


def boundary_body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--B\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + b"--B--\r\n"


async def post(client: LiveClient, body: bytes, **headers: str) -> Any:
    return await client.post(
        "/", content=body, headers={"content-type": "multipart/form-data; boundary=B", **JSON, **headers}
    )


async def test_multipart_bodies_built_by_hand(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        await client.get("/")
        empty = await post(
            client, boundary_body(("lvt-action", None, b"save"), ("docs", "", b""), ("title", None, b"t"))
        )
        assert empty.json()["meta"]["errors"] == {"docs": "choose a document"}  # an empty file input: no file
        sneaky = await post(client, boundary_body(("docs", "", b"data without a name")))
        assert sneaky.status_code == 400 and "without a file name" in sneaky.text
        latin = await post(client, boundary_body(("title", None, "é".encode("latin-1"))))
        assert latin.status_code == 400 and "not UTF-8" in latin.text
        repeated = await post(
            client,
            boundary_body(
                ("lvt-action", None, b"save"), ("title", None, b"a"), ("title", None, b"b"), ("title", None, b"c")
            ),
        )
        assert repeated.json()["meta"]["errors"] == {"docs": "choose a document"}
        external = await post(client, boundary_body(("cloud", "a.png", PNG)), **{"x-lvt-upload": "proxied"})
        assert external.json()["meta"]["errors"] == {
            "cloud": "a.png: this upload goes straight to storage, not through the server"
        }
        mixed = await post(
            client, boundary_body(("avatar", "a.png", PNG), ("docs", "d.txt", b"x")), **{"x-lvt-upload": "proxied"}
        )
        assert mixed.status_code == 400 and "one upload" in mixed.text
    assert staged(tmp_path) == []


class Receivers:
    """Receivers that stop reading early, or give up."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def early(self, part: UploadPart) -> str:
        self.seen.append(f"early {part.client_name} {part.content_type} {part!r}")
        return "took nothing"

    async def too_large(self, part: UploadPart) -> str:
        try:
            async for _ in part:
                pass
        except UploadTooLarge:
            self.seen.append("too large")
            raise
        return "never"

    async def slow(self, part: UploadPart) -> str:
        await asyncio.sleep(10)
        return "never"


async def test_receivers_that_stop_early_or_are_cut_off(tmp_path: Path) -> None:
    receivers = Receivers()
    uploads = {
        "early": Upload(mode="proxied", receiver=receivers.early),
        "small": Upload(mode="proxied", receiver=receivers.too_large, max_file_size=1000),
        "slow": Upload(mode="proxied", receiver=receivers.slow),
    }
    app = livetemplate.mount(Controller(), Profile(), template="<p></p>", uploads=uploads, upload_dir=str(tmp_path))
    async with LiveClient(app) as client:
        await client.get("/")
        early = await client.post_files("/", {"early": [("a.bin", bytes(300_000), "")]}, upload=True)
        assert early.json()["meta"]["success"] is True
        assert receivers.seen[0].startswith("early a.bin application/octet-stream <UploadPart early: 'a.bin'>")
        # bytes arriving piece by piece: the receiver has started when the limit is crossed
        body = boundary_body(("small", "b.bin", bytes(5000)))
        status, reply = await call(app, [body[i : i + 600] for i in range(0, len(body), 600)])
        assert status == 200 and b"b.bin: too large (at most 1000 bytes)" in reply
        assert receivers.seen[1] == "too large"
        # the client goes away while a receiver works: it is cancelled, nothing is answered
        status, reply = await call(app, [boundary_body(("slow", "c.bin", bytes(1000)))[:-10]], disconnect=True)
        assert (status, reply) == (0, b"")


def test_what_actions_and_templates_get(tmp_path: Path) -> None:
    external = Entry("cloud", Upload(mode="external", presign=lambda p: Presigned("u")), "a.png", "image/png", 10)
    external.done, external.ref = True, "key/1"
    file = UploadedFile(external)
    assert (file.path, file.ref, file.size) == (None, "key/1", 10)
    assert repr(file) == "<UploadedFile cloud: 'a.png' image/png 10 bytes>"
    with pytest.raises(FileNotFoundError):
        file.open()
    with pytest.raises(FileNotFoundError):
        file.move_to(tmp_path / "x")
    failed = Entry("avatar", Upload(), "b.png", "image/png", 4)
    failed.error = "nope"
    status = UploadStatus(failed)
    assert (status.client_name, status.valid, repr(status)) == ("b.png", False, "<UploadStatus 'b.png' 0% nope>")
    assert status.errors == ["nope"] and UploadStatus(Entry("avatar", Upload(), "c.png", "", 1)).errors == []
    assert repr(failed).startswith("<Entry avatar/") and repr(failed).endswith("'b.png' 0/4>")
    entries = Entries()
    entries.add(failed)
    assert len(entries) == 1 and entries.error("avatar") == "nope" and entries.error("other") == ""


async def test_moving_onto_an_existing_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "taken.pdf"
    target.write_bytes(b"mine")

    class Mover(Controller):
        def save(self, state: Profile, ctx: Any) -> Profile:
            for file in ctx.uploads("docs"):
                file.move_to(target)
            return state

    async with LiveClient(make(tmp_path / "uploads", Mover())) as client:
        ws = await connect(client)
        await ws.upload("docs", [("a.txt", b"hello", "text/plain")])
        reply = await ws.send("save", {})
        assert reply["meta"]["success"] is False
        assert target.read_bytes() == b"mine" and len(staged(tmp_path / "uploads")) == 1
