"""Uploads over the WebSocket (protocol 1.9): the handshake, chunks at checked offsets,
progress, completion handed to the upload's action, cancel, and every way a client can lie."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from livetemplate.testing import LiveClient, LiveSocket
from tests.unit.uploads.apps import PDF, PNG, Controller, digest, make, staged

pytestmark = pytest.mark.anyio


def entry_ids(result: Any) -> list[str]:
    return [entry["entry_id"] for entry in result.entries]


def chunk(entry_id: str, data: bytes, offset: int, total: int) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    return {"action": "upload_chunk", "entry_id": entry_id, "chunk_base64": encoded, "offset": offset, "total": total}


async def connect(client: LiveClient) -> LiveSocket:
    ws = client.websocket("/")
    await ws.__aenter__()
    await ws.receive_json()
    return ws


async def test_a_small_file_goes_to_the_completion_action(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.upload("avatar", [("me.png", PNG, "image/png")])
        (entry,) = result.entries
        assert entry == {
            "entry_id": entry["entry_id"],
            "client_name": "me.png",
            "valid": True,
            "auto_upload": True,
            "mode": "volume",
        }
        assert [p["progress"] for p in result.progress] == [100]
        assert result.progress[0] == {
            "type": "upload_progress",
            "upload_name": "avatar",
            "entry_id": entry["entry_id"],
            "client_name": "me.png",
            "progress": 100,
            "bytes_recv": len(PNG),
            "bytes_total": len(PNG),
        }
        assert result.complete == {"upload_name": "avatar", "success": True}
        assert f"avatar:me.png|image/png|{len(PNG)}|{digest(PNG)}" in ws.html()
        assert '<ul id="avatar"></ul>' in ws.html()  # taken by the action: no longer listed
        assert staged(tmp_path) == []  # and its staged file deleted
        updates = [f for f in result.frames if isinstance(f, dict) and "meta" in f]
        assert updates[-1]["meta"] == {"success": True, "errors": {}, "action": "upload_avatar_complete"}
        # renders for progress carry no meta: no form would take them for its answer
        assert all(
            "meta" not in f for f in result.frames if isinstance(f, dict) and "tree" in f and f is not updates[-1]
        )


async def test_a_large_file_arrives_in_chunks_bigger_than_any_message_and_unmetered(tmp_path: Path) -> None:
    content = PNG + bytes(600_000)
    app = make(tmp_path, message_rate_limit=(0.1, 2), max_message_size=4096)  # start and complete only
    async with LiveClient(app) as client:
        ws = await connect(client)
        result = await ws.upload("avatar", [("big.png", content, "image/png")])
        assert [p["bytes_recv"] for p in result.progress] == [262144, 524288, len(content)]
        assert [p["progress"] for p in result.progress] == [
            262144 * 100 // len(content),
            524288 * 100 // len(content),
            100,
        ]
        assert result.complete == {"upload_name": "avatar", "success": True}
        assert f"big.png|image/png|{len(content)}|{digest(content)}" in ws.html()
        assert not ws.finished


async def test_progress_shows_in_the_template_while_chunks_arrive(tmp_path: Path) -> None:
    content = PNG + bytes(400_000)
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("big.png", content, "image/png")])
        assert "big.png 0%" in ws.html()
        await ws.send_chunks(result.entries[0]["entry_id"], content, stop_after=262144)
        await ws.sync()
        assert f"big.png {262144 * 100 // len(content)}%" in ws.html()
        assert len(staged(tmp_path)) == 1


async def test_too_many_files_and_files_too_large_are_refused_each_with_its_reason(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload(
            "docs",
            [
                ("a.pdf", PDF, "application/pdf"),
                ("huge.pdf", b"%PDF" + bytes(20_000), "application/pdf"),
                ("c.txt", b"hello", "text/plain"),
                ("d.pdf", PDF, "application/pdf"),
                ("e.exe", b"MZ", "application/x-msdownload"),
            ],
        )
        valid = [(e["client_name"], e["valid"], e.get("error")) for e in result.entries]
        assert valid == [
            ("a.pdf", True, None),
            ("huge.pdf", False, "huge.pdf: too large (at most 9.77 KiB)"),
            ("c.txt", True, None),
            ("d.pdf", False, "d.pdf: too many files (at most 3)"),
            ("e.exe", False, "e.exe: too many files (at most 3)"),
        ]
        assert all(not e["auto_upload"] for e in result.entries)


async def test_types_are_checked_by_name_and_by_content(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        by_name = await ws.upload("avatar", [("run.exe", b"MZ" + bytes(100), "application/x-msdownload")])
        assert by_name.entries[0]["error"] == "run.exe: this type of file is not accepted"
        svg = await ws.upload("avatar", [("x.svg", b"<svg onload=alert(1)>", "image/svg+xml")])
        assert svg.entries[0]["error"] == "x.svg: this type of file is not accepted"  # image/* admits no SVG
        fake = await ws.upload("avatar", [("cat.png", b"just text, not a picture" * 30, "image/png")])
        assert fake.entries[0]["valid"]
        assert fake.complete == {
            "upload_name": "avatar",
            "success": False,
            "error": "cat.png: the content is not image/png",
        }
        html = await ws.upload("avatar", [("cat.png", b"<!DOCTYPE html><script>alert(1)</script>", "image/png")])
        assert (
            html.complete is not None
            and html.complete["error"] == "cat.png: the content is text/html, which is not accepted"
        )
        assert "cat.png: the content is text/html" in ws.html()
        jpeg = await ws.upload("avatar", [("really-a-jpeg.png", b"\xff\xd8\xff\xe0" + bytes(100), "image/png")])
        assert jpeg.complete == {"upload_name": "avatar", "success": True}
        assert "really-a-jpeg.png|image/jpeg|104" in ws.html()  # reported as what it is
        assert staged(tmp_path) == []


async def test_client_names_never_become_paths(tmp_path: Path) -> None:
    evil = "../../../../tmp/evil\x00\n.png"
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [(evil, PNG, "image/png")])
        assert result.entries[0]["client_name"] == evil  # echoed as sent: the client matches its file by it
        await ws.send_chunks(result.entries[0]["entry_id"], PNG, stop_after=100)
        await ws.sync()
        (path,) = staged(tmp_path)
        assert path.parent.parent == tmp_path.resolve() and path.suffix == ".part" and "evil" not in str(path)
        assert "evil.png 9%" in ws.html()  # shown by its last component, without control characters
        for name in ("..\\..\\win.png", "/etc/passwd.png", "..", ""):
            again = await ws.start_upload("avatar", [(name, PNG, "image/png")])
            assert again.entries[0]["client_name"] == name
        assert not (tmp_path.parent / "evil.png").exists() and not Path("/tmp/evil.png").exists()


async def test_offsets_out_of_order_fail_the_entry_and_the_rest_is_absorbed(tmp_path: Path) -> None:
    content = PNG + bytes(600_000)
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", content, "image/png")])
        (entry_id,) = entry_ids(result)
        await ws.send_chunks(entry_id, content, stop_after=262144)
        skipped = base64.b64encode(content[524288:]).decode()
        await ws.send_json(
            {
                "action": "upload_chunk",
                "entry_id": entry_id,
                "chunk_base64": skipped,
                "offset": 524288,
                "total": len(content),
            }
        )
        await ws.sync()
        assert "a.png: chunk at offset 524288, expected 262144" in ws.html()
        assert staged(tmp_path) == []
        middle = base64.b64encode(content[262144:524288]).decode()
        await ws.send_json(  # what the client still sends is dropped without a word
            {
                "action": "upload_chunk",
                "entry_id": entry_id,
                "chunk_base64": middle,
                "offset": 262144,
                "total": len(content),
            }
        )
        assert await ws.sync() == []
        # but no more than the file's size: past that, a chunk-sized message is too big again
        await ws.send_json(
            {
                "action": "upload_chunk",
                "entry_id": entry_id,
                "chunk_base64": middle,
                "offset": 262144,
                "total": len(content),
            }
        )
        await ws.send_json(
            {
                "action": "upload_chunk",
                "entry_id": entry_id,
                "chunk_base64": middle,
                "offset": 262144,
                "total": len(content),
            }
        )
        assert await ws.receive_close() == 1009


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"total": 5}, f"the chunk says the file has 5 bytes, not {len(PNG)}"),
        ({"offset": 7}, "chunk at offset 7, expected 0"),
    ],
)
async def test_bad_chunks_fail_their_entry(tmp_path: Path, message: dict[str, Any], error: str) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", PNG, "image/png")])
        await ws.send_json({**chunk(entry_ids(result)[0], PNG, 0, len(PNG)), **message})
        await ws.sync()
        assert f"a.png: {error}" in ws.html()
        await ws.send_json({"action": "upload_complete", "upload_name": "avatar", "entry_ids": entry_ids(result)})
        (reply,) = [f for f in await ws.sync() if "success" in f]
        assert reply == {"upload_name": "avatar", "success": False, "error": f"a.png: {error}"}


@pytest.mark.parametrize("garbage", ["!!!not base64!!!", "iVBORw0KGgo", "AAA=A", "AAAA===="])
async def test_base64_garbage_is_refused_as_a_malformed_message(tmp_path: Path, garbage: str) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", PNG, "image/png")])
        await ws.send_json({**chunk(entry_ids(result)[0], b"", 0, len(PNG)), "chunk_base64": garbage})
        (reply,) = await ws.sync()
        assert "malformed message: Invalid base64" in reply["meta"]["errors"]["_general"]
        assert "a.png 0%" in ws.html()  # the entry waits for a proper chunk
        result = await ws.upload("avatar", [("a.png", PNG, "image/png")])
        assert result.complete == {"upload_name": "avatar", "success": True}
        # garbage as large as a chunk closes the socket, as any oversized message does
        await ws.send_json({**chunk("x", b"", 0, 1), "chunk_base64": "!" * 100_000})
        assert await ws.receive_close() == 1009


async def test_sizes_that_lie_are_caught(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        short = await ws.start_upload("avatar", [("a.png", PNG, "image/png")])
        await ws.send_chunks(entry_ids(short)[0], PNG, stop_after=100)
        await ws.send_json({"action": "upload_complete", "upload_name": "avatar", "entry_ids": entry_ids(short)})
        frames = await ws.sync()
        assert {
            "upload_name": "avatar",
            "success": False,
            "error": f"a.png: incomplete (100 of {len(PNG)} bytes)",
        } in frames
        # announced small, sent big: refused at the first byte past the announcement
        liar = await ws.start_upload("avatar", [("b.png", PNG[:50], "image/png")])
        await ws.send_json(chunk(entry_ids(liar)[0], PNG, 0, 50))
        await ws.sync()
        assert "b.png: more bytes than announced" in ws.html()
        negative = await ws.action("upload_start", None, upload_name="avatar", files=[{"name": "c.png", "size": -1}])
        assert "malformed message" in negative["meta"]["errors"]["_general"]
        assert staged(tmp_path) == []


async def test_unknown_entries_and_uploads(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        await ws.send_chunks("no-such-entry", b"x" * 10)
        assert await ws.sync() == [{"type": "error", "code": "upload_unknown_entry"}]
        await ws.send_json({"action": "upload_complete", "upload_name": "avatar", "entry_ids": ["nope"]})
        assert await ws.sync() == [{"type": "error", "code": "upload_unknown_entry"}]
        assert await ws.cancel_upload("nope") == []
        result = await ws.start_upload("banner", [("a.png", PNG, "image/png")])
        assert result.start == {
            "upload_name": "banner",
            "entries": [
                {
                    "entry_id": result.entries[0]["entry_id"],
                    "client_name": "a.png",
                    "valid": False,
                    "auto_upload": True,
                    "mode": "volume",
                    "error": "no upload named 'banner'",
                }
            ],
        }
        await ws.send_chunks(result.entries[0]["entry_id"], PNG)
        assert await ws.sync() == [{"type": "error", "code": "upload_unknown_entry"}]
        many = await ws.start_upload("avatar", [(f"{i}.png", b"", "image/png") for i in range(500)])
        assert len(many.entries) == 64  # one upload_start is answered for 64 files at most


async def test_frames_larger_than_messages_are_only_taken_as_chunks_of_an_upload_under_way(tmp_path: Path) -> None:
    big = base64.b64encode(bytes(100_000)).decode()
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        await ws.send_json({"action": "upload_chunk", "entry_id": "nope", "chunk_base64": big, "offset": 0, "total": 1})
        assert await ws.receive_close() == 1009
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        await ws.send_json({"action": "save", "data": {"title": big}})
        assert await ws.receive_close() == 1009
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", PNG + bytes(690_000), "image/png")])
        huge = base64.b64encode(bytes(400_000)).decode()  # more than one chunk in one message
        await ws.send_json(
            {"action": "upload_chunk", "entry_id": entry_ids(result)[0], "chunk_base64": huge, "offset": 0, "total": 1}
        )
        assert await ws.receive_close() == 1009
    assert staged(tmp_path) == []


async def test_cancel_halfway_deletes_the_file_and_absorbs_the_chunks_in_flight(tmp_path: Path) -> None:
    content = PNG + bytes(600_000)
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", content, "image/png")])
        (entry_id,) = entry_ids(result)
        await ws.send_chunks(entry_id, content, stop_after=262144)
        await ws.sync()
        assert len(staged(tmp_path)) == 1
        await ws.cancel_upload(entry_id)
        assert staged(tmp_path) == []
        assert '<ul id="avatar"></ul>' in ws.html()
        await ws.send_chunks(entry_id, content[262144:])  # on their way before the cancel reached the server
        assert await ws.sync() == []


async def test_a_disconnect_midway_deletes_the_staged_file(tmp_path: Path) -> None:
    content = PNG + bytes(600_000)
    app = make(tmp_path)
    async with LiveClient(app, shutdown=False) as client:
        ws = await connect(client)
        result = await ws.start_upload("avatar", [("a.png", content, "image/png")])
        await ws.send_chunks(entry_ids(result)[0], content, stop_after=300_000)
        await ws.sync()
        assert len(staged(tmp_path)) == 1
        await ws.close()
        assert staged(tmp_path) == []
        # a completed file nobody took goes too
        ws = await connect(client)
        await ws.upload("docs", [("a.pdf", PDF, "application/pdf")])
        assert len(staged(tmp_path)) == 1
        await ws.close()
        assert staged(tmp_path) == []
    await app.shutdown()
    assert list(tmp_path.iterdir()) == []  # the app's own folder is gone


async def test_shutdown_removes_files_of_open_tabs(tmp_path: Path) -> None:
    app = make(tmp_path)
    async with LiveClient(app) as client:
        ws = await connect(client)
        await ws.upload("docs", [("a.pdf", PDF, "application/pdf")])
        assert len(staged(tmp_path)) == 1
        await app.shutdown()
        assert list(tmp_path.iterdir()) == []


async def test_files_wait_for_the_form_action_that_takes_them(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    keep.mkdir()
    controller = Controller(keep=keep)
    async with LiveClient(make(tmp_path / "uploads", controller)) as client:
        ws = await connect(client)
        result = await ws.upload("docs", [("a.pdf", PDF, "application/pdf"), ("b.txt", b"hello", "text/plain")])
        assert result.complete == {"upload_name": "docs", "success": True}
        assert "a.pdf application/pdf 100% done" in ws.html() and "b.txt text/plain 100% done" in ws.html()
        refused = await ws.send("refuse", {})
        assert refused["meta"]["errors"] == {"docs": "refused"}
        assert len(staged(tmp_path / "uploads")) == 2  # a failed action takes nothing
        saved = await ws.send("save", {"title": "Report"})
        assert saved["meta"]["success"] is True
        assert "title:Report" in ws.html() and f"docs:a.pdf|application/pdf|{len(PDF)}|{digest(PDF)}" in ws.html()
        assert staged(tmp_path / "uploads") == []
        assert [p.read_bytes() for p in controller.kept] == [PDF, b"hello"]  # moved away: kept
        again = await ws.send("save", {"title": "Again"})
        assert again["meta"]["errors"] == {"docs": "choose a document"}


async def test_a_failed_completion_action_leaves_the_file_for_the_next_try(tmp_path: Path) -> None:
    controller = Controller()
    controller.fail_next = True
    async with LiveClient(make(tmp_path, controller)) as client:
        ws = await connect(client)
        result = await ws.upload("avatar", [("a.png", PNG, "image/png")])
        update = [f for f in result.frames if isinstance(f, dict) and "meta" in f][-1]
        assert update["meta"]["errors"] == {"avatar": "not now"}
        assert "a.png 100%" in ws.html() and "not now" in ws.html()
        assert len(staged(tmp_path)) == 1


async def test_a_new_selection_replaces_the_files_nobody_took(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        await ws.upload("docs", [("a.pdf", PDF, "application/pdf")])
        assert len(staged(tmp_path)) == 1
        content = b"%PDF" + bytes(5000)
        second = await ws.start_upload("docs", [("b.pdf", content, "application/pdf")])
        assert staged(tmp_path) == [] and "a.pdf" not in ws.html() and "b.pdf application/pdf 0%" in ws.html()
        await ws.send_chunks(entry_ids(second)[0], content, stop_after=10)
        await ws.sync()
        await ws.start_upload("docs", [("c.pdf", PDF, "application/pdf")])
        assert staged(tmp_path) == []  # one under way is cancelled too
        await ws.send_chunks(entry_ids(second)[0], content[10:])  # its chunks still in flight: absorbed
        assert await ws.sync() == []


async def test_an_empty_file(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.upload("docs", [("empty.txt", b"", "text/plain")])
        assert result.complete == {"upload_name": "docs", "success": True}
        assert "empty.txt text/plain 100% done" in ws.html()


async def test_external_uploads_are_presigned_and_completed_by_reference(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        result = await ws.start_upload("cloud", [("a.png", PNG, "image/png"), ("fail.png", PNG, "image/png")])
        first, second = result.entries
        assert first["mode"] == "direct" and first["valid"]
        assert first["external"] == {
            "uploader": "s3",
            "url": f"https://storage.test/bucket/{first['entry_id']}?X-Sig=abc",
            "headers": {"Content-Type": "image/png"},
        }
        assert second == {
            "entry_id": second["entry_id"],
            "client_name": "fail.png",
            "valid": False,
            "auto_upload": True,
            "mode": "direct",
            "error": "fail.png: the upload could not be prepared",
        }
        await ws.send_chunks(first["entry_id"], PNG)  # an external entry takes no chunks
        await ws.send_json({"action": "upload_complete", "upload_name": "cloud", "entry_ids": [first["entry_id"]]})
        frames = await ws.sync()
        assert {"upload_name": "cloud", "success": False, "error": "a.png: this upload does not take chunks"} in frames
        again = await ws.start_upload("cloud", [("a.png", PNG, "image/png")])
        entry_id = again.entries[0]["entry_id"]
        await ws.send_json({"action": "upload_complete", "upload_name": "cloud", "entry_ids": [entry_id]})
        assert {"upload_name": "cloud", "success": True} in await ws.sync()
        assert f"cloud:a.png|image/png|{len(PNG)}|{digest(b'')}|https://storage.test/bucket/{entry_id}" in ws.html()


async def test_upload_messages_are_checked_like_any_message(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        ws = await connect(client)
        await ws.send_text(json.dumps({"action": "upload_start", "upload_name": "avatar", "files": "nope"}))
        reply = await ws.receive_json()
        assert "malformed message" in reply["meta"]["errors"]["_general"]
        await ws.send_text(json.dumps({"action": "upload_chunk", "entry_id": 5}))
        reply = await ws.receive_json()
        assert "malformed message" in reply["meta"]["errors"]["_general"]
        result = await ws.upload("avatar", [("a.png", PNG, "image/png")])
        assert result.complete == {"upload_name": "avatar", "success": True}
