"""The official client's ``TreeRenderer`` (run by Node) as a test oracle for tree HTML.

``TreeOracle`` drives ``tree_oracle.js`` in one long-lived Node process; every call is a
request/response round trip with a timeout, so a hung or crashed process fails the test instead
of hanging it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().with_name("tree_oracle.js")
RENDERER = REPO_ROOT / "node_modules" / "@livetemplate" / "client" / "dist" / "state" / "tree-renderer.js"
DEFAULT_TIMEOUT = 10.0


class OracleError(RuntimeError):
    """The client's renderer threw; the message is the JavaScript error's."""


class TreeOracle:
    """A Node process hosting one ``TreeRenderer`` per session; started on first use."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def session(self) -> OracleSession:
        return OracleSession(self, f"s{next(self._ids)}")

    def request(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Send one command, wait for its reply line; raise OracleError if the renderer threw."""
        line = json.dumps(command, allow_nan=False) + "\n"
        with self._lock:
            proc = self._ensure_started()
            assert proc.stdin is not None
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except OSError as exc:
                self._kill()
                raise RuntimeError(f"tree oracle process died: {exc}") from exc
            try:
                answer = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                self._kill()
                raise RuntimeError(f"tree oracle gave no answer within {self.timeout} s") from None
            if answer is None:
                code = proc.wait()
                self._proc = None
                raise RuntimeError(f"tree oracle process exited (code {code})")
        reply: dict[str, Any] = json.loads(answer)
        if "error" in reply:
            raise OracleError(reply["error"])
        return reply

    def close(self) -> None:
        """Terminate the Node process (a later call starts a fresh one)."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            assert proc.stdin is not None
            try:
                proc.stdin.close()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.terminate()
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the tree oracle needs Node.js: `node` is not on PATH")
        if not RENDERER.is_file():
            raise RuntimeError(
                f"the tree oracle needs @livetemplate/client ({RENDERER} is missing): run `npm ci` in {REPO_ROOT}"
            )
        proc = subprocess.Popen(
            [node, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(proc, self._lines), daemon=True).start()
        self._proc = proc
        return proc

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)
        proc.stdout.close()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()


class OracleSession:
    """One client connection: a ``TreeRenderer`` whose state lives across calls."""

    def __init__(self, oracle: TreeOracle, session_id: str) -> None:
        self._oracle = oracle
        self.id = session_id

    def apply(self, update: Mapping[str, Any]) -> str:
        """Apply one ``tree`` value; return the HTML the client reconstructs."""
        reply = self._oracle.request({"session": self.id, "op": "apply", "update": update})
        html = reply["html"]
        assert isinstance(html, str)
        return html

    def reset(self) -> None:
        self._oracle.request({"session": self.id, "op": "reset"})

    def close(self) -> None:
        self._oracle.request({"session": self.id, "op": "close"})


_shared: TreeOracle | None = None
_shared_lock = threading.Lock()


def shared_oracle() -> TreeOracle:
    """The process-wide oracle, closed automatically at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TreeOracle()
            atexit.register(_shared.close)
        return _shared
