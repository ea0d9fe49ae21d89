"""The profile example: an avatar over the WebSocket, by the client's POST, and with the form
without JavaScript; stored under a name of the server's, served back with its type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from examples.profile.app import create_app
from livetemplate.testing import LiveClient
from tests.unit.uploads.apps import PNG

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="_csrf" value="([^"]*)"')
AVATAR = re.compile(r'src="avatars/([0-9a-f]{16}\.png)"')


async def test_an_avatar_over_the_websocket_is_stored_and_served(tmp_path: Path) -> None:
    app = create_app(avatar_dir=str(tmp_path / "avatars"), upload_dir=str(tmp_path / "staging"))
    async with LiveClient(app) as client:
        await client.get("/")
        async with client.connect("/") as ws:
            result = await ws.upload("avatar", [("../../me.png", PNG, "image/png")])
            assert result.complete == {"upload_name": "avatar", "success": True}
            match = AVATAR.search(ws.html())
            assert match is not None and "Avatars uploaded: 1" in ws.html()
            served = await client.get(f"/avatars/{match.group(1)}")
            assert served.content == PNG and served.headers["content-type"] == "image/png"
            assert served.headers["x-content-type-options"] == "nosniff"
            refused = await ws.upload("avatar", [("me.svg", b"<svg/>", "image/svg+xml")])
            assert refused.entries[0]["error"] == "me.svg: this type of file is not accepted"
            assert "me.svg: this type of file is not accepted" in ws.html()
        for path in ("/avatars/../app.py", "/avatars/x.png", f"/avatars/{match.group(1)}x"):
            assert (await client.get(path)).status_code == 404
        assert [p.name for p in (tmp_path / "avatars").iterdir()] == [match.group(1)]
        assert not any((tmp_path / "staging").rglob("*.part"))


async def test_an_avatar_with_the_form_without_javascript(tmp_path: Path) -> None:
    app = create_app(avatar_dir=str(tmp_path / "avatars"), upload_dir=str(tmp_path / "staging"))
    async with LiveClient(app) as client:
        page = await client.get("/")
        token = CSRF.search(page.text)
        assert token is not None
        fields = {"_csrf": token.group(1), "name": "Ada", "save": ""}
        posted = await client.post_files("/", {"avatar": [("ada.png", PNG, "image/png")]}, fields, json_reply=False)
        assert posted.status_code == 303
        after = await client.get("/")
        assert "<h1>Ada</h1>" in after.text and AVATAR.search(after.text) is not None
        assert "Profile saved." in after.text
        no_name = await client.post_files("/", {}, {**fields, "name": ""}, json_reply=False)
        assert no_name.status_code == 200 and "Please enter your name." in no_name.text
