"""Running ``livetemplate`` as a separate process, as a user would, and talking to it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP = 60.0  # seconds: a cold import of the app on a busy 2-core machine


class Served:
    """A ``livetemplate serve`` process and its output."""

    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.captured: str | None = None  # the output, once the process is gone

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if self.captured is not None:
            return self.captured
        return self.log.read_text(encoding="utf-8", errors="replace")

    def websocket(self, path: str = "/") -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.port}{path}", open_timeout=STARTUP)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as an orchestrator stops a container; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextlib.contextmanager
def serve(
    args: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None, python: str = sys.executable
) -> Iterator[Served]:
    """``python -m livetemplate serve ARGS --port P`` until it accepts connections."""
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"livetemplate-serve-{port}.log"
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [python, "-m", "livetemplate", "serve", *args, "--port", str(port)],
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    served = Served(process, port, log)
    try:
        wait_for_port(served)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        served.captured = served.output()
        log.unlink(missing_ok=True)


def wait_for_port(served: Served) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"livetemplate serve exited with {served.process.returncode}:\n{served.output()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", served.port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"livetemplate serve did not listen within {STARTUP} s:\n{served.output()}")


def first_frame(ws: ClientConnection, timeout: float = 30.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout))
    return frame


def close_code(ws: ClientConnection, timeout: float = 30.0) -> tuple[int | None, str]:
    """Read until the server closes the socket: its close code and reason."""
    try:
        while True:
            ws.recv(timeout)
    except ConnectionClosed as closed:
        received = closed.rcvd
        return (received.code, received.reason) if received is not None else (None, "")
