"""What one client action costs the server, in instructions: the load harness's server
(``benchmarks.load.serve --target lt``, the counter app with the documented settings) under
callgrind, answering a client's actions on one WebSocket, one after the other.

    python -m benchmarks.action     # instructions an action (needs valgrind)

The count is that of a server answering 1,200 actions less that of one answering 200, over
1,000 actions: start-up and shutdown cancel out (the hash seed is fixed). It counts what the
process runs, not the kernel's work for its system calls. Run it on two checkouts to compare
them (the working directory picks the code).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from websockets.sync.client import connect

from .callgrind import CALLGRIND, collected, counted_environment
from .load.client import ACTION_LT, REPLY_LT

#: Seconds the server under callgrind (about 50 times slower) gets for any one step.
WAIT = 120.0


@contextlib.contextmanager
def serving(prefix: list[str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The counter app's server, started with ``prefix`` before it (a tool such as
    valgrind), once it answers; stopped (SIGKILL) if the caller did not stop it."""
    command = [*prefix, sys.executable, "-m", "benchmarks.load.serve", "--target", "lt", "--no-ping"]
    env = counted_environment(PYTHONPATH=os.getcwd())
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline().strip().removeprefix("PORT="))
            yield server, port
        finally:
            if server.poll() is None:
                server.kill()


def session_cookie(port: int) -> str:
    """The session cookie of a first page load, once the server answers."""
    deadline = time.monotonic() + WAIT
    while True:
        page = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        try:
            page.request("GET", "/")
            response = page.getresponse()
            response.read()
            return str(response.getheader("set-cookie")).split(";", 1)[0]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            page.close()


def act(port: int, count: int) -> list[bytes]:
    """Open a tab, send ``count`` increments one after the other (each once the last was
    answered) and close it: the replies."""
    headers = {"Cookie": session_cookie(port)}
    with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers, compression=None, open_timeout=WAIT) as tab:
        tab.recv(timeout=WAIT)  # the first render
        replies = []
        for _ in range(count):
            tab.send(ACTION_LT.decode())
            replies.append(tab.recv(timeout=WAIT, decode=False))
        return replies


def instructions(count: int) -> int:
    """Instructions (callgrind's count) of a server process that answers ``count`` actions."""
    with serving(CALLGRIND) as (server, port):
        replies = act(port, count)
        if not all(REPLY_LT in reply for reply in replies):
            raise RuntimeError("an action was not answered as the counter answers")
        time.sleep(1)
        server.send_signal(signal.SIGINT)  # uvicorn shuts down; callgrind then says its count
        _, errors = server.communicate(timeout=WAIT)
    return collected(errors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    few, many = instructions(200), instructions(1200)
    print(f"{(many - few) / 1000:,.0f} instructions an action")


if __name__ == "__main__":
    main()
