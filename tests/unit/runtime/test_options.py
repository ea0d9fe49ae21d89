"""``mount()``: options, the template argument, the state type, and the ASGI lifespan."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

import livetemplate
from livetemplate import Context, Options, Persist, Template, TemplateError, Upload, mount
from livetemplate.testing import LiveClient
from tests.support.stores import RecordingStore

pytestmark = pytest.mark.anyio


class State(msgspec.Struct):
    count: Annotated[int, Persist] = 0


@dataclasses.dataclass
class DataState:
    count: Annotated[int, Persist] = 0
    label: str = "plain"


class Controller:
    def increment(self, state: Any, ctx: Context) -> Any:
        state.count += 1
        return state


# -- options -----------------------------------------------------------------------------------------


def test_unknown_options_raise_at_mount() -> None:
    with pytest.raises(TypeError, match="unknown option\\(s\\) for mount\\(\\): sesion_store, websocket"):
        mount(Controller(), State(), template="<p>{{ count }}</p>", sesion_store=None, websocket=False)


def test_every_option_is_accepted(tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "session_store": livetemplate.MemorySessionStore(),
        "broadcaster": livetemplate.InProcessBroadcaster(),
        "dev_mode": True,
        "allowed_origins": ["https://a.example"],
        "trust_forwarded_headers": False,
        "websocket_disabled": True,
        "progressive_enhancement": False,
        "loading_indicator": False,
        "cookie_max_age": 10,
        "max_message_size": 4096,
        "client_script_url": "/static/client.js",
        "heartbeat_ms": 0,
        "open_topics": True,
        "secret_key": "secret",
        "name": "counter",
        "group_idle_timeout": 5.0,
        "sync_actions": "inline",
        "shared_renders": False,
        "slow_action_threshold": 0.5,
        "frame_ancestors": ["https://a.example"],
        "max_connections": 5,
        "max_connections_per_group": 2,
        "message_rate_limit": (1.0, 3),
        "send_budget": 4096,
        "slow_client_timeout": 2.0,
        "shutdown_timeout": 3.0,
        "metrics_enabled": False,
        "metrics_path": "/stats",
        "health_path": None,
        "uploads": {"avatar": Upload(accept=["image/*"])},
        "upload_dir": str(tmp_path / "uploads"),
    }
    assert set(values) | {"topic_acl", "backend"} == {f.name for f in dataclasses.fields(Options)}
    app = mount(Controller(), State(), template="<p>{{ count }}</p>", **values)
    assert app.options == Options(**values)
    assert app.broadcaster is values["broadcaster"]
    assert repr(app) == "<LiveApp counter>"
    assert "secret" not in repr(app.options)  # the secret never shows in logs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"open_topics": True, "topic_acl": lambda topic, ctx: True}, "exclude each other"),
        ({"backend": "memory://", "session_store": livetemplate.MemorySessionStore()}, "do not pass them as well"),
        ({"max_message_size": 1023}, "max_message_size"),
        ({"heartbeat_ms": 999}, "heartbeat_ms"),
        ({"heartbeat_ms": -1}, "heartbeat_ms"),
        ({"cookie_max_age": 0}, "cookie_max_age"),
    ],
)
def test_bad_option_values_raise_at_mount(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mount(Controller(), State(), template="<p>{{ count }}</p>", **options)


def test_options_are_keyword_only_and_frozen() -> None:
    options = Options(dev_mode=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.dev_mode = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        Options(None)  # type: ignore[misc]


# -- the template argument ------------------------------------------------------------------------------


async def _count_page(app: livetemplate.LiveApp) -> str:
    async with LiveClient(app) as client:
        await client.post_action("increment")
        return (await client.get("/")).text


async def test_template_as_source() -> None:
    app = mount(Controller(), State(), template="<p>{{ count }}</p>")
    assert app.template.source == "<p>{{ count }}</p>" and app.template.name == "<mount>"
    assert "<p>1</p>" in await _count_page(app)


async def test_template_as_a_template_object() -> None:
    template = Template("<b>{{ count }}</b>", name="bold")
    app = mount(Controller(), State(), template=template)
    assert app.template is template
    assert "<b>1</b>" in await _count_page(app)


@pytest.mark.parametrize("as_str", [False, True])
async def test_template_as_a_path(tmp_path: Path, as_str: bool) -> None:
    (tmp_path / "base.html").write_text(
        "<!doctype html><html><head><title>T</title></head><body>{% block main %}{% endblock %}</body></html>"
    )
    (tmp_path / "page.html").write_text(
        '{% extends "base.html" %}{% block main %}<i>{{ count }}</i>{% include "part.html" %}{% endblock %}'
    )
    (tmp_path / "part.html").write_text("<u>part</u>")
    path = tmp_path / "page.html"
    app = mount(Controller(), State(), template=str(path) if as_str else path)
    assert app.template.name == "page.html"
    page = await _count_page(app)
    assert "<body><div data-lvt-id=" in page
    assert "<i>1</i><u>part</u></div><script" in page


@pytest.mark.parametrize("template", [Path("/no/such/page.html"), "/no/such/page.html", "missing.jinja"])
def test_missing_template_file(template: Any) -> None:
    with pytest.raises(FileNotFoundError, match="template file not found"):
        mount(Controller(), State(), template=template)


def test_source_that_mentions_a_file_name_is_source() -> None:
    app = mount(Controller(), State(), template="<a href='index.html'>{{ count }}</a>")
    assert app.template.name == "<mount>"


@pytest.mark.parametrize(
    "source",
    [
        "<p>{{ count }</p>",
        "<html><body>{% if count %}<p></p></body>{% endif %}</html>",
        "<html>{% if count %}<body>x</body>{% endif %}</html>",
    ],
)
def test_broken_templates_fail_at_mount(source: str) -> None:
    with pytest.raises(TemplateError):
        mount(Controller(), State(), template=source)


# -- the state -----------------------------------------------------------------------------------------------


class NotSerializable(msgspec.Struct):
    handler: Any = None


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"count": 0}, "must be a msgspec.Struct or a dataclass instance, not dict"),
        (State, "pass an instance of State as the initial state, not the class"),
        (DataState, "pass an instance of DataState as the initial state, not the class"),
        (42, "not int"),
        (None, "not NoneType"),
        (NotSerializable(handler=object()), "not serializable"),
    ],
)
def test_bad_state_types_raise(state: Any, message: str | None) -> None:
    with pytest.raises(TypeError, match=message):
        mount(Controller(), state, template="<p>{{ count }}</p>")


async def test_dataclass_state() -> None:
    app = mount(Controller(), DataState(), template="<p>{{ count }} {{ label }}</p>")
    async with LiveClient(app) as client:
        await client.post_action("increment")
        page = (await client.get("/")).text
        async with client.websocket("/") as ws:
            await ws.receive_json()
            reply = await ws.action("increment")
    assert "<p>1 plain</p>" in page
    assert reply["tree"] == {"0": "2"}


async def test_initial_state_is_copied_per_session() -> None:
    initial = State(count=5)
    app = mount(Controller(), initial, template="<p>{{ count }}</p>")
    async with LiveClient(app) as one, LiveClient(app, shutdown=False) as two:
        await one.post_action("increment")
        assert "<p>5</p>" in (await two.get("/")).text
    assert initial.count == 5


# -- lifespan ----------------------------------------------------------------------------------------------


class Lifespan:
    """The server's side of an app's lifespan: started by :meth:`start`."""

    def __init__(self, app: livetemplate.LiveApp) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.inbox.get, self.outbox.put)  # type: ignore[arg-type]
        )

    async def start(self) -> None:
        await self.inbox.put({"type": "lifespan.startup"})
        assert await asyncio.wait_for(self.outbox.get(), 1) == {"type": "lifespan.startup.complete"}

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert await asyncio.wait_for(self.outbox.get(), 1) == {"type": "lifespan.shutdown.complete"}
        await asyncio.wait_for(self.task, 1)


async def test_lifespan_shutdown_closes_everything() -> None:
    store = RecordingStore()
    app = mount(Controller(), State(), template="<p>{{ count }}</p>", session_store=store)
    lifespan = Lifespan(app)
    await lifespan.start()
    async with LiveClient(app, shutdown=False) as client, client.websocket("/") as ws:
        await ws.receive_json()
        await lifespan.stop()
        assert await ws.receive_close() == 1012
    assert store.closed
    store.closed = False
    await app.shutdown()  # idempotent
    assert not store.closed


@pytest.mark.parametrize(
    ("store", "secret", "warned"),
    [(RecordingStore, None, True), (RecordingStore, "s" * 32, False), (None, None, False)],
    ids=["shared store, no secret", "shared store, a secret", "memory store, no secret"],
)
async def test_a_shared_store_without_a_secret_key_is_warned_of_at_startup(
    store: type[RecordingStore] | None, secret: str | None, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Each instance would sign session cookies with a random key of its own: the others
    (and the same one once restarted) would take every browser for a new session."""
    app = mount(
        Controller(),
        State(),
        template="<p>{{ count }}</p>",
        session_store=store() if store is not None else None,
        secret_key=secret,
    )
    lifespan = Lifespan(app)
    await lifespan.start()
    await lifespan.stop()
    warnings = [record.getMessage() for record in caplog.records if "no secret key" in record.getMessage()]
    assert bool(warnings) is warned, warnings


# -- the environment ---------------------------------------------------------------------------------


def test_options_from_the_environment_and_keywords_win() -> None:
    environ = {
        "LIVETEMPLATE_MAX_CONNECTIONS": "7",
        "LIVETEMPLATE_MAX_CONNECTIONS_PER_GROUP": "2",
        "LIVETEMPLATE_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "LIVETEMPLATE_DEV_MODE": "yes",
        "LIVETEMPLATE_WEBSOCKET_DISABLED": "0",
        "LIVETEMPLATE_SHUTDOWN_TIMEOUT": "2.5",
        "LIVETEMPLATE_METRICS_ENABLED": "off",
        "LIVETEMPLATE_SECRET_KEY": "from-env",
        "LIVETEMPLATE_REDIS_URL": "memory://",
    }
    options = Options.from_keywords({"max_connections": 9}, environ)
    assert options.max_connections == 9  # the keyword wins
    assert options.max_connections_per_group == 2
    assert options.allowed_origins == ("https://a.example", "https://b.example")
    assert options.dev_mode is True and options.websocket_disabled is False and options.metrics_enabled is False
    assert options.shutdown_timeout == 2.5 and options.secret_key == "from-env" and options.backend == "memory://"
    store = livetemplate.MemorySessionStore()
    assert Options.from_keywords({"session_store": store}, environ).backend is None  # a store in code wins


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LIVETEMPLATE_MAX_CONNECTIONS", "lots", "invalid LIVETEMPLATE_MAX_CONNECTIONS='lots'"),
        ("LIVETEMPLATE_DEV_MODE", "maybe", "invalid LIVETEMPLATE_DEV_MODE='maybe': expected true or false"),
        ("LIVETEMPLATE_SHUTDOWN_TIMEOUT", "-1", "shutdown_timeout must be positive"),
        ("LIVETEMPLATE_MAX_CONNECTIONS_PER_GROUP", "0", "max_connections_per_group must be at least 1"),
    ],
)
def test_invalid_environment_values_fail_at_start(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Options.from_keywords({}, {variable: value})


def test_mount_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVETEMPLATE_MAX_CONNECTIONS", "3")
    app = mount(Controller(), State(), template="<p>{{ count }}</p>")
    assert app.options.max_connections == 3
