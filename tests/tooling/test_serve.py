"""``livetemplate serve`` as a separate process: the page, the WebSocket, the drain on SIGTERM,
``--reload`` on a template change (open pages reconnect to the new page) and ``--workers``."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path

import httpx

from tests.tooling.processes import close_code, first_frame, serve

COUNTER = "examples.counter.app:app"
SERVICE_RESTART = 1012
# uvicorn re-raises the SIGTERM it handled once it has shut down: the exit of a stopped service
STOPPED = (0, -signal.SIGTERM)


def test_serves_the_page_and_drains_on_sigterm() -> None:
    with serve([COUNTER]) as served:
        page = httpx.get(served.url + "/")
        assert page.status_code == 200 and "Count: <output>0</output>" in page.text
        with served.websocket() as ws:
            assert first_frame(ws)["meta"]["success"] is True
            ws.send(json.dumps({"action": "increment", "data": {}}))
            assert "1" in json.dumps(first_frame(ws)["tree"])
            assert served.terminate() in STOPPED
            # the app drained (its own close reason), not uvicorn closing the socket under it
            assert close_code(ws) == (SERVICE_RESTART, "Server restarting")
    output = served.output()
    assert "Uvicorn running on" in output and "Shutting down" in output


def test_reload_rerenders_open_pages_when_a_template_changes(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<main><p>version one</p><b>{{ n }}</b></main>\n")
    (tmp_path / "liveapp.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            import msgspec

            import livetemplate


            class State(msgspec.Struct):
                n: int = 0


            class Controller:
                pass


            app = livetemplate.mount(Controller(), State(), template=Path(__file__).parent / "page.html")
            """
        )
    )
    args = ["liveapp:app", "--reload", "--reload-dir", str(tmp_path), "--app-dir", str(tmp_path)]
    with serve(args, cwd=tmp_path) as served:
        with served.websocket() as ws:
            assert "version one" in json.dumps(first_frame(ws))
            time.sleep(0.5)  # the watcher has started
            (tmp_path / "page.html").write_text("<main><p>version two</p><b>{{ n }}</b></main>\n")
            # the client is told to reconnect (1012), as the official client does on this code
            assert close_code(ws, timeout=60) == (SERVICE_RESTART, "Server restarting")
        with served.websocket() as ws:
            assert "version two" in json.dumps(first_frame(ws))
        assert "page.html" in served.output()  # uvicorn says what changed


def test_workers_drain_and_warn_about_memory_sessions() -> None:
    with serve([COUNTER, "--workers", "2"]) as served:
        for _ in range(4):
            assert httpx.get(served.url + "/").status_code == 200
        with served.websocket() as ws:
            assert first_frame(ws)["meta"]["success"] is True
            assert served.terminate() in STOPPED
            assert close_code(ws) == (SERVICE_RESTART, "Server restarting")
    output = served.output()
    assert "warning: --workers 2 with the in-memory session store" in output
    assert "warning: --workers 2 without a secret key" in output
