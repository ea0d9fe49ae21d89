"""``livetemplate serve``: the uvicorn configuration it builds from the app and the command line.
Serving for real (signals, reload, workers) is tested in tests/tooling/test_serve.py."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator

import msgspec
import pytest
import uvicorn

import livetemplate
from livetemplate.cli import parser
from livetemplate.cli.serve import RELOAD_INCLUDES, _DrainingProcess, _metrics_directory, build_config, worker_warnings
from livetemplate.server import Server, find_live_app

TEMPLATE = "<p>{{ n }}</p>"


class State(msgspec.Struct):
    n: int = 0


class Controller:
    pass


@pytest.fixture
def app() -> Iterator[livetemplate.LiveApp]:
    yield livetemplate.mount(Controller(), State(), template=TEMPLATE, max_message_size=4096, shutdown_timeout=3)


def args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["serve", "examples.counter.app:app", *argv])


def test_settings_come_from_the_app(app: livetemplate.LiveApp) -> None:
    config = build_config(args(), app)
    assert config.app is app
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    assert config.ws_max_size == 4096
    assert config.ws_per_message_deflate is False
    assert config.timeout_graceful_shutdown == 5
    assert config.proxy_headers is False
    assert config.lifespan == "on"
    assert not config.should_reload and config.workers == 1


def test_command_line_overrides(app: livetemplate.LiveApp) -> None:
    config = build_config(
        args("--host", "0.0.0.0", "--port", "9001", "--log-level", "warning", "--proxy-headers", "--root-path", "/x"),
        app,
    )
    assert (config.host, config.port, config.log_level, config.root_path) == ("0.0.0.0", 9001, "warning", "/x")
    assert config.proxy_headers is True
    trusting = livetemplate.mount(Controller(), State(), template=TEMPLATE, trust_forwarded_headers=True)
    assert build_config(args(), trusting).proxy_headers is True
    assert build_config(args("--no-proxy-headers"), trusting).proxy_headers is False


def test_reload_watches_code_and_templates(app: livetemplate.LiveApp) -> None:
    config = build_config(args("--reload", "--reload-dir", "examples"), app)
    assert config.app == "examples.counter.app:app"  # each restart imports it afresh
    assert config.should_reload
    assert "*.html" in RELOAD_INCLUDES and "*.py" in RELOAD_INCLUDES
    assert set(RELOAD_INCLUDES) <= set(config.reload_includes)
    assert [os.path.basename(d) for d in config.reload_dirs] == ["examples"]
    assert config.ws_max_size == 4096  # read from the app loaded here


def test_workers_import_the_app_themselves(app: livetemplate.LiveApp) -> None:
    config = build_config(args("--workers", "3"), app)
    assert config.app == "examples.counter.app:app" and config.workers == 3


def test_an_app_that_does_not_load_yet_gets_the_defaults() -> None:
    config = build_config(args("--reload"), None)
    assert config.ws_max_size == livetemplate.Options().max_message_size


def test_workers_with_memory_sessions_and_no_secret_are_flagged(app: livetemplate.LiveApp) -> None:
    assert worker_warnings(app, 1) == []
    memory, secret = worker_warnings(app, 4)
    assert "in-memory session store" in memory and "LIVETEMPLATE_BACKEND=redis://" in memory
    assert "LIVETEMPLATE_SECRET_KEY" in secret
    keyed = livetemplate.mount(Controller(), State(), template=TEMPLATE, secret_key="s" * 32)
    assert len(worker_warnings(keyed, 2)) == 1
    assert worker_warnings(object(), 4) == []


def test_the_live_app_is_found_inside_middleware(app: livetemplate.LiveApp) -> None:
    class Middleware:
        def __init__(self, inner: object) -> None:
            self.app = inner

    assert find_live_app(Middleware(Middleware(app))) is app
    assert find_live_app(Middleware(None)) is None
    looped = Middleware(None)
    looped.app = looped
    assert find_live_app(looped) is None


def test_workers_run_the_draining_server(app: livetemplate.LiveApp) -> None:
    config = uvicorn.Config("examples.counter.app:app", workers=2)
    process = _DrainingProcess.__new__(_DrainingProcess)
    process.config, process._server = config, None
    assert isinstance(process.server, Server)  # the draining server, configuring logging
    assert process.server is process.server


def test_conflicting_options_are_refused() -> None:
    from livetemplate.cli import main

    with pytest.raises(SystemExit, match="exclude each other"):
        main(["serve", "examples.counter.app:app", "--reload", "--workers", "2"])
    with pytest.raises(SystemExit, match="at least 1"):
        main(["serve", "examples.counter.app:app", "--workers", "0"])
    with pytest.raises(SystemExit, match="cannot load no_such_module:app"):
        main(["serve", "no_such_module:app"])


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on: the server cannot bind it and stops after startup."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_stops_the_server(taken_port: int) -> None:
    from livetemplate.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "serve",
                "examples.todos.app:create_app",
                "--factory",
                "--port",
                str(taken_port),
                "--log-level",
                "critical",
            ]
        )
    assert exit_info.value.code == 3  # uvicorn's startup failure


def test_an_app_that_is_not_a_live_app_is_served_with_the_defaults(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from livetemplate.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "examples.todos.app:Todos", "--port", str(taken_port), "--log-level", "critical"])
    assert "examples.todos.app:Todos is not a mounted LiveTemplate app" in capsys.readouterr().err


def test_workers_get_a_metrics_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    _metrics_directory()
    made = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert os.path.isdir(made) and "livetemplate-metrics-" in made
    _metrics_directory()  # set already: kept
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made


# uvicorn's Config.bind_socket exits on a taken port without closing the socket it made
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_workers_and_reload_start_their_supervisors(taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Both bind the socket first (and stop here: the port is taken), after their warnings."""
    from livetemplate.cli import main

    for extra in (["--workers", "2"], ["--reload"]):
        with pytest.raises(SystemExit):
            main(["serve", "examples.todos.app:create_app", "--factory", "--port", str(taken_port), *extra])
    assert "warning: --workers 2 with the in-memory session store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "no_such_module:app", "--reload", "--port", str(taken_port)])
    assert "no_such_module:app does not load yet" in capsys.readouterr().err
