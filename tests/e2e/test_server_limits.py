"""The server as operators run it (uvicorn with ``livetemplate.server``'s settings), seen by a
raw WebSocket client: frames over the limit refused by the protocol, and a graceful shutdown
that finishes the action in flight before closing with 1012."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.harness import Server


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://")


def test_a_frame_over_the_limit_is_refused_by_the_protocol(serve: Callable[..., Server]) -> None:
    server = serve("tests.e2e.apps:counter", max_message_size=4096)
    with connect(ws_url(server), max_size=None) as ws:
        json.loads(ws.recv())  # the complete tree
        ws.send(json.dumps({"action": "increment", "data": {"pad": "x" * 4000}}))  # within the limit
        assert json.loads(ws.recv())["meta"]["success"] is True
        ws.send(json.dumps({"action": "increment", "data": {"pad": "x" * 100_000}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_shutdown_finishes_the_action_in_flight_then_closes_with_1012(serve: Callable[..., Server]) -> None:
    server = serve("tests.e2e.apps:slow", shutdown_timeout=5)
    with connect(ws_url(server)) as ws:
        json.loads(ws.recv())
        ws.send(json.dumps({"action": "work", "data": {"seconds": 1.0}}))
        threading.Timer(0.3, server.stop).start()  # SIGTERM while the action runs
        reply = json.loads(ws.recv())
        assert reply["meta"]["success"] is True and reply["tree"] == {"0": "1"}  # its reply was delivered
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
