"""Fixtures of the browser tests: real uvicorn servers in subprocesses and Debian's headless
Chromium driven by Playwright. The page loads the official client from the app itself.

On a failure the report gets each tab's record (console, HTTP exchanges, WebSocket frames,
the wrapper's HTML) and the servers' log of the test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.e2e.harness import TIMEOUT_MS, Browsing, Server
from tests.support.engine_independent import engine  # noqa: F401  (the server is a subprocess: one run)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

# assertions wait as long as actions do (a loaded CI machine is slow, not wrong)
expect.set_options(timeout=TIMEOUT_MS)

Diagnostic = Callable[[], tuple[str, str]]
DIAGNOSTICS = pytest.StashKey[list[Diagnostic]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach what the tabs and servers recorded to the report of a failed test."""
    report: pytest.TestReport = yield
    if report.failed and report.when in ("call", "teardown"):
        for diagnostic in item.stash.get(DIAGNOSTICS, []):
            try:
                report.sections.append(diagnostic())
            except Exception as exc:  # a diagnostic must never hide the failure
                report.sections.append(("diagnostic failed", repr(exc)))
    return report


def _diagnose(request: pytest.FixtureRequest, diagnostic: Diagnostic) -> None:
    request.node.stash.setdefault(DIAGNOSTICS, []).append(diagnostic)


# -- servers ------------------------------------------------------------------------------


class ServerPool:
    """Servers shared by the whole run, one per (app, options): each test uses its own browser
    context, hence its own ``livetemplate-id`` cookie and session group, so tests do not meet."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: dict[str, Server] = {}

    def get(self, target: str, *, factory: bool = False, **options: Any) -> Server:
        key = f"{target} {factory} {sorted(options.items())}"
        server = self.servers.get(key)
        if server is None or server.process.poll() is not None:
            log_path = self.log_dir / f"server-{len(self.servers)}.log"
            server = self.servers[key] = Server(target, options, log_path, factory=factory)
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="package")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("e2e-servers"))
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture
def serve(server_pool: ServerPool, request: pytest.FixtureRequest) -> Callable[..., Server]:
    """``serve("module:app")``, or ``serve("module:factory", factory=True, **options)`` (options
    imply a factory): a running server."""

    def start(target: str, *, factory: bool = False, **options: Any) -> Server:
        server = server_pool.get(target, factory=factory, **options)
        offset = server.log_size()
        _diagnose(request, lambda: (f"server log: {server!r}", server.log(offset)))
        return server

    return start


# -- browser ------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API leaves an event loop marked running in this thread, so the
    browser tests run after the asynchronous ones (``testpaths`` in pyproject.toml)."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless. Missing Chromium is a failure, not a skip: CI installs it."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "the browser tests need Debian's Chromium on PATH ('chromium'): apt-get install -y chromium "
            "(.ci/run installs it)",
            pytrace=False,
        )
    browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def browsing(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Browsing]:
    session = Browsing(browser)
    _diagnose(request, lambda: ("browser tabs", session.report()))
    try:
        yield session
        problems = session.problems()
        assert not problems, "the page reported errors:\n" + "\n".join(problems)
    finally:
        session.close()
