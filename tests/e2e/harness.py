"""Helpers of the browser tests: uvicorn servers in subprocesses, and browser tabs that record
what the page and the client do (console errors, WebSocket frames, requests, ``lvt:*`` events)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, WebSocket

from tests.e2e.serve import PORT_LINE

ROOT = Path(__file__).resolve().parents[2]
#: Default timeout of Playwright actions and waits, in milliseconds.
TIMEOUT_MS = 10_000
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

#: Records every ``lvt:*`` event of the page. They are dispatched on the wrapper and do not
#: bubble, so the listener sits on ``window`` in the capture phase.
LVT_EVENTS_SCRIPT = """
(() => {
  const log = (window.__lvtEvents = []);
  for (const type of ["lvt:connected", "lvt:disconnected", "lvt:reconnected", "lvt:updated", "lvt:error"]) {
    window.addEventListener(type, (event) => {
      let detail = null;
      try { detail = JSON.parse(JSON.stringify(event.detail ?? null)); } catch (e) { detail = String(event.detail); }
      log.push({ type, detail });
    }, true);
  }
})();
"""

LIVE_CHECK = """
() => {
  const wrapper = document.querySelector("[data-lvt-id]");
  return !!wrapper && !wrapper.hasAttribute("data-lvt-loading")
    && (window.__lvtEvents || []).some((event) => event.type === "lvt:updated");
}
"""


class ServerError(RuntimeError):
    pass


class Server:
    """A uvicorn process serving one app on a loopback port; its output goes to a log file."""

    def __init__(self, target: str, options: dict[str, Any], log_path: Path, *, factory: bool = False) -> None:
        self.target = target
        self.options = options
        self.log_path = log_path
        command = [sys.executable, "-m", "tests.e2e.serve", target]
        if factory or options:
            command += ["--factory", "--options", json.dumps(options)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.port = self._wait_for_port()
            self.url = f"http://127.0.0.1:{self.port}/"
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def log(self, start: int = 0) -> str:
        """The server's output from byte offset ``start`` on."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def _check_running(self) -> None:
        if self.process.poll() is not None:
            raise ServerError(f"server {self.target} exited with {self.process.returncode}:\n{self.log()}")

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_running()
            for line in self.log().splitlines():
                if line.startswith(PORT_LINE):
                    return int(line[len(PORT_LINE) :])
            time.sleep(0.05)
        raise ServerError(f"server {self.target} announced no port within {START_TIMEOUT} s:\n{self.log()}")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_running()
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise ServerError(f"server {self.target} did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a timeout)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()

    def __repr__(self) -> str:
        return f"<Server {self.target} {self.options} at {getattr(self, 'url', '?')}>"


@dataclass
class Frame:
    direction: str  # "sent" or "received"
    url: str
    payload: str

    def json(self) -> Any:
        return json.loads(self.payload)


def _is_benign(message: ConsoleMessage, head_urls: set[str]) -> bool:
    """Console errors the browser reports for things that are not failures (protocol.md, 5):
    headless Chromium's request for /favicon.ico (404), and the client's HEAD probe, which
    Chromium reports as ``net::ERR_ABORTED`` even after a 200 (seen as a failed request, so
    far not on the console)."""
    url = message.location.get("url", "") if message.location else ""
    if url.endswith("/favicon.ico") and "404" in message.text:
        return True
    return "net::ERR_ABORTED" in message.text and url in head_urls


@dataclass(repr=False)
class Tab:
    """A page with recorders attached: console errors, page errors, WebSockets and their
    frames, HTTP requests with their response status."""

    page: Page
    name: str
    console_errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)
    closed_sockets: list[str] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Tab {self.name} {self.page.url if not self.page.is_closed() else '(closed)'}>"

    def __post_init__(self) -> None:
        page = self.page
        page.add_init_script(LVT_EVENTS_SCRIPT)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{error.name}: {error.message}\n{error.stack}"))
        page.on("websocket", self._on_websocket)
        page.on("request", lambda request: self.requests.append(request))
        page.on("response", self._on_response)
        page.on("requestfailed", lambda r: self.exchanges.append(f"{r.method} {r.url} -> failed: {r.failure}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "debug":
            self.console.append(f"{message.type}: {message.text}")
        head_urls = {r.url for r in self.requests if r.method == "HEAD"}
        if message.type == "error" and not _is_benign(message, head_urls):
            location = message.location.get("url", "") if message.location else ""
            self.console_errors.append(f"{message.text} ({location})")

    def _on_response(self, response: Response) -> None:
        self.responses.append(response)
        request = response.request
        self.exchanges.append(f"{request.method} {request.url} -> {response.status}")

    def _on_websocket(self, ws: WebSocket) -> None:
        self.sockets.append(ws)
        url = ws.url
        ws.on("framesent", lambda payload: self.frames.append(Frame("sent", url, _text(payload))))
        ws.on("framereceived", lambda payload: self.frames.append(Frame("received", url, _text(payload))))
        ws.on("close", lambda _ws: self.closed_sockets.append(url))
        ws.on("socketerror", lambda error: self.closed_sockets.append(f"{url} error: {error}"))

    # -- navigation ----------------------------------------------------------------

    def open(self, url: str) -> None:
        """Load ``url`` and wait until the client is live."""
        self.page.goto(url)
        self.wait_live()

    def reload(self) -> None:
        self.page.reload()
        self.wait_live()

    def wait_live(self) -> None:
        """Wait for the first tree: the wrapper lost ``data-lvt-loading`` and ``lvt:updated`` fired."""
        self.page.wait_for_function(LIVE_CHECK)

    # -- what was recorded ---------------------------------------------------------

    def lvt_events(self, type_: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.page.evaluate("() => window.__lvtEvents || []")
        return [e for e in events if type_ is None or e["type"] == type_]

    def sent(self, action: str | None = None) -> list[dict[str, Any]]:
        """The JSON messages the client sent over WebSockets (optionally only ``action``)."""
        messages = [frame.json() for frame in self.frames if frame.direction == "sent"]
        return [m for m in messages if action is None or m.get("action") == action]

    def received(self) -> list[dict[str, Any]]:
        return [frame.json() for frame in self.frames if frame.direction == "received"]

    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    def problems(self) -> list[str]:
        return [f"console error: {e}" for e in self.console_errors] + [f"page error: {e}" for e in self.page_errors]

    def report(self) -> str:
        """Everything recorded, for the report of a failed test."""
        lines = [f"URL: {self.page.url if not self.page.is_closed() else '(closed)'}"]
        lines += self.problems()
        lines.append("Console:")
        lines += [f"  {line}" for line in self.console]
        lines.append(f"WebSockets opened: {[ws.url for ws in self.sockets]}; closed: {self.closed_sockets}")
        lines.append("HTTP:")
        lines += [f"  {line}" for line in self.exchanges]
        lines.append(f"WebSocket frames ({len(self.frames)}, pings and pongs left out):")
        for frame in self.frames:
            if frame.payload in ('{"action":"__ping__"}', '{"pong":true}'):
                continue
            payload = frame.payload if len(frame.payload) <= 2000 else frame.payload[:2000] + "..."
            lines.append(f"  {'->' if frame.direction == 'sent' else '<-'} {payload}")
        if not self.page.is_closed():
            try:
                lines.append(f"lvt events: {json.dumps(self.lvt_events())}")
                wrapper = self.page.locator("[data-lvt-id]")
                html = wrapper.inner_html(timeout=1000) if wrapper.count() else self.page.content()
                lines.append(f"Wrapper HTML:\n{html}")
            except Exception as exc:  # the page may be gone or navigating
                lines.append(f"(page not readable: {exc})")
        return "\n".join(lines)


def _text(payload: str | bytes) -> str:
    return payload if isinstance(payload, str) else payload.decode("utf-8", "replace")


class Browsing:
    """The contexts and tabs of one test. At the end, any console or page error of a tab fails
    the test."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.tabs: list[Tab] = []

    def context(self, *, javascript: bool = True) -> BrowserContext:
        """A new browser context: its own cookies, so its own session group."""
        context = self.browser.new_context(java_script_enabled=javascript)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return context

    def tab(self, context: BrowserContext | None = None, *, javascript: bool = True) -> Tab:
        """A new page (in a new context unless one is given), recording everything."""
        context = context or self.context(javascript=javascript)
        tab = Tab(context.new_page(), name=f"tab {len(self.tabs) + 1}")
        self.tabs.append(tab)
        return tab

    def report(self) -> str:
        return "\n\n".join(f"== {tab.name} ==\n{tab.report()}" for tab in self.tabs)

    def problems(self) -> list[str]:
        return [f"{tab.name}: {problem}" for tab in self.tabs for problem in tab.problems()]

    def close(self) -> None:
        for context in self.contexts:
            context.close()
