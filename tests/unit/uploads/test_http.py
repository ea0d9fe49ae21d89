"""Uploads over HTTP: the client's fallbacks without a socket (``X-Lvt-Upload: start``,
``complete``, ``proxied``), forms with files posted by the client or without JavaScript, the
proxied mode streaming to its receiver, and bodies that lie or break off."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from livetemplate.testing import LiveClient
from tests.unit.uploads.apps import PDF, PNG, Controller, Stored, call, digest, make, staged

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="_csrf" value="([^"]*)"')
FORM_PAGE = """<form method="post" enctype="multipart/form-data">{{ lvt.csrf_field() }}
<input name="title"><input type="file" name="docs" lvt-upload="docs" multiple><button name="save">Save</button></form>
<p id="error">{{ lvt.upload_error("docs") }}{{ lvt.error("docs") }}</p>
<ol>{% for f in files %}<li>{{ f }}</li>{% endfor %}</ol>"""


START = {"accept": "application/json", "x-lvt-upload": "start"}


def upload_start(upload: str) -> dict[str, Any]:
    return {
        "action": "upload_start",
        "upload_name": upload,
        "files": [{"name": "a.png", "type": "image/png", "size": 10}],
    }


async def test_upload_start_over_http_answers_the_entries(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        await client.get("/")
        reply = await client.post("/", json=upload_start("avatar"), headers=START)
        assert reply.status_code == 200
        (entry,) = reply.json()["entries"]
        assert entry["valid"] and entry["mode"] == "volume" and entry["client_name"] == "a.png"
        chunk = await client.post_action("upload_chunk", None)
        assert chunk.status_code == 400 and "need the WebSocket" in chunk.json()["meta"]["errors"]["_general"]
        cancel = await client.post(
            "/", json={"action": "cancel_upload", "entry_id": "x"}, headers={"accept": "application/json"}
        )
        assert cancel.json() == {"tree": {}, "meta": {"success": True, "errors": {}, "action": "cancel_upload"}}


async def test_volume_upload_by_post_without_a_socket(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        await client.get("/")
        reply = await client.post_files(
            "/", {"avatar": [("me.png", PNG, "image/png")]}, {"lvt-action": "upload_avatar_complete"}, upload=True
        )
        assert reply.status_code == 200
        frame = reply.json()
        assert frame["meta"] == {"success": True, "errors": {}, "action": "upload_avatar_complete"}
        assert f"avatar:me.png|image/png|{len(PNG)}|{digest(PNG)}" in str(frame["tree"])
        assert staged(tmp_path) == []


async def test_an_upload_post_for_a_file_a_tab_announced_completes_in_that_tab(tmp_path: Path) -> None:
    stored = Stored()
    async with LiveClient(make(tmp_path, stored=stored)) as client:
        await client.get("/")
        async with client.connect("/") as ws:
            result = await ws.start_upload("remote", [("pic.png", PNG, "image/png")])
            assert result.entries[0]["mode"] == "proxied" and result.entries[0]["valid"]
            reply = await client.post_files(
                "/",
                {"remote": [("pic.png", PNG, "image/png")]},
                {"lvt-action": "upload_remote_complete", "note": "hi"},
                upload=True,
            )
            assert reply.json() == {
                "tree": {},
                "meta": {"success": True, "errors": {}, "action": "upload_remote_complete"},
            }
            frames = await ws.sync()
            assert any(
                isinstance(f, dict) and f.get("meta", {}).get("action") == "upload_remote_complete" for f in frames
            )
            (ref,) = stored.objects
            assert stored.objects[ref] == PNG
            assert f"remote:pic.png|image/png|{len(PNG)}|{digest(b'')}|{ref}" in ws.html() and "note:hi" in ws.html()
            assert stored.parts[0].fields == {"note": "hi"}  # the fields sent before the file
            # a refused file: the tab shows why, the POST fails so the client reports it
            await ws.start_upload("remote", [("big.png", PNG * 100, "image/png")])
            await ws.start_upload("remote", [("pic.png", PNG, "image/png")])
            bad = await client.post_files("/", {"remote": [("pic.png", b"text" * 10, "image/png")]}, upload=True)
            assert bad.status_code == 422 and bad.text == "pic.png: the content is not image/png"
            await ws.sync()
            assert "pic.png: the content is not image/png" not in ws.html()  # (the avatar list shows no remote files)


async def test_proxied_files_stream_to_the_receiver_with_limits(tmp_path: Path) -> None:
    stored = Stored()
    async with LiveClient(make(tmp_path, stored=stored)) as client:
        await client.get("/")
        big = PNG + bytes(60_000)
        reply = await client.post_files("/", {"remote": [("big.png", big, "image/png")]}, upload=True)
        assert reply.json()["meta"]["errors"] == {"remote": "big.png: too large (at most 50000 bytes)"}
        assert stored.objects == {}  # the receiver never stored a cut file
        wrong = await client.post_files(
            "/", {"remote": [("x.png", b"%PDF-1.4" + bytes(100), "image/png")]}, upload=True
        )
        assert wrong.json()["meta"]["errors"] == {
            "remote": "x.png: the content is application/pdf, which is not accepted"
        }
        stored.fail = True
        failed = await client.post_files("/", {"remote": [("ok.png", PNG, "image/png")]}, upload=True)
        assert failed.json()["meta"]["errors"] == {"remote": "ok.png: the server could not store the file"}
        stored.fail = False
        tiny = await client.post_files("/", {"remote": [("t.gif", b"GIF89a", "image/gif")]}, upload=True)
        assert tiny.json()["meta"]["success"] is True
        assert list(stored.objects.values()) == [b"GIF89a"]
        assert staged(tmp_path) == []  # proxied files never touch the disk


async def test_a_form_with_files_without_javascript(tmp_path: Path) -> None:
    import livetemplate
    from livetemplate import Upload
    from tests.unit.uploads.apps import Profile

    app = livetemplate.mount(
        Controller(),
        Profile(),
        template=FORM_PAGE,
        uploads={"docs": Upload(accept=[".pdf", ".txt"], max_entries=2, max_file_size=5000)},
        upload_dir=str(tmp_path),
    )
    async with LiveClient(app) as client:
        page = await client.get("/")
        match = CSRF.search(page.text)
        assert match is not None
        token = match.group(1)
        files = {"docs": [("a.pdf", PDF, "application/pdf"), ("b.txt", b"hi", "text/plain")]}
        forged = await client.post_files("/", files, {"title": "x"}, json_reply=False)
        assert forged.status_code == 403
        posted = await client.post_files("/", files, {"_csrf": token, "title": "Report", "save": ""}, json_reply=False)
        assert posted.status_code == 303
        after = await client.get("/")
        assert "title:Report" in after.text and f"docs:a.pdf|application/pdf|{len(PDF)}|{digest(PDF)}" in after.text
        too_big = {"docs": [("a.pdf", PDF + bytes(5000), "application/pdf")]}
        refused = await client.post_files("/", too_big, {"_csrf": token, "save": ""}, json_reply=False)
        assert refused.status_code == 200 and "a.pdf: too large (at most 5000 bytes)" in refused.text
        none = await client.post_files(
            "/", {"docs": [("", b"", "application/octet-stream")]}, {"_csrf": token, "save": ""}, json_reply=False
        )
        assert none.status_code == 200 and "choose a document" in none.text  # an empty file input is no file
        client_form = await client.post_files("/", files, {"lvt-action": "save", "title": "Via fetch"})
        assert client_form.json()["meta"] == {"success": True, "errors": {}, "action": "save"}
        assert staged(tmp_path) == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "text"),
    [
        ({"content-type": "multipart/form-data"}, b"", 400, "without a boundary"),
        ({"content-type": "multipart/form-data; boundary=B"}, b"garbage", 400, "malformed multipart body"),
        (
            {"content-type": "multipart/form-data; boundary=B"},
            b'--B\r\nContent-Disposition: form-data; name="avatar"; filename="a.png"\r\n\r\n\x89PNG',
            400,
            "ended before its closing boundary",
        ),
        (
            {"content-type": "multipart/form-data; boundary=B"},
            b'--B\r\nContent-Disposition: form-data; name="x"; filename="a.png"\r\n\r\n\x89PNG\r\n--B--\r\n',
            400,
            "not a declared upload",
        ),
        (
            {"content-type": "multipart/form-data; boundary=B"},
            b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",
            400,
            "Content-Disposition",
        ),
        (
            {"content-type": "multipart/form-data; boundary=B", "content-length": str(10**12)},
            b"",
            413,
            "Payload Too Large",
        ),
    ],
)
async def test_broken_multipart_bodies_are_refused(
    tmp_path: Path, headers: dict[str, str], body: bytes, status: int, text: str
) -> None:
    async with LiveClient(make(tmp_path)) as client:
        await client.get("/")
        reply = await client.post("/", content=body, headers={**headers, "accept": "application/json"})
        assert reply.status_code == status and text in reply.text
        assert staged(tmp_path) == []


async def test_form_fields_are_bounded_and_files_past_the_limit_are_refused(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path, max_message_size=2048)) as client:
        await client.get("/")
        fields = await client.post_files("/", {}, {"lvt-action": "save", "title": "x" * 5000})
        assert fields.status_code == 413
        many = {"docs": [(f"{i}.txt", b"hi", "text/plain") for i in range(5)]}
        reply = await client.post_files("/", many, {"lvt-action": "save"})
        assert reply.json()["meta"]["errors"] == {"docs": "3.txt: too many files (at most 3)"}
        assert staged(tmp_path) == []


async def test_a_body_that_breaks_off_leaves_no_file(tmp_path: Path) -> None:
    app = make(tmp_path)
    head = b'--B\r\nContent-Disposition: form-data; name="avatar"; filename="a.png"\r\n\r\n' + PNG
    assert await call(app, [head], disconnect=True) == (0, b"")
    assert staged(tmp_path) == []
    await app.shutdown()


async def test_external_uploads_complete_over_http_only_for_what_was_presigned(tmp_path: Path) -> None:
    async with LiveClient(make(tmp_path)) as client:
        await client.get("/")
        reply = await client.post("/", json=upload_start("cloud"), headers=START)
        (entry,) = reply.json()["entries"]
        url = entry["external"]["url"]
        complete = {
            "action": "upload_complete",
            "upload_name": "cloud",
            "entries": [{"client_name": "a.png", "type": "image/png", "size": 10, "ref": url}],
        }
        done = await client.post("/", json=complete, headers={"x-lvt-upload": "complete", "accept": "application/json"})
        assert done.json()["meta"] == {"success": True, "errors": {}, "action": "upload_cloud_complete"}
        assert f"cloud:a.png|image/png|10|{digest(b'')}|{url.split('?')[0]}" in str(done.json()["tree"])
        again = await client.post(
            "/", json=complete, headers={"x-lvt-upload": "complete", "accept": "application/json"}
        )
        assert again.json()["meta"]["errors"] == {
            "cloud": "a.png: no such upload was prepared for this session (or it expired)"
        }


async def test_an_app_without_uploads_refuses_them(tmp_path: Path) -> None:
    import livetemplate
    from tests.unit.uploads.apps import Profile

    app = livetemplate.mount(Controller(), Profile(), template="<p>{{ files }}</p>")
    async with LiveClient(app) as client:
        await client.get("/")
        reply = await client.post_files("/", {"avatar": [("a.png", PNG, "image/png")]}, upload=True)
        assert reply.status_code == 415
        start = await client.post(
            "/", json={"action": "upload_start", "upload_name": "a", "files": []}, headers={"x-lvt-upload": "start"}
        )
        assert start.status_code == 400
