"""A real S3-compatible server for the tests of external uploads: moto's server mode, run as a
subprocess on a free loopback port (global CORS on, so a browser may PUT to it), and a
presigner for it made with boto3."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from livetemplate import PendingUpload, Presigned
from tests.support.ports import free_port

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
START_TIMEOUT = 30.0


@functools.cache
def client(endpoint: str) -> Any:
    """A boto3 S3 client for the server at ``endpoint`` (path-style addressing, SigV4: the
    content type is a signed header, so a browser's CORS preflight carries no signature to check)."""
    from botocore.config import Config

    config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint, config=config, **CREDENTIALS)


class S3Server:
    """moto's S3 server in a subprocess; ``stop()`` ends it."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"moto did not answer within {START_TIMEOUT} s")

    def bucket(self, name: str) -> str:
        """A new bucket browsers of any origin may PUT to (as a real bucket needs CORS rules)."""
        s3 = client(self.url)
        s3.create_bucket(Bucket=name)
        rule = {"AllowedOrigins": ["*"], "AllowedMethods": ["PUT", "GET"], "AllowedHeaders": ["*"]}
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [rule]})
        return name

    def get(self, bucket: str, key: str) -> bytes:
        body: bytes = client(self.url).get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys(self, bucket: str) -> list[str]:
        listed = client(self.url).list_objects_v2(Bucket=bucket)
        return [item["Key"] for item in listed.get("Contents", [])]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def presigner(endpoint: str, bucket: str) -> Any:
    """A presign callback putting each file at ``uploads/<entry id>`` in ``bucket``."""

    def presign(pending: PendingUpload) -> Presigned:
        key = f"uploads/{pending.entry_id}"
        url = client(endpoint).generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": pending.content_type},
            ExpiresIn=600,
        )
        return Presigned(url, headers={"Content-Type": pending.content_type}, ref=key)

    return presign


@pytest.fixture(scope="module", name="s3")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server for the tests of a module."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()
