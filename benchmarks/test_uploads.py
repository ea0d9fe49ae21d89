"""Upload throughput and the server's peak memory, against a real uvicorn server in another
process, beside a raw socket copy in the same run:

* volume over the WebSocket: 256 KiB base64 chunks, as the official client sends them;
* volume by multipart POST (the client's fallback without a socket);
* proxied: a multipart POST streamed to a receiver, no disk;
* the floor: a blocking socket server writing what it reads to a file, with no protocol.

Each case moves ``SIZES`` bytes; MB/s and the server's peak RSS above its resting RSS (sampled
every 2 ms) go to ``extra_info``. The same peak for a file 4x larger shows memory per upload
does not grow with the file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import websockets

from tests.e2e.harness import Server
from tests.support.engine_independent import engine  # noqa: F401  (the server is a subprocess)

CHUNK = 256 * 1024
SIZES = [32 * 1024 * 1024, 128 * 1024 * 1024]
BLOCK = bytes(range(256)) * (CHUNK // 256)
BOUNDARY = "benchboundary"
RAW_SERVER = """
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
buffer = bytearray(1 << 20)
while True:
    connection, _ = listener.accept()
    with connection, open(sys.argv[1], "wb") as out:
        while received := connection.recv_into(buffer):
            out.write(memoryview(buffer)[:received])
        connection.sendall(b"ok")
"""


class Peak:
    """The peak RSS of a process while the block runs, above its RSS before."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("bench-uploads")
    running = Server(
        "benchmarks.upload_app:create",
        {"upload_dir": str(folder)},
        folder.parent / "bench-upload-server.log",
        factory=True,
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    target = tmp_path_factory.mktemp("bench-raw") / "copy.bin"
    process = subprocess.Popen([sys.executable, "-c", RAW_SERVER, str(target)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def record(benchmark: Any, size: int, seconds: list[float], peak: Peak) -> None:
    best = min(seconds)
    benchmark.extra_info.update(
        {"mb": size // 2**20, "mb_per_s": round(size / 2**20 / best, 1), "peak_rss_growth_mb": peak.growth_mb}
    )


def run(benchmark: Any, pid: int, size: int, once: Callable[[], None]) -> None:
    seconds: list[float] = []

    def timed() -> None:
        start = time.perf_counter()
        once()
        seconds.append(time.perf_counter() - start)

    with Peak(pid) as peak:
        benchmark.pedantic(timed, rounds=3, iterations=1, warmup_rounds=0)
    record(benchmark, size, seconds, peak)


# -- raw socket copy ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=[f"{s >> 20}MB" for s in SIZES])
def test_raw_socket_copy(benchmark: Any, raw: tuple[int, int], size: int) -> None:
    port, pid = raw

    def once() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(size // CHUNK):
                sock.sendall(BLOCK)
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(2) == b"ok"

    run(benchmark, pid, size, once)


# -- volume over the WebSocket ----------------------------------------------------------------------


async def websocket_upload(url: str, size: int) -> None:
    async with websockets.connect(url.replace("http", "ws"), max_size=None) as ws:
        await ws.recv()  # the first tree
        start = {"action": "upload_start", "upload_name": "files", "files": [{"name": "b.bin", "size": size}]}
        await ws.send(json.dumps(start))
        reply = json.loads(await ws.recv())
        entry_id = reply["entries"][0]["entry_id"]
        encoded = base64.b64encode(BLOCK).decode()
        done = asyncio.get_running_loop().create_future()

        async def read() -> None:
            while not done.done():
                message = json.loads(await ws.recv())
                if message.get("upload_name") == "files" and "success" in message:
                    done.set_result(message)

        reader = asyncio.create_task(read())
        for offset in range(0, size, CHUNK):
            await ws.send(
                f'{{"action":"upload_chunk","entry_id":"{entry_id}","chunk_base64":"{encoded}",'
                f'"offset":{offset},"total":{size}}}'
            )
        await ws.send(json.dumps({"action": "upload_complete", "upload_name": "files", "entry_ids": [entry_id]}))
        result = await asyncio.wait_for(done, 120)
        reader.cancel()
        assert result["success"], result


@pytest.mark.parametrize("size", SIZES, ids=[f"{s >> 20}MB" for s in SIZES])
def test_volume_over_the_websocket(benchmark: Any, server: Server, size: int) -> None:
    run(benchmark, server.process.pid, size, lambda: asyncio.run(websocket_upload(server.url, size)))


# -- multipart POSTs ------------------------------------------------------------------------------------


async def body(field: str, size: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="lvt-action"\r\n\r\nupload_{field}_complete\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="b.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for _ in range(size // CHUNK):
        yield BLOCK
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def multipart_upload(url: str, field: str, size: int) -> None:
    headers = {
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        "accept": "application/json",
        "x-lvt-upload": "proxied",
    }
    async with httpx.AsyncClient(timeout=120) as client:
        reply = await client.post(url, content=body(field, size), headers=headers)
    assert reply.status_code == 200 and reply.json()["meta"]["success"], reply.text


@pytest.mark.parametrize("size", SIZES, ids=[f"{s >> 20}MB" for s in SIZES])
def test_volume_by_post(benchmark: Any, server: Server, size: int) -> None:
    run(benchmark, server.process.pid, size, lambda: asyncio.run(multipart_upload(server.url, "files", size)))


@pytest.mark.parametrize("size", SIZES, ids=[f"{s >> 20}MB" for s in SIZES])
def test_proxied_by_post(benchmark: Any, server: Server, size: int) -> None:
    run(benchmark, server.process.pid, size, lambda: asyncio.run(multipart_upload(server.url, "stream", size)))


def test_nothing_is_left_in_the_upload_folder(server: Server) -> None:
    folder = Path(server.options["upload_dir"])
    assert [p for p in folder.rglob("*") if p.is_file()] == []
