"""Declaring uploads, and the rules a file meets: accepted by name and by content (sniffed),
shown by a safe name, staged only inside the app's own folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from livetemplate import Presigned, Upload, mount
from livetemplate.uploads.config import display_name
from livetemplate.uploads.manager import check_uploads
from livetemplate.uploads.sniff import sniff
from livetemplate.uploads.staging import Staging
from tests.unit.uploads.apps import Controller, Profile


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xdb", "image/jpeg"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"BM\x00\x00\x00\x00\x00\x00\x00\x00", "image/bmp"),
        (b"BMW,Audi\n", None),  # text that starts like a bitmap is not one
        (b"\x00\x00\x00\x1cftypavif", "image/avif"),
        (b"\x00\x00\x00\x1cftypisom", "video/mp4"),
        (b"%PDF-1.4", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x7fELF\x02", "application/x-executable"),
        (b"  \n<!DOCTYPE html><html>", "text/html"),
        (b"\xef\xbb\xbf<script>alert(1)</script>", "text/html"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">', "image/svg+xml"),
        (b"<svg onload=alert(1)>", "image/svg+xml"),
        (b"<?xml version='1.0'?><note/>", "application/xml"),
        (b"name,qty\nmilk,1\n", None),
        (b"", None),
    ],
)
def test_sniffing(head: bytes, found: str | None) -> None:
    assert sniff(head) == found


def test_accept_by_name() -> None:
    images = Upload(accept=["image/*"])
    assert images.check_name("a.PNG", "image/png") is None
    assert images.check_name("a.jpeg", "") is None
    assert images.check_name("a.svg", "image/svg+xml") == "a.svg: this type of file is not accepted"
    assert images.check_name("a.html", "image/png") == "a.html: this type of file is not accepted"  # the name wins
    assert images.check_name("blob", "image/png") is None  # no extension: the declared type decides
    assert images.check_name("blob", "") == "blob: this type of file is not accepted"
    exact = Upload(accept=[".jpg", "application/pdf"])
    assert exact.check_name("a.jpeg", "image/jpeg") is None  # .jpg names the type image/jpeg
    assert exact.check_name("a.pdf", "application/pdf") is None
    assert exact.check_name("a.png", "image/png") is not None
    assert Upload().check_name("anything.exe", "") is None


def test_accept_by_content() -> None:
    images = Upload(accept=["image/*"])
    assert images.check_content("a.png", "image/png", "image/png") is None
    assert images.check_content("a.png", "image/png", "image/jpeg") is None  # still an image
    assert images.check_content("a.png", "image/png", None) == "a.png: the content is not image/png"
    assert images.check_content("a.png", "", "text/html") == "a.png: the content is text/html, which is not accepted"
    documents = Upload(accept=[".docx", ".csv"])
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert documents.check_content("r.docx", docx, "application/zip") is None  # a zip inside
    assert documents.check_content("r.csv", "text/csv", None) is None  # text: nothing to sniff
    assert (
        documents.check_content("r.csv", "text/csv", "image/png")
        == "r.csv: the content is image/png, which is not accepted"
    )
    assert Upload().check_content("x", "", "application/x-executable") is None  # nothing declared: anything goes
    assert Upload.content_type("a.png", "image/png", "image/gif") == "image/gif"
    assert Upload.content_type("noext", "Text/Plain; charset=utf-8", None) == "text/plain"
    assert Upload.content_type("noext", "", None) == "application/octet-stream"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cat.png", "cat.png"),
        ("a\x00b\nc\u202e.png", "abc.png"),
        ("..", "file"),
        ("", "file"),
        ("/", "file"),
        ("x" * 300, "x" * 255),
    ],
)
def test_display_names(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"accept": "image/*"}, "list of types"),
        ({"accept": ["png"]}, "neither an extension"),
        ({"accept": ["image/"]}, "neither an extension"),
        ({"max_entries": 0}, "max_entries"),
        ({"max_file_size": 0}, "max_file_size"),
        ({"chunk_size": 1024}, "chunk_size"),
        ({"mode": "preview"}, "mode is"),
        ({"mode": "external"}, "presign="),
        ({"presign": lambda pending: Presigned("https://x")}, "presign="),
        ({"mode": "proxied"}, "receiver="),
    ],
)
def test_bad_declarations_raise(options: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        Upload(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["Avatar", "1st", "a-b", "", "x" * 65, 5])
def test_upload_names_are_lowercase_identifiers(name: object) -> None:
    with pytest.raises(ValueError, match="upload name"):
        check_uploads({name: Upload()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="upload name"):
        mount(Controller(), Profile(), template="<p></p>", uploads={name: Upload()})


def test_uploads_must_be_declared_with_upload() -> None:
    with pytest.raises(TypeError, match="must be an Upload"):
        check_uploads({"avatar": {"accept": ["image/*"]}})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="mapping"):
        check_uploads([("avatar", Upload())])  # type: ignore[arg-type]


def test_staging_keeps_to_its_own_folder(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "uploads")
    assert not (tmp_path / "uploads").exists()  # nothing is created before the first file
    one, two = staging.create(), staging.create()
    one.write(b"hello")
    one.finish()
    with pytest.raises(ValueError):
        one.write(b"more")
    assert one.path.read_bytes() == b"hello" and one.path.parent == staging.root
    assert staging.root.parent == (tmp_path / "uploads").resolve()
    assert oct(staging.root.stat().st_mode & 0o777) == "0o700" and oct(one.path.stat().st_mode & 0o777) == "0o600"
    two.discard()
    two.discard()  # twice is fine
    assert not two.path.exists()
    os.symlink(tmp_path / "target", staging.root / "planted.part")
    staging.close()
    assert list((tmp_path / "uploads").iterdir()) == [] and not (tmp_path / "target").exists()
    staging.close()
