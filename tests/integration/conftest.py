"""Fixtures of the integration tests: real Redis topologies on loopback ports.

The shared topologies live for the whole run (tests keep apart by key and channel prefixes);
tests that kill, pause or restart servers get topologies of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright, expect

from livetemplate.backends.redis_clients import RedisClient, close_client, create_client, parse_url
from tests.e2e.conftest import (
    CHROMIUM_ARGS,
    _diagnose,
    pytest_runtest_makereport,  # noqa: F401  (logs of app instances on failure)
)
from tests.integration.instances import WAIT, Balancer, Instances, Tab
from tests.integration.redis_servers import Cluster, SentinelSetup, Standalone, Topology, environment_ready, running

TOPOLOGIES = ["standalone", "sentinel", "cluster"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def standalone() -> Iterator[Standalone]:
    environment_ready()
    with running(Standalone()) as topology:
        yield topology


@pytest.fixture(scope="session")
def sentinel_setup() -> Iterator[SentinelSetup]:
    environment_ready()
    with running(SentinelSetup()) as topology:
        yield topology


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    environment_ready()
    with running(Cluster()) as topology:
        yield topology


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> Topology:
    """Each shared topology in turn."""
    return request.getfixturevalue({"sentinel": "sentinel_setup"}.get(request.param, request.param))  # type: ignore[no-any-return]


@pytest.fixture
def own_standalone() -> Iterator[Standalone]:
    """A server of the test's own, to kill and restart."""
    with running(Standalone()) as topology:
        yield topology


@pytest.fixture
def own_sentinel() -> Iterator[SentinelSetup]:
    with running(SentinelSetup()) as topology:
        yield topology


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    with running(Cluster()) as topology:
        yield topology


@pytest.fixture
def prefix() -> str:
    """A key and channel prefix of the test's own."""
    return f"lt-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[str], RedisClient]]:
    """Make clients from URLs; all are closed after the test."""
    made: list[RedisClient] = []

    def make(url: str) -> RedisClient:
        client = create_client(parse_url(url))
        made.append(client)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            await close_client(client)


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout`` seconds (a bound
    against hanging, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Proxy:
    """A TCP proxy in front of a server, to cut one client's connections while others keep
    theirs (a partition, not a server outage)."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.port = 0
        self.cut = False
        self.stalled = False
        self._lose_reply = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def disconnect(self) -> None:
        """Close every proxied connection and refuse new ones."""
        self.cut = True
        for writer in list(self._writers):
            writer.close()

    def reconnect(self) -> None:
        self.cut = False
        self.stalled = False

    def stall(self) -> None:
        """Keep every connection open but forward nothing (a half-open connection, as a
        network partition leaves it): only a keepalive notices."""
        self.stalled = True

    def lose_next_reply(self) -> None:
        """Drop the next data the server sends and close that connection: the request reached
        the server, its reply never reaches the client (which tries again)."""
        self._lose_reply = True

    async def close(self) -> None:
        self.disconnect()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer, replies=True))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, replies: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                if replies and self._lose_reply:
                    self._lose_reply = False
                    break
                if not self.stalled:
                    writer.write(data)
                    await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def proxy(standalone: Standalone) -> AsyncIterator[Proxy]:
    """A proxy in front of the shared standalone server."""
    started = Proxy(standalone.server.port)
    await started.start()
    yield started
    await started.close()


# -- app instances (uvicorn processes) ------------------------------------------------------


@pytest.fixture
async def launch(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Instances]]:
    """``launch("module:factory", **options)``: instances of that app (none started yet); all
    are stopped after the test, the WebSocket tabs the test left open closed, and a failed
    test's report gets the instances' logs."""
    made: list[Instances] = []

    def make(target: str, **options: Any) -> Instances:
        site = Instances(target, options, tmp_path)
        made.append(site)
        _diagnose(request, lambda: ("instance logs", site.logs()))
        return site

    try:
        yield make
    finally:
        for tab in list(Tab.opened):
            await tab.close()
        for site in made:
            site.stop()


@pytest.fixture
async def balancer() -> AsyncIterator[Callable[..., Awaitable[Balancer]]]:
    """``await balancer(port, port, ...)``: a started :class:`Balancer`, closed after the test."""
    made: list[Balancer] = []

    async def make(*ports: int) -> Balancer:
        started = await Balancer(*ports).start()
        made.append(started)
        return started

    yield make
    for started in made:
        await started.close()


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium (missing, it is a failure: CI installs it); assertions on
    its pages wait as long as everything else does."""
    expect.set_options(timeout=WAIT * 1000)
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's Chromium on PATH ('chromium')", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
