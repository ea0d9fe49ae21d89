"""Serving with ``livetemplate.server``: uvicorn's settings from the app, and the drain before
uvicorn closes the connections (a real uvicorn in this process, on a loopback socket)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Annotated, Any

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import livetemplate
from livetemplate import Context, Persist
from livetemplate.server import Server, uvicorn_config

pytestmark = pytest.mark.anyio


class State(msgspec.Struct):
    done: Annotated[int, Persist] = 0


class Slow:
    async def work(self, state: State, ctx: Context) -> State:
        await asyncio.sleep(ctx.get_float("seconds"))
        state.done += 1
        return state


def make(**options: Any) -> livetemplate.LiveApp:
    return livetemplate.mount(Slow(), State(), template="<p>{{ done }}</p>", **options)


def test_uvicorn_settings_come_from_the_app() -> None:
    app = make(max_message_size=4096, trust_forwarded_headers=True, shutdown_timeout=3)
    config = uvicorn_config(app, port=9999, log_level="warning")
    assert config.ws_max_size == 4096
    assert config.ws_per_message_deflate is False
    assert config.proxy_headers is True
    assert config.timeout_graceful_shutdown == 5
    assert config.port == 9999 and config.host == "127.0.0.1"
    assert uvicorn_config(make()).proxy_headers is False  # only when the app trusts them


async def test_stopping_the_server_drains_the_app_first() -> None:
    app = make(shutdown_timeout=5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server(uvicorn_config(app, log_level="warning"), app)
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        json.loads(await ws.recv())
        (connection,) = app.runtime.connections
        assert connection.outbox.direct is not None  # the project's protocol writes frames directly
        await ws.send(json.dumps({"action": "work", "data": {"seconds": 0.5}}))
        await asyncio.sleep(0.1)
        server.should_exit = True  # as SIGTERM does, while the action runs
        reply = json.loads(await ws.recv())
        assert reply["meta"]["success"] is True and reply["tree"] == {"0": "1"}
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    await serving
    assert app.runtime.closing
