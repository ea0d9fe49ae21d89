"""Several instances of one app, each a uvicorn process, sharing a Redis topology: what the
multi-instance tests are made of.

* :class:`Instance`: an app served by uvicorn in a subprocess (the browser tests' ``Server``),
  which can also be killed (SIGKILL) or terminated (SIGTERM) without waiting;
* :class:`Balancer`: a TCP load balancer on a loopback port in front of the instances, each new
  connection to the next one in turn (no sticky routing), skipping one that refuses;
* :class:`Tab`: a WebSocket client of a page that keeps the tree as the official client does and
  sends actions, one at a time, waiting for each reply;
* :func:`new_session`: a browser's signed session cookie, from a page load.

The fixtures that start them and stop them, whatever happens, are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
from playwright.async_api import Browser, BrowserContext, Page
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from livetemplate.testing.tree import ClientTree
from livetemplate.wire import SESSION_COOKIE
from tests.e2e.harness import LIVE_CHECK, LVT_EVENTS_SCRIPT, STOP_TIMEOUT, Server

#: The secret every instance of a site shares (session cookies are signed with it).
SECRET = "one secret for every instance of the site"
#: Seconds a test waits for a reply, a page, a process (a bound against hanging, not a timing).
WAIT = 20.0

_ITEM = re.compile(r'<li data-key="([^"]*)"')


class Instance(Server):
    """An app (``module:factory`` called with ``options``) served by uvicorn in a subprocess,
    on a free loopback port; its output goes to ``log_path``."""

    def __init__(self, target: str, options: dict[str, Any], log_path: Path) -> None:
        super().__init__(target, options, log_path, factory=True)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, its sockets reset, nothing is drained."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT)

    def terminate(self) -> None:
        """SIGTERM, without waiting: uvicorn stops listening and shuts the app down."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    async def exited(self) -> int:
        """Wait for the process to end (it is killed after ``WAIT`` seconds); its exit code."""
        try:
            return await asyncio.to_thread(self.process.wait, WAIT)
        finally:
            self.stop()

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=WAIT) as http:
            return await http.get(path, **kwargs)

    async def metric(self, name: str) -> float:
        """The value of one sample of ``/metrics`` (``name`` with its labels); 0 when absent."""
        response = await self.get("/metrics")
        for line in response.text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


class Instances:
    """Starts instances of one app with shared options; stops every one of them at the end."""

    def __init__(self, target: str, options: dict[str, Any], log_dir: Path) -> None:
        self.target = target
        self.options = {"secret_key": SECRET, **options}
        self.log_dir = log_dir
        self.started: list[Instance] = []
        self._numbers = itertools.count(1)

    async def start(self, **overrides: Any) -> Instance:
        """One more instance (started in a thread: the test's event loop keeps running)."""
        log_path = self.log_dir / f"instance-{next(self._numbers)}.log"
        instance = await asyncio.to_thread(Instance, self.target, {**self.options, **overrides}, log_path)
        self.started.append(instance)
        return instance

    def stop(self) -> None:
        for instance in self.started:
            instance.stop()

    def logs(self) -> str:
        return "\n".join(f"== {instance!r} ==\n{instance.log()}" for instance in self.started)


class _Side(asyncio.Protocol):
    """One side of a proxied connection: what it receives is written to the other side at
    once (so bytes that arrived before a reset are never dropped), and its end ends both."""

    def __init__(self, owner: Balancer) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []  # received before the other side is connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.owner.sides.add(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.early.append(data)

    def link(self, peer: _Side) -> None:
        self.peer, peer.peer = peer, self
        assert peer.transport is not None
        for data in self.early:
            peer.transport.write(data)
        self.early.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.sides.discard(self)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # after writing what it holds


class Balancer:
    """A TCP load balancer on a loopback port: every new connection goes to the next backend
    port in turn (round robin, no stickiness); a backend that refuses the connection is
    skipped. ``routes`` records where each connection went."""

    def __init__(self, *ports: int) -> None:
        self.backends = list(ports)
        self.routes: list[int] = []
        self.port = 0
        self.sides: set[_Side] = set()
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._connecting: set[asyncio.Task[None]] = set()

    async def start(self) -> Balancer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def replace(self, old: int, new: int) -> None:
        """Route to port ``new`` where ``old`` was."""
        self.backends[self.backends.index(old)] = new

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for side in list(self.sides):
            if side.transport is not None:
                side.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def _accepted(self) -> _Side:
        client = _Side(self)
        task = asyncio.get_running_loop().create_task(self._connect(client))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return client

    async def _connect(self, client: _Side) -> None:
        loop = asyncio.get_running_loop()
        start = next(self._turn)
        for offset in range(len(self.backends)):
            port = self.backends[(start + offset) % len(self.backends)]
            try:
                _, upstream = await loop.create_connection(lambda: _Side(self), "127.0.0.1", port)
            except OSError:
                continue
            self.routes.append(port)
            if client.transport is None or client.transport.is_closing():
                assert upstream.transport is not None
                upstream.transport.close()
                return
            client.link(upstream)
            return
        if client.transport is not None:
            client.transport.close()


async def new_session(url: str) -> str:
    """Load the page at ``url`` as a new browser does: the value of its signed session cookie."""
    async with httpx.AsyncClient(timeout=WAIT) as http:
        response = await http.get(url)
        response.raise_for_status()
        return response.cookies[SESSION_COOKIE]


class Closed(Exception):
    """The connection closed before the reply came (the action may or may not have run)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed ({code})")
        self.code = code


class Tab:
    """A WebSocket client of the page at ``url`` in the session of ``cookie``: applies every
    tree it receives, as the browser client does, and sends actions one at a time."""

    #: Tabs not closed yet (the ``launch`` fixture closes them after a test, even a failed one).
    opened: ClassVar[set[Tab]] = set()

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        Tab.opened.add(self)
        self.tree = ClientTree()
        self.frames = 0
        self.close_code: int | None = None
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, cookie: str, *, query: str = "") -> Tab:
        """Connect to ``url`` and wait for the first (complete) tree."""
        ws_url = "ws" + url.removeprefix("http") + (f"?{query}" if query else "")
        ws = await connect(ws_url, additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, open_timeout=WAIT)
        tab = cls(ws)
        await tab.until(lambda: tab.frames > 0 or tab._reader.done(), "the first tree")
        if tab.frames == 0:  # closed first (an instance starting to drain closes it with 1012)
            await tab.close()
            raise Closed(tab.close_code)
        return tab

    @classmethod
    async def reopen(cls, url: str, cookie: str, *, query: str = "") -> Tab:
        """:meth:`open`, tried again while refused or cut off, as a client reconnecting would:
        an instance draining answers 503 until the balancer stops sending it connections,
        closes with 1012 a connection it admitted just before, and a connection still
        waiting in its listening socket's queue when it stops listening is reset."""
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    return await cls.open(url, cookie, query=query)
                except (InvalidStatus, InvalidMessage, Closed, OSError):
                    await asyncio.sleep(0.05)

    @property
    def html(self) -> str:
        return self.tree.html()

    def items(self) -> list[str]:
        """The keys of the page's ``<li data-key>`` items, in order."""
        return items_of(self.html)

    async def act(self, action: str, **data: Any) -> dict[str, Any]:
        """Send ``action`` and return the ``meta`` of its reply; :class:`Closed` when the
        connection closes first."""
        if self._reply is not None:
            raise RuntimeError("one action at a time")
        if self._reader.done():
            raise Closed(self.close_code)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reply = reply
        try:
            with contextlib.suppress(ConnectionClosed):  # then the reader fails the reply
                await self.ws.send(json.dumps({"action": action, "data": data}))
            async with asyncio.timeout(WAIT):
                return await reply
        finally:
            self._reply = None

    async def until(self, check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Wait until ``check()`` holds (checked after every frame); fail naming ``what``."""
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    if self._reader.done():
                        raise AssertionError(f"connection closed ({self.close_code}) waiting for {what}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; the page shows:\n{self.html}") from None

    async def close(self) -> None:
        Tab.opened.discard(self)
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                frame = json.loads(text)
                if "tree" in frame:
                    self.tree.apply(frame["tree"])
                    self.frames += 1
                action = frame.get("meta", {}).get("action")
                if action is not None and self._reply is not None and not self._reply.done():
                    self._reply.set_result(frame["meta"])
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            if self._reply is not None and not self._reply.done():
                self._reply.set_exception(Closed(self.close_code))
            self._changed.set()


def items_of(html: str) -> list[str]:
    """The keys of the ``<li data-key>`` items in ``html``, in order."""
    return _ITEM.findall(html)


def tree_items(frame: dict[str, Any]) -> list[str]:
    """The items of a complete tree (an HTTP answer)."""
    tree = ClientTree()
    tree.apply(frame["tree"])
    return items_of(tree.html())


async def open_page(browser: Browser, url: str, context: BrowserContext | None = None) -> Page:
    """A page at ``url`` (in ``context``, else a new one: its own cookies) once the client is live."""
    context = context or await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(WAIT * 1000)
    await page.add_init_script(LVT_EVENTS_SCRIPT)
    await page.goto(url)
    await page.wait_for_function(LIVE_CHECK)
    return page


__all__ = [
    "SECRET",
    "WAIT",
    "Balancer",
    "Closed",
    "Instance",
    "Instances",
    "Tab",
    "items_of",
    "new_session",
    "open_page",
    "tree_items",
]
